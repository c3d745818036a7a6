"""The event-log contract, run against every backend.

Each backend is a :class:`Backend` built by the ``backend`` fixture: the local log, and Kafka
(marked ``kafka``, on librdkafka's mock cluster, see ``tests/kafka_mock.py``).

Capabilities. Some tests need more of a backend than the contract: the torn-tail test must
*inject* a torn tail (a crash mid-append) into the backend's files. What a backend cannot offer
is declared in :data:`NOT_APPLICABLE` with the reason, and a test that needs it (:func:`needs`)
is not generated for that backend: it is listed, with the reason, in the run's summary
("declared not applicable"), never skipped, so a CI run has no skips to read as holes.

Kafka's torn-tail gap is not applicable rather than an ``xfail``: the broker owns its segment
files and recovers them itself, so there is nothing for the test to tear; run anyway, it would
fail for want of the harness, not because of anything Kafka does. Each backend either offers a
capability or declares it absent (``test_a_backend_offers_each_capability_or_declares_the_gap``).
A behaviour a backend gets *wrong* is a different thing: that is declared with
``xfail(strict=True, raises=…)``, so the run fails when the gap closes.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from c360.errors import NotFoundError
from c360.logs import EventLog, partition_for
from c360.logs.kafka import KafkaLog
from c360.logs.local import LocalLog, encode_record
from kafka_mock import MockCluster, mock_cluster
from plugins.services import declare_not_applicable, service_fixture

PARTITIONS = 4  # also the partition count the Kafka mock cluster gives auto-created topics
TORN_TAIL = "torn_tail"


@dataclass
class Backend:
    name: str
    open: Callable[[], EventLog]  # a new handle on the same log
    # Simulate a crash mid-append: leave the first bytes of a record, cut by the given function,
    # at the end of (topic, partition); None if the backend cannot (declared in NOT_APPLICABLE).
    tear_tail: Callable[[str, int, Callable[[bytes], bytes]], None] | None = None


def _local(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    root = tmp_path / "log"

    def tear_tail(topic: str, partition: int, cut: Callable[[bytes], bytes]) -> None:
        active = max((root / topic / str(partition)).glob("*.log"))  # the newest segment
        with active.open("ab") as file:
            file.write(cut(encode_record("torn", b"torn record", 0)))

    return Backend("local", lambda: LocalLog(root, PARTITIONS), tear_tail)


def _kafka(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    cluster: MockCluster = request.getfixturevalue("kafka_cluster")
    return Backend(
        "kafka", lambda: KafkaLog(cluster.bootstrap_servers, PARTITIONS, timeout_ms=10_000)
    )


BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], Backend]] = {
    "local": _local,
    "kafka": _kafka,
}
# A service-backed backend carries its marker, so a run can leave it out (-m "not kafka").
MARKS: dict[str, list[pytest.MarkDecorator]] = {"kafka": [pytest.mark.kafka]}
# Capabilities of this suite a backend does not offer: backend -> capability -> why.
NOT_APPLICABLE: dict[str, dict[str, str]] = {
    "kafka": {
        TORN_TAIL: "the broker owns its segment files and recovers them itself: "
        "no torn tail can be injected"
    },
}

T = TypeVar("T", bound=Callable[..., object])


def needs(capability: str) -> Callable[[T], T]:
    """Generate the decorated test only for the backends that offer ``capability``."""

    def declare(test: T) -> T:
        test.needs = capability  # type: ignore[attr-defined]
        return test

    return declare


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One ``backend`` param per backend that offers what the test :func:`needs`."""
    if "backend" not in metafunc.fixturenames:
        return
    capability = getattr(metafunc.function, "needs", None)
    params = []
    for name in BACKENDS:
        reason = NOT_APPLICABLE.get(name, {}).get(capability or "")
        if reason is None:
            params.append(pytest.param(name, marks=MARKS.get(name, []), id=name))
        else:
            test = f"{metafunc.definition.nodeid}[{name}]"
            declare_not_applicable(metafunc.config, test, f"{name} cannot: {reason}")
    metafunc.parametrize("backend", params, indirect=True)


@service_fixture("kafka", scope="session")
def kafka_cluster() -> Iterator[MockCluster]:
    yield from mock_cluster()


@pytest.fixture
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return BACKENDS[request.param](request, tmp_path)


@pytest.fixture
def log(backend: Backend) -> Iterator[EventLog]:
    opened = backend.open()
    yield opened
    opened.close()


@pytest.fixture
def topic() -> str:
    return f"conformance-{uuid.uuid4().hex[:8]}"


def _key_in(partition: int, prefix: str = "k") -> str:
    return next(
        f"{prefix}{i}"
        for i in range(10_000)
        if partition_for(f"{prefix}{i}", PARTITIONS) == partition
    )


def test_partitions_is_the_configured_count(log: EventLog, topic: str) -> None:
    assert log.partitions(topic) == PARTITIONS


def test_same_key_same_partition_by_the_stable_hash(log: EventLog, topic: str) -> None:
    keys = [f"anon-{i}" for i in range(40)]
    positions = log.append(topic, [(key, b"v") for key in keys * 3])
    by_key: dict[str, set[int]] = defaultdict(set)
    for key, (partition, _) in zip(keys * 3, positions, strict=True):
        by_key[key].add(partition)
    assert all(partitions == {partition_for(key, PARTITIONS)} for key, partitions in by_key.items())
    assert len({p for partitions in by_key.values() for p in partitions}) == PARTITIONS


def test_offsets_contiguous_from_zero_in_append_order(log: EventLog, topic: str) -> None:
    appended: dict[int, list[tuple[int, str, bytes]]] = defaultdict(list)
    for call in range(5):
        records = [(f"user-{i % 7}", f"{call}:{i}".encode()) for i in range(13)]
        for (key, value), (partition, offset) in zip(
            records, log.append(topic, records), strict=True
        ):
            appended[partition].append((offset, key, value))
    for partition in range(PARTITIONS):
        expected = appended[partition]
        assert [offset for offset, _, _ in expected] == list(range(len(expected)))
        read = log.read(topic, partition, 0, 1_000)
        assert [(r.offset, r.key, r.value) for r in read] == expected
        assert {(r.topic, r.partition) for r in read} <= {(topic, partition)}
        assert log.end_offset(topic, partition) == len(expected)


def test_read_from_an_offset_with_a_limit(log: EventLog, topic: str) -> None:
    key = _key_in(2)
    for start in range(0, 700, 100):  # several appends; > 2 sparse-index intervals
        log.append(topic, [(key, str(n).encode()) for n in range(start, start + 100)])
    for offset in (0, 1, 255, 256, 257, 511, 512, 600, 699):
        read = log.read(topic, 2, offset, 3)
        expected = list(range(offset, min(offset + 3, 700)))
        assert [r.offset for r in read] == expected
        assert [int(r.value) for r in read] == expected
    assert log.read(topic, 2, 700, 10) == []
    assert log.read(topic, 2, 10_000, 10) == []
    assert len(log.read(topic, 2, 0, 10_000)) == 700


def test_end_offset(log: EventLog, topic: str) -> None:
    assert [log.end_offset(topic, p) for p in range(PARTITIONS)] == [0] * PARTITIONS
    log.append(topic, [(_key_in(1), b"a"), (_key_in(1), b"b"), (_key_in(3), b"c")])
    assert [log.end_offset(topic, p) for p in range(PARTITIONS)] == [0, 2, 0, 1]


def test_records_carry_an_append_timestamp(log: EventLog, topic: str) -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    log.append(topic, [("k", b"v")])
    (record,) = log.read(topic, partition_for("k", PARTITIONS), 0, 1)
    assert record.timestamp.tzinfo is not None
    assert before <= record.timestamp <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)


def test_empty_values_and_unicode_keys(log: EventLog, topic: str) -> None:
    ((partition, offset),) = log.append(topic, [("clé-ü-😀", b"")])
    (record,) = log.read(topic, partition, offset, 1)
    assert (record.key, record.value) == ("clé-ü-😀", b"")


def test_unknown_partition_is_not_found(log: EventLog, topic: str) -> None:
    with pytest.raises(NotFoundError, match="no partition 4"):
        log.read(topic, PARTITIONS, 0, 1)


def test_durable_across_close_and_reopen(backend: Backend, topic: str) -> None:
    with backend.open() as first:
        positions = first.append(topic, [(f"k{i}", f"v{i}".encode()) for i in range(20)])
    with backend.open() as second:
        for i, (partition, offset) in enumerate(positions):
            (record,) = second.read(topic, partition, offset, 1)
            assert record.value == f"v{i}".encode()
        partition, offset = second.append(topic, [("k0", b"after")])[0]
        assert offset == sum(1 for p, _ in positions if p == partition)


def test_a_reader_sees_records_appended_after_it_opened(backend: Backend, topic: str) -> None:
    with backend.open() as reader, backend.open() as writer:
        assert reader.end_offset(topic, 0) == 0
        key = _key_in(0)
        writer.append(topic, [(key, b"one"), (key, b"two")])
        assert [r.value for r in reader.read(topic, 0, 0, 10)] == [b"one", b"two"]
        assert reader.end_offset(topic, 0) == 2


@pytest.mark.parametrize(
    "tear",
    [
        pytest.param(lambda whole: whole[: len(whole) // 2], id="half-a-record"),
        pytest.param(lambda whole: whole[:5], id="half-a-header"),
        pytest.param(lambda whole: whole[:-1] + bytes([whole[-1] ^ 0xFF]), id="bad-crc"),
        pytest.param(lambda whole: b"\xff" * 64, id="garbage-length"),
    ],
)
@needs(TORN_TAIL)
def test_a_torn_tail_is_dropped_on_open(
    backend: Backend, topic: str, tear: Callable[[bytes], bytes]
) -> None:
    assert backend.tear_tail is not None
    key = _key_in(1)
    with backend.open() as first:
        first.append(topic, [(key, b"a"), (key, b"b"), (key, b"c")])
    backend.tear_tail(topic, 1, tear)
    with backend.open() as reopened:
        assert reopened.end_offset(topic, 1) == 3
        assert [r.value for r in reopened.read(topic, 1, 0, 10)] == [b"a", b"b", b"c"]
        assert reopened.append(topic, [(key, b"d")]) == [(1, 3)]
        assert [r.value for r in reopened.read(topic, 1, 2, 10)] == [b"c", b"d"]
    with backend.open() as again:
        assert [r.value for r in again.read(topic, 1, 0, 10)] == [b"a", b"b", b"c", b"d"]


def test_a_backend_offers_each_capability_or_declares_the_gap(backend: Backend) -> None:
    assert (backend.tear_tail is None) == (TORN_TAIL in NOT_APPLICABLE.get(backend.name, {}))
