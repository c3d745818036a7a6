"""Erasure against a concurrent stream worker and a running batch (issue 18): what the worker
read before the erasure cannot write the person back after it.

Alice (customer 1, cookie c-alice) and Bob (cookie c-bob) browse; the worker runs in a thread
of its own with its own log and store handles, as it would in its own process, and the erasure
opens its own. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from c360.config import Settings, load_config
from c360.logs.local import LocalLog
from c360.pipeline.batch_lock import BatchLocked, batch_lock
from c360.pipeline.erasure import forget
from c360.pipeline.stream_worker import WorkerStats
from c360.pipeline.stream_worker import run as run_worker
from c360.stores import PreparedBatch, ServingStore, open_store, realtime

PARTITIONS = 2
_ids = itertools.count()


def _click(anonymous_id: str, user_id: str | None = None, **fields: Any) -> tuple[str, bytes]:
    n = next(_ids)
    at = dt.datetime(2025, 3, 1, 10, tzinfo=dt.UTC) + dt.timedelta(seconds=n)
    message: dict[str, Any] = {
        "type": "page",
        "messageId": f"m{n}",
        "anonymousId": anonymous_id,
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        **fields,
    }
    if user_id is not None:
        message["userId"] = user_id
    return anonymous_id, orjson.dumps(message)


def _alice() -> list[tuple[str, bytes]]:
    order = {"type": "track", "event": "Order Completed"}
    return [
        _click("c-alice", "1", type="identify", traits={"email": "alice@x.com"}),
        _click("c-alice", "1"),
        _click("c-alice", "1", **order, properties={"order_id": f"o-{next(_ids)}", "total": 5}),
    ]


def _bob(n: int = 3) -> list[tuple[str, bytes]]:
    return [_click("c-bob") for _ in range(n)]


def _settings(store: ServingStore, tmp_path: Path) -> Settings:
    env = {
        "C360_SERVING_URL": store.engine.url.render_as_string(hide_password=False),
        "C360_LAKE_URL": str(tmp_path / "lake"),
        "C360_LOG_URL": f"local://{tmp_path / 'log'}",
        "C360_LOG_PARTITIONS": str(PARTITIONS),
    }
    return load_config(environ=env).settings


@pytest.fixture
def other_store(store: ServingStore) -> Iterator[ServingStore]:
    """A second handle on the same database: the erasure's, as another process would open."""
    opened = open_store(store.engine.url.render_as_string(hide_password=False))
    yield opened
    opened.dispose()


def _alice_rows(store: ServingStore) -> list[dict[str, Any]]:
    return [
        *store.query(
            "SELECT id_type, id_value FROM realtime_state "
            "WHERE id_value IN ('c-alice', '1') OR user_id = '1'"
        ),
        *store.query("SELECT order_id FROM realtime_order WHERE user_id = '1'"),
        *store.query("SELECT anonymous_id FROM identity_stitch WHERE customer_id = '1'"),
    ]


def _bob_events(store: ServingStore) -> int:
    rows = store.query("SELECT events_total FROM realtime_state WHERE id_value = 'c-bob'")
    return int(rows[0]["events_total"]) if rows else 0


def _erase_while_working(
    log: LocalLog,
    store: ServingStore,
    reached: threading.Event,
    erased: threading.Event,
    settings: Settings,
    other_store: ServingStore,
) -> WorkerStats:
    """Run the worker to the log's end in a thread; erase Alice once it has ``reached`` the
    point the test holds it at, then let it go on (``erased``); its totals."""
    stats: list[WorkerStats] = []
    worker = threading.Thread(
        target=lambda: stats.append(run_worker(log, store, stop_when_caught_up=True))
    )
    worker.start()
    assert reached.wait(60)
    receipt = forget(settings, other_store, "customer_id", "1", requested_by="test")
    assert receipt["stores"]["serving"]["rows"] > 0
    erased.set()
    worker.join(60)
    assert stats, "the worker failed"
    return stats[0]


def test_a_batch_computed_before_the_erasure_is_recomputed_not_committed(
    store: ServingStore, other_store: ServingStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race itself, made certain: the worker has read Alice's new events and computed
    their batch, the erasure runs to its end, and only then does the worker commit."""
    settings = _settings(store, tmp_path)
    with LocalLog(tmp_path / "log", PARTITIONS) as log:
        log.append("clickstream", _alice() + _bob())
        run_worker(log, store, stop_when_caught_up=True)  # Alice is known to the store
        assert _alice_rows(store)
        log.append("clickstream", _alice() + _bob())

        computed, erased = threading.Event(), threading.Event()
        commit = store.commit_micro_batch

        def commit_after_the_erasure(group: str, prepared: PreparedBatch) -> int:
            computed.set()
            assert erased.wait(60)
            return commit(group, prepared)

        monkeypatch.setattr(store, "commit_micro_batch", commit_after_the_erasure)
        stats = _erase_while_working(log, store, computed, erased, settings, other_store)

    assert stats.recomputed == 1 and stats.conflicts == 0
    assert _alice_rows(store) == []
    assert _bob_events(store) == 6


def test_a_batch_committing_while_the_erasure_runs_is_deleted_by_it(
    store: ServingStore, other_store: ServingStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other side of the race: the worker's transaction has checked the suppression list
    (unchanged) and is still open, with Alice's new order inserted, when the erasure runs. The
    erasure's deletes wait for it (PostgreSQL: the publish fence, exclusively; SQLite: the one
    writer) and then remove what it wrote; it is not recomputed."""
    settings = _settings(store, tmp_path)
    with LocalLog(tmp_path / "log", PARTITIONS) as log:
        log.append("clickstream", _alice() + _bob())
        run_worker(log, store, stop_when_caught_up=True)
        log.append("clickstream", _alice() + _bob())

        inside, erased = threading.Event(), threading.Event()
        check = realtime.check_suppression

        def check_then_stay_open(conn: Any, expected: int) -> None:
            check(conn, expected)
            inside.set()
            erased.wait(2.0)  # the erasure cannot finish meanwhile: its deletes wait for us

        monkeypatch.setattr(realtime, "check_suppression", check_then_stay_open)
        stats = _erase_while_working(log, store, inside, erased, settings, other_store)

    assert stats.recomputed == 0 and stats.orders == 1
    assert _alice_rows(store) == []
    assert _bob_events(store) == 6


@pytest.mark.slow
def test_a_worker_streaming_throughout_an_erasure_does_not_bring_the_person_back(
    store: ServingStore, other_store: ServingStore, tmp_path: Path
) -> None:
    """Real concurrency: Alice and Bob keep browsing (appended straight to the log, as a
    producer without the collector's check would) while the worker polls and the erasure
    runs; once the worker has caught up, nothing of Alice is left and Bob lost nothing."""
    settings = _settings(store, tmp_path)
    stop_producing, stop_working = threading.Event(), threading.Event()
    bob_sent = 0
    errors: list[BaseException] = []

    def produce() -> None:
        nonlocal bob_sent
        with LocalLog(tmp_path / "log", PARTITIONS) as log:
            while not stop_producing.wait(0.005):
                log.append("clickstream", _alice() + _bob(5))
                bob_sent += 5

    stats: list[WorkerStats] = []

    def work() -> None:
        try:
            with LocalLog(tmp_path / "log", PARTITIONS) as log:
                stats.append(
                    run_worker(
                        log,
                        store,
                        stop_when_caught_up=False,
                        batch_size=50,
                        poll_interval=0.01,
                        should_stop=stop_working.is_set,
                    )
                )
        except BaseException as exc:  # the assertion below shows it
            errors.append(exc)

    with LocalLog(tmp_path / "log", PARTITIONS) as log:  # the topic exists before the worker
        log.append("clickstream", _bob(5))
        bob_sent += 5
    producer, worker = threading.Thread(target=produce), threading.Thread(target=work)
    producer.start()
    worker.start()
    try:
        _wait_for(lambda: errors or (_alice_rows(store) != [] and _bob_events(store) > 50))
        assert errors == []
        forget(settings, other_store, "customer_id", "1", requested_by="test")
        sent = bob_sent
        _wait_for(lambda: _bob_events(store) > sent + 50)  # the worker goes on after it
    finally:
        stop_producing.set()
        producer.join(30)
    try:
        _wait_for(lambda: _bob_events(store) == bob_sent)
    finally:
        stop_working.set()
        worker.join(30)

    assert errors == []
    assert _alice_rows(store) == []
    assert _bob_events(store) == bob_sent
    assert stats[0].suppressed > 0  # Alice's events kept coming and were dropped


def _wait_for(condition: Any, seconds: float = 60.0) -> None:
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
    while not condition():
        assert dt.datetime.now(dt.UTC) < deadline, "timed out"
        threading.Event().wait(0.05)


def test_an_erasure_waits_for_a_running_batch_and_is_refused_after_its_wait(
    store: ServingStore, tmp_path: Path
) -> None:
    settings = _settings(store, tmp_path)
    with batch_lock(store, dt.timedelta(minutes=5), owner="host:1:batch"):
        with pytest.raises(BatchLocked, match="host:1:batch"):
            forget(
                settings,
                store,
                "customer_id",
                "1",
                requested_by="test",
                lock_wait=dt.timedelta(seconds=0.2),
            )
        assert store.suppression_list().hashes == frozenset()  # it did not start
    receipt = forget(settings, store, "customer_id", "1", requested_by="test")
    assert receipt["identifiers"]
