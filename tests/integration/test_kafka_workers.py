"""The Kafka event log beyond the shared contract: URLs, errors, consumer groups, scale-out.

The scale-out test runs ``c360 stream run`` in three processes of one consumer group on a
6-partition topic of librdkafka's mock cluster (``tests/kafka_mock.py``), SIGKILLs one
mid-stream, and checks that the others take its partitions over and that the real-time state ends
exactly as one uninterrupted worker leaves it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest

from c360.config import load_config
from c360.errors import (
    ConfigError,
    MissingDependencyError,
    NotFoundError,
    TerminalError,
    TransientError,
)
from c360.logs import TopicPartition, open_configured, open_log, partition_for
from c360.logs.kafka import KafkaLog, KafkaSettings
from c360.pipeline.stream_worker import WorkerStats, run
from c360.stores import ServingStore, open_store
from kafka_mock import MockCluster, mock_cluster
from plugins.services import service_fixture

T = TypeVar("T")

PARTITIONS = 6
GROUP = "speed"


@service_fixture("kafka", scope="module")
def kafka_cluster() -> Iterator[MockCluster]:
    yield from mock_cluster()


def _wait_for(what: str, check: Callable[[], T | None], timeout: float) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.2)


# -- the URL (no driver needed) ----------------------------------------------------------------
def test_url_brokers_and_parameters() -> None:
    settings = KafkaSettings.from_url(
        "kafka://b1:9092, b2:9093?session_timeout_ms=6000&heartbeat_interval_ms=1000&timeout_ms=5"
    )
    assert settings == KafkaSettings("b1:9092,b2:9093", 6000, 1000, 5)
    assert KafkaSettings.from_url("kafka://[::1]:9092").session_timeout_ms == 45_000


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("kafka://", "is not HOST:PORT"),
        ("kafka://broker", "is not HOST:PORT"),
        ("kafka://b:9092,", "is not HOST:PORT"),
        ("kafka://b:99999", "is not HOST:PORT"),
        ("kafka://b:9092/topic", "names brokers only"),
        ("kafka://b:9092?acks=1", "unknown parameter 'acks'; accepted: session_timeout_ms"),
        ("kafka://b:9092?timeout_ms=soon", "timeout_ms must be a positive integer"),
        ("kafka://b:9092?timeout_ms=0", "timeout_ms must be a positive integer"),
        ("kafka://b:9092?session_timeout_ms=3000", "heartbeat_interval_ms (3000) must be below"),
    ],
)
def test_a_bad_url_is_a_config_error(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        open_log(url, PARTITIONS)
    assert caught.value.key == "log.url"


def test_without_confluent_kafka_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "confluent_kafka", None)  # import fails
    with pytest.raises(MissingDependencyError, match=re.escape("pip install 'c360[kafka]'")):
        open_log("kafka://127.0.0.1:9092", PARTITIONS)


# -- one process ---------------------------------------------------------------------------------
@pytest.mark.kafka
def test_client_properties_reach_librdkafka(
    kafka_cluster: MockCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """``log.kafka_properties`` (security, tuning) go to every client; librdkafka's own debug
    lines are the evidence that they were applied."""
    settings = load_config(
        environ={
            "C360_LOG_URL": f"kafka://{kafka_cluster.bootstrap_servers}?timeout_ms=10000",
            "C360_LOG_KAFKA_PROPERTIES": "debug=metadata; client.rack=r1",
        }
    ).settings
    assert settings.log.kafka_client_properties() == {"debug": "metadata", "client.rack": "r1"}
    topic = f"props-{uuid.uuid4().hex[:8]}"
    with (
        caplog.at_level(logging.DEBUG, logger="c360.logs.kafka.librdkafka"),
        open_configured(settings.log) as log,
    ):
        log.append(topic, [("k", b"v")])
        assert log.end_offset(topic, partition_for("k", log.partitions(topic))) == 1
    assert any("metadata" in record.getMessage().lower() for record in caplog.records)


@pytest.mark.kafka  # librdkafka itself rejects the property
def test_an_unknown_client_property_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="No such configuration property") as caught:
        open_log("kafka://127.0.0.1:9092", PARTITIONS, {"no.such.property": "1"}).append(
            "t", [("k", b"v")]
        )
    assert caught.value.key == "log.kafka_properties"


@pytest.mark.kafka
def test_topic_metadata_and_partition_bounds(kafka_cluster: MockCluster) -> None:
    topic = f"six-{uuid.uuid4().hex[:8]}"
    kafka_cluster.create_topic(topic, PARTITIONS)
    with KafkaLog(kafka_cluster.bootstrap_servers, 4, timeout_ms=10_000) as log:
        assert log.partitions(topic) == PARTITIONS  # the cluster's count, not the default
        assert log.partitions(f"missing-{topic}") == 4  # the default, created on first append
        keys = [f"anon-{i}" for i in range(60)]
        positions = log.append(topic, [(key, b"x") for key in keys])
        assert [p for p, _ in positions] == [partition_for(key, PARTITIONS) for key in keys]
        with pytest.raises(NotFoundError, match="no partition 6"):
            log.end_offset(topic, 6)


@pytest.mark.kafka
def test_members_of_one_group_share_the_partitions(kafka_cluster: MockCluster) -> None:
    """Two members split the topic; when one leaves, the other owns everything."""
    topic = f"shared-{uuid.uuid4().hex[:8]}"
    kafka_cluster.create_topic(topic, PARTITIONS)
    # The mock drops members whose session times out while the first join waits: keep the
    # delay below the session timeout.
    kafka_cluster.initial_rebalance_delay(500)
    owned: dict[str, list[TopicPartition]] = {}
    stops = {name: threading.Event() for name in ("a", "b")}
    failures: list[BaseException] = []

    def member(name: str) -> None:  # a worker's loop: poll the membership between batches
        try:
            with KafkaLog(
                kafka_cluster.bootstrap_servers,
                PARTITIONS,
                session_timeout_ms=3_000,
                heartbeat_interval_ms=500,
                timeout_ms=15_000,
            ) as log:
                while not stops[name].is_set():
                    owned[name] = log.owned_partitions("sharing", [topic])
                    time.sleep(0.1)
        except BaseException as exc:
            failures.append(exc)

    threads = {name: threading.Thread(target=member, args=(name,)) for name in stops}
    for thread in threads.values():
        thread.start()
    try:
        _wait_for(
            "a 3 + 3 split",
            lambda: failures or sorted(len(owned.get(name, [])) for name in stops) == [3, 3],
            timeout=30,
        )
        assert not failures
        assert sorted(owned["a"] + owned["b"]) == [
            TopicPartition(topic, p) for p in range(PARTITIONS)
        ]
        stops["b"].set()  # closing leaves the group: no session timeout to wait for
        threads["b"].join(timeout=30)
        _wait_for("a to own all 6", lambda: failures or len(owned["a"]) == PARTITIONS, 30)
        assert not failures
    finally:
        for name, stop in stops.items():
            stop.set()
            threads[name].join(timeout=30)
    assert not any(thread.is_alive() for thread in threads.values())


class _Failing:
    """A librdkafka client whose ``method`` raises ``error``; the rest goes to the real one."""

    def __init__(self, client: Any, method: str, error: BaseException) -> None:
        self._client, self._method, self._error = client, method, error

    def __getattr__(self, name: str) -> Any:
        if name == self._method:

            def fail(*args: object, **kwargs: object) -> Any:
                raise self._error

            return fail
        return getattr(self._client, name)


@pytest.mark.kafka
def test_driver_errors_never_leave_the_log_raw(kafka_cluster: MockCluster) -> None:
    """Paths without a handler of their own (assign, flush) still classify the driver's errors."""
    import confluent_kafka

    topic = f"raw-{uuid.uuid4().hex[:8]}"
    kafka_cluster.create_topic(topic, 2)
    with KafkaLog(kafka_cluster.bootstrap_servers, 2, timeout_ms=10_000) as log:
        ((partition, _),) = log.append(topic, [("k", b"v")])
        reader = log._get_reader()
        transport = confluent_kafka.KafkaError(confluent_kafka.KafkaError._TRANSPORT)
        log._reader = _Failing(reader, "assign", confluent_kafka.KafkaException(transport))
        with pytest.raises(TransientError, match=f"cannot read {topic}/{partition} at offset 0"):
            log.read(topic, partition, 0, 10)
        log._reader = reader

        denied = confluent_kafka.KafkaError(
            confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED, fatal=True
        )
        producer = log._get_producer()
        log._producer = _Failing(producer, "flush", confluent_kafka.KafkaException(denied))
        with pytest.raises(TerminalError, match=f"topic {topic!r}.*ACLs"):
            log.append(topic, [("k", b"w")])
        assert log._producer is None  # a fatal state: the next append makes a new producer
        log.append(topic, [("k", b"x")])
        assert [r.value for r in log.read(topic, partition, 0, 10)] == [b"v", b"x"]


@pytest.mark.kafka
def test_a_topic_creation_the_cluster_does_not_answer_is_transient(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Unanswered:
        def result(self, timeout: float) -> None:
            raise TimeoutError

    class Admin:
        def create_topics(self, topics: list[Any], request_timeout: float) -> dict[str, Any]:
            return {topic.topic: Unanswered() for topic in topics}

    log = KafkaLog("127.0.0.1:9", 2, timeout_ms=100)
    monkeypatch.setattr(log, "_client", lambda kind, config: Admin())
    with log, pytest.raises(TransientError, match=r"cannot create topic 'new'.*did not answer"):
        log._create_with_admin("new", 2)


@service_fixture("kafka")
def lone_broker() -> Iterator[MockCluster]:
    """A cluster of its own, to take down."""
    yield from mock_cluster(brokers=1)


@pytest.mark.kafka
def test_an_unreachable_cluster_is_a_transient_error_naming_the_partition(
    lone_broker: MockCluster,
) -> None:
    cluster, topic = lone_broker, "outage"
    with KafkaLog(cluster.bootstrap_servers, 2, timeout_ms=1_500) as log:
        ((partition, _),) = log.append(topic, [("k", b"before")])
        cluster.broker_down(1)
        with pytest.raises(TransientError, match=f"{topic}/{partition}"):
            log.append(topic, [("k", b"during")])
        with pytest.raises(TransientError, match=f"{topic}/{partition}"):
            log.end_offset(topic, partition)
        with pytest.raises(TransientError, match="got no assignment"):
            log.owned_partitions("stranded", [topic])
        cluster.broker_up(1)

        def read_again() -> list[bytes] | None:  # what a caller does: retry with backoff
            try:
                return [r.value for r in log.read(topic, partition, 0, 10)]
            except TransientError:
                return None

        assert _wait_for("the broker to be back", read_again, 30)[0] == b"before"


@pytest.mark.kafka
@pytest.mark.slow
def test_a_polling_worker_rides_out_a_broker_outage(
    lone_broker: MockCluster, tmp_path: Path
) -> None:
    """The worker retries the log's transient errors with backoff instead of dying, and ends
    exactly where an uninterrupted run ends."""
    cluster, topic = lone_broker, "outage-worker"
    cluster.create_topic(topic, 2, replication_factor=1)
    url = f"{cluster.url}?session_timeout_ms=6000&heartbeat_interval_ms=1000&timeout_ms=1500"
    events = _segment_events(400, identifiers=20)
    store = open_store(f"sqlite:///{tmp_path / 'serving.db'}")
    store.migrate()
    stop = threading.Event()
    outcome: list[Any] = []

    def work() -> None:
        try:
            with KafkaLog.from_url(url, 2) as worker_log:
                outcome.append(
                    run(worker_log, store, GROUP, [topic], stop_when_caught_up=False,
                        batch_size=20, poll_interval=0.05, should_stop=stop.is_set)
                )  # fmt: skip
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=work)
    try:
        with KafkaLog.from_url(url, 2) as log:
            log.append(topic, events[:200])
            worker.start()
            _wait_for("the worker to consume", lambda: store.offsets(GROUP, topic), 30)
            cluster.broker_down(1)
            time.sleep(3)  # the worker's reads and membership polls fail meanwhile
            assert worker.is_alive(), outcome
            cluster.broker_up(1)
            _wait_for("the broker to take appends", lambda: _append(log, topic, events[200:]), 30)
            ends = {p: log.end_offset(topic, p) for p in range(2)}
        _wait_for("the worker to catch up", lambda: store.offsets(GROUP, topic) == ends, 60)
    finally:
        stop.set()
        worker.join(timeout=60)
    (stats,) = outcome
    assert isinstance(stats, WorkerStats), stats
    assert stats.retries > 0
    assert stats.records >= len(events)  # a batch the outage interrupted may be read again

    reference = open_store(f"sqlite:///{tmp_path / 'reference.db'}")
    try:
        reference.migrate()
        with KafkaLog(cluster.bootstrap_servers, 2, timeout_ms=20_000) as single:
            run(single, reference, "reference", [topic], stop_when_caught_up=True)
        assert _state(store) == _state(reference)
        assert sum(row["events_total"] for row in _state(reference)) == len(events)
    finally:
        reference.dispose()
        store.dispose()


def _append(log: KafkaLog, topic: str, records: list[tuple[str, bytes]]) -> bool:
    try:
        log.append(topic, records)
    except TransientError:
        return False
    return True


# -- three processes, one killed -----------------------------------------------------------------
def _segment_events(count: int, identifiers: int) -> list[tuple[str, bytes]]:
    """Hand-made page/track events, ``count // identifiers`` per anonymousId, in event-time
    order per identifier with gaps that open new sessions."""
    start = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)
    events: list[tuple[str, bytes]] = []
    for i in range(count):
        anonymous_id = f"anon-{i % identifiers:03d}"
        step = i // identifiers
        minutes = step * 7 + (step // 4) * 40 + (i % identifiers) % 5  # a 47-min gap every 4
        message: dict[str, Any] = {
            "type": "page" if i % 3 else "track",
            "messageId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"c360-test/{i}")),
            "timestamp": (start + dt.timedelta(minutes=minutes)).isoformat(),
            "anonymousId": anonymous_id,
        }
        if message["type"] == "track":
            message["event"] = "Product Viewed"
        events.append((anonymous_id, orjson.dumps(message)))
    return events


_WORKER = """
import logging, sys
logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
logging.getLogger("c360.logs.kafka").setLevel(logging.INFO)
logging.getLogger("c360.logs.kafka.librdkafka").setLevel(logging.WARNING)
from c360.cli.main import main
main(sys.argv[1:])
"""
_ASSIGNED = re.compile(r"consumer group '[^']*': (assigned (?P<tps>.*)|partitions revoked)")


def _assignment(log_file: Path) -> list[int] | None:
    """A worker's current partitions, from its last assignment log line (None: not joined)."""
    current: list[int] | None = None
    for match in _ASSIGNED.finditer(log_file.read_text(encoding="utf-8", errors="replace")):
        tps = match.group("tps")
        if tps is None:
            current = []
        else:
            current = (
                [] if tps == "nothing" else [int(tp.rsplit("/", 1)[1]) for tp in tps.split(", ")]
            )
    return current


def _ever_assigned(log_file: Path, after: int) -> set[int]:
    """Partitions a worker's log assigned it after byte ``after``."""
    text = log_file.read_text(encoding="utf-8", errors="replace")[after:]
    return {
        int(tp.rsplit("/", 1)[1])
        for match in _ASSIGNED.finditer(text)
        if match.group("tps") not in (None, "nothing")
        for tp in match.group("tps").split(", ")
    }


def _state(store: ServingStore) -> list[dict[str, Any]]:
    return store.query("SELECT * FROM realtime_state ORDER BY id_type, id_value")


@pytest.mark.kafka
@pytest.mark.slow
def test_three_workers_one_killed_end_like_one_worker(
    kafka_cluster: MockCluster, tmp_path: Path
) -> None:
    topic = f"clickstream-{uuid.uuid4().hex[:8]}"
    kafka_cluster.create_topic(topic, PARTITIONS)
    kafka_cluster.initial_rebalance_delay(3_000)  # time for all three to join the first round
    url = f"{kafka_cluster.url}?session_timeout_ms=6000&heartbeat_interval_ms=1000&timeout_ms=20000"
    events = _segment_events(2_000, identifiers=200)
    before, during, after = events[:1_000], events[1_000:1_600], events[1_600:]

    serving_url = f"sqlite:///{tmp_path / 'serving.db'}"
    store = open_store(serving_url)
    store.migrate()  # once, before three processes start
    env = {k: v for k, v in os.environ.items() if not k.startswith("C360_")}
    env |= {"C360_LOG_URL": url, "C360_LOG_PARTITIONS": str(PARTITIONS)}
    env |= {"C360_SERVING_URL": serving_url}
    command = [sys.executable, "-c", _WORKER, "stream", "run", "--topic", topic]
    command += ["--group", GROUP, "--batch-size", "10"]
    logs = [tmp_path / f"worker-{n}.log" for n in range(3)]
    workers: list[subprocess.Popen[bytes]] = []
    log = KafkaLog.from_url(url, PARTITIONS)
    try:
        log.append(topic, before)
        for log_file in logs:
            with log_file.open("wb") as stderr:
                workers.append(
                    subprocess.Popen(
                        command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=stderr
                    )
                )

        def split_three_ways() -> list[list[int]] | None:
            owned = [_assignment(log_file) or [] for log_file in logs]
            done = sorted(p for partitions in owned for p in partitions) == list(range(6))
            return owned if done and all(len(partitions) == 2 for partitions in owned) else None

        owned = _wait_for("the 3 workers to own 2 partitions each", split_three_ways, 60)
        victim, survivors = workers[0], workers[1:]
        victim_partitions = owned[0]
        stored_before = store.offsets(GROUP, topic)

        # Kill the victim mid-stream: once it has committed part of the next chunk.
        log.append(topic, during)
        ends = {p: log.end_offset(topic, p) for p in range(PARTITIONS)}

        def victim_progressed() -> bool:
            stored = store.offsets(GROUP, topic)
            return any(stored.get(p, 0) > stored_before.get(p, 0) for p in victim_partitions)

        _wait_for("the victim to commit a batch", victim_progressed, 30)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=10) == -signal.SIGKILL
        stored_at_kill = store.offsets(GROUP, topic)
        marks = [log_file.stat().st_size for log_file in logs]

        # Records the victim can no longer process: only a takeover can consume them.
        log.append(topic, after)
        assert {partition_for(key, PARTITIONS) for key, _ in after} >= set(victim_partitions)
        ends = {p: log.end_offset(topic, p) for p in range(PARTITIONS)}
        assert sum(ends.values()) == len(events)
        _wait_for(
            "the survivors to consume everything",
            lambda: store.offsets(GROUP, topic) == ends,
            90,
        )
        taken_over = set().union(*(_ever_assigned(logs[n], marks[n]) for n in (1, 2)))
        assert set(victim_partitions) <= taken_over
        for worker in survivors:
            worker.send_signal(signal.SIGTERM)
        assert [worker.wait(timeout=30) for worker in survivors] == [0, 0]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=10)
        log.close()
    assert any(stored_at_kill.get(p, 0) < ends[p] for p in victim_partitions), (
        "the victim's partitions were all consumed when it died: nothing was taken over"
    )

    # The same events through one uninterrupted worker, in its own group and store.
    reference = open_store(f"sqlite:///{tmp_path / 'reference.db'}")
    try:
        reference.migrate()
        with KafkaLog.from_url(url, PARTITIONS) as single:
            stats = run(single, reference, "reference", [topic], stop_when_caught_up=True)
        assert (stats.records, stats.dead_lettered, stats.conflicts) == (len(events), 0, 0)
        expected = _state(reference)
    finally:
        reference.dispose()
    try:
        state = _state(store)
        dead_letters = store.query("SELECT COUNT(*) AS n FROM dead_letter")
    finally:
        store.dispose()
    assert len(expected) == 200
    assert sum(row["events_total"] for row in expected) == len(events)
    assert state == expected
    assert dead_letters == [{"n": 0}]
