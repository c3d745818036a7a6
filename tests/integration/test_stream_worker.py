"""The speed-layer path end to end: a file → the local log → the worker → the serving store.

Hand-made clickstream and support events with hand-computed expectations; crashes are injected
after a commit and in the middle of a transaction, and a second worker races the first: the
final tables (state, support state, orders, offsets, dead letters) never change.
"""

from __future__ import annotations

import datetime as dt
import gzip
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

import c360.pipeline.stream_worker as worker_module
import c360.stores.realtime as store_writes
from c360.contracts.serving import (
    dead_letter,
    realtime_order,
    realtime_state,
    realtime_support,
    stream_offsets,
)
from c360.errors import TransientError
from c360.logs import EventLog
from c360.logs.local import LocalLog
from c360.pipeline.stream_publish import publish_file
from c360.pipeline.stream_worker import BatchResult, WorkerStats
from c360.pipeline.stream_worker import run as run_worker
from c360.stores import ServingStore, open_store
from c360.stores.realtime import written_columns
from plugins.services import unavailable

PARTITIONS = 2
TOPICS = ("clickstream", "support")
T = dt.datetime


def run(log: EventLog, store: ServingStore, **options: Any) -> WorkerStats:
    """The worker on both topics."""
    return run_worker(log, store, topics=TOPICS, **options)


def ms(at: str) -> int:
    return int(dt.datetime.fromisoformat(f"2025-03-01T{at}:00+00:00").timestamp() * 1000)


def _msg(kind: str, mid: str, at: str, anon: str | None = "a1", **fields: Any) -> bytes:
    message = {"type": kind, "messageId": mid, "timestamp": f"2025-03-01T{at}:00Z", **fields}
    if anon is not None:
        message["anonymousId"] = anon
    return orjson.dumps(message)


LINES = [
    _msg("page", "m1", "10:00"),
    _msg("page", "n1", "09:00", anon="a2"),
    _msg("page", "m2", "10:05"),
    _msg("track", "m3", "10:07", event="Product Viewed"),
    b"this is not json",
    _msg("track", "n2", "09:10", anon="a2", event="Order Completed"),
    _msg("identify", "m4", "10:08", userId="42", traits={"email": "x@y.z"}),
    _msg("page", "m2", "10:05"),  # a duplicate (a client retry)
    _msg("track", "bad1", "10:09"),  # no event name
    _msg("page", "m5", "11:00"),  # 52 minutes later: a new session
    _msg("page", "n3", "08:50", anon="a2"),  # late, extends a2's session backward
    _msg("page", "bad2", "10:09", anon="a3").replace(b"2025-03-01T10:09:00Z", b"yesterday"),
    _msg("page", "m6", "10:40"),  # late, within 30 minutes of the new session's start
    _msg("track", "u1", "12:00", anon=None, userId="77", event="Signed In"),
    b"\x00\xff binary",
    _msg("page", "m7", "09:00"),  # much older: must not reset the current session
    _msg("track", "c1", "11:05", event="Product Added", properties={"cart_id": "k1",
         "product_id": "p1", "price": 10.0, "quantity": 2}),
    _msg("track", "c2", "11:06", event="Product Added", properties={"cart_id": "k1",
         "product_id": "p2", "price": 2.5}),
    _msg("track", "c3", "11:07", event="Product Removed", properties={"cart_id": "k1",
         "product_id": "p1", "quantity": 1}),
    _msg("track", "c4", "11:08", userId="42", event="Order Completed", properties={
         "checkout_id": "k1", "order_id": "o-1", "total": 12.5, "revenue": 12.5}),
    # The same order fired again (a reload): a new message, the same order id.
    _msg("track", "c5", "11:09", event="Order Completed", properties={"order_id": "o-1",
         "total": 12.5}),
    _msg("track", "c6", "11:10", event="Product Added", properties={"cart_id": "k2",
         "product_id": "p3", "price": 4.0}),
]  # fmt: skip


def _zendesk(kind: str, event_id: str, at: str, **detail: Any) -> bytes:
    payload: dict[str, Any] = {
        "type": f"zen:event-type:{kind}",
        "id": event_id,
        "time": f"2025-03-01T{at}:00Z",
        "detail": detail,
        "event": {},
    }
    if "current" in detail:
        payload["event"] = {"current": detail.pop("current"), "previous": "NEW"}
    return orjson.dumps(payload)


def _ticket(kind: str, event_id: str, at: str, ticket: str, requester: str, **more: Any) -> bytes:
    return _zendesk(f"ticket.{kind}", event_id, at, id=ticket, requester_id=requester, **more)


# (key, value) on the support topic, keyed by requester id as the webhook does.
SUPPORT = [
    ("361", _zendesk("user.created", "z1", "09:59", id="361", email="x@y.z")),
    ("364", _ticket("created", "z2", "09:00", "2000", "364", status="NEW")),
    ("361", _ticket("created", "z3", "10:00", "1000", "361", status="NEW")),
    ("364", _ticket("status_changed", "z4", "09:30", "2000", "364", current="CLOSED")),
    ("361", _ticket("created", "z5", "10:05", "1001", "361")),
    ("361", _ticket("status_changed", "z6", "10:10", "1000", "361", current="OPEN")),
    ("361", b"{not json"),
    ("364", _ticket("status_changed", "z7", "09:10", "2000", "364", current="OPEN")),  # late
    ("361", _ticket("status_changed", "z8", "10:20", "1001", "361", current="SOLVED")),
    ("361", _ticket("status_changed", "z6", "10:10", "1000", "361", current="OPEN")),  # again
    ("363", _zendesk("ticket.created", "z9", "10:00", id="3000")),  # no requester
    ("361", _ticket("comment_added", "z10", "10:21", "1001", "361", status="SOLVED")),
]

EXPECTED_SUPPORT = [
    {
        "id_type": "zendesk_user_id",
        "id_value": "361",
        "open_ticket_count": 1,
        "last_event_at": T(2025, 3, 1, 10, 21),
        "events_total": 6,
        "tickets": orjson.dumps(
            {"1000": ["OPEN", ms("10:10")], "1001": ["SOLVED", ms("10:20")]}
        ).decode(),
        "recent_event_ids": '["z1","z3","z5","z6","z8","z10"]',
        "recent_ticket_events": orjson.dumps(  # by time; z6's repeat dropped; z1 no ticket
            [
                [ms("10:00"), "z3", "ticket.created", "1000", "NEW"],
                [ms("10:05"), "z5", "ticket.created", "1001", "NEW"],
                [ms("10:10"), "z6", "ticket.status_changed", "1000", "OPEN"],
                [ms("10:20"), "z8", "ticket.status_changed", "1001", "SOLVED"],
                [ms("10:21"), "z10", "ticket.comment_added", "1001", None],
            ]
        ).decode(),
    },
    {
        "id_type": "zendesk_user_id",
        "id_value": "364",
        "open_ticket_count": 0,
        "last_event_at": T(2025, 3, 1, 9, 30),
        "events_total": 3,
        "tickets": orjson.dumps({"2000": ["CLOSED", ms("09:30")]}).decode(),
        "recent_event_ids": '["z2","z4","z7"]',
        "recent_ticket_events": orjson.dumps(  # the late z7 in its place by time
            [
                [ms("09:00"), "z2", "ticket.created", "2000", "NEW"],
                [ms("09:10"), "z7", "ticket.status_changed", "2000", "OPEN"],
                [ms("09:30"), "z4", "ticket.status_changed", "2000", "CLOSED"],
            ]
        ).decode(),
    },
]

EXPECTED_ORDERS = [
    {
        "order_id": "o-1",
        "id_type": "anonymous_id",
        "id_value": "a1",
        "user_id": "42",
        "order_at": T(2025, 3, 1, 11, 8),
        "revenue": 12.5,
    }
]

_NO_CART = {
    "cart_id": None,
    "cart_items": 0,
    "cart_value": 0.0,
    "cart_lines": None,
    "cart_since": None,
    "cart_updated_at": None,
}

EXPECTED_STATE = [
    {
        "id_type": "anonymous_id",
        "id_value": "a1",
        "user_id": "42",
        "user_id_at": T(2025, 3, 1, 11, 8),
        "session_start": T(2025, 3, 1, 10, 40),
        "session_last_event_at": T(2025, 3, 1, 11, 10),
        "current_session_page_views": 2,
        "current_session_product_views": 0,
        "last_event_at": T(2025, 3, 1, 11, 10),
        "last_event_type": "Product Added",
        "events_total": 13,
        "cart_id": "k2",
        "cart_items": 1,
        "cart_value": 4.0,
        "cart_lines": '{"p3":[1,4.0]}',
        "cart_since": T(2025, 3, 1, 11, 10),
        "cart_updated_at": T(2025, 3, 1, 11, 10),
        "recent_event_times": orjson.dumps(
            [ms(m) for m in ("10:40", "11:00", "11:05", "11:06", "11:07", "11:08", "11:09")]
            + [ms("11:10")]
        ).decode(),
        "recent_message_ids": '["m1","m2","m3","m4","m5","m6","m7","c1","c2","c3","c4","c5","c6"]',
        # 10:00-10:08 (2 pages, 1 product view) ended when m5 (11:00) started a new session
        "recent_sessions": orjson.dumps([[ms("10:00"), ms("10:08"), 2, 1]]).decode(),
    },
    {
        "id_type": "anonymous_id",
        "id_value": "a2",
        "user_id": None,
        "user_id_at": None,
        "session_start": T(2025, 3, 1, 8, 50),
        "session_last_event_at": T(2025, 3, 1, 9, 10),
        "current_session_page_views": 2,
        "current_session_product_views": 0,
        "last_event_at": T(2025, 3, 1, 9, 10),
        "last_event_type": "Order Completed",
        "events_total": 3,
        **_NO_CART,
        "cart_since": T(2025, 3, 1, 9, 10),  # an order without an order id still empties
        "cart_updated_at": T(2025, 3, 1, 9, 10),
        "recent_event_times": orjson.dumps([ms("08:50"), ms("09:00"), ms("09:10")]).decode(),
        "recent_message_ids": '["n1","n2","n3"]',
        "recent_sessions": "[]",
    },
    {
        "id_type": "user_id",
        "id_value": "77",
        "user_id": "77",
        "user_id_at": T(2025, 3, 1, 12, 0),
        "session_start": T(2025, 3, 1, 12, 0),
        "session_last_event_at": T(2025, 3, 1, 12, 0),
        "current_session_page_views": 0,
        "current_session_product_views": 0,
        "last_event_at": T(2025, 3, 1, 12, 0),
        "last_event_type": "Signed In",
        "events_total": 1,
        **_NO_CART,
        "recent_event_times": orjson.dumps([ms("12:00")]).decode(),
        "recent_message_ids": '["u1"]',
        "recent_sessions": "[]",
    },
]

EXPECTED_DEAD = [  # (topic, reason prefix, payload as stored, reason code)
    ("clickstream", "not JSON: ", "this is not json", "not_json"),
    ("clickstream", "not JSON: ", "\\x00\\xff binary", "not_json"),
    ("clickstream", "page: timestamp: Input should be a valid datetime", LINES[11].decode(),
     "invalid_field"),
    ("clickstream", "track: event: required", LINES[8].decode(), "missing_field"),
    ("support", "not JSON: ", "{not json", "not_json"),
    ("support", "ticket.created needs detail.requester_id", SUPPORT[10][1].decode(),
     "missing_field"),
]  # fmt: skip


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    path = tmp_path / "clickstream.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(LINES) + b"\n"))
    return path


@pytest.fixture
def log(tmp_path: Path, events_file: Path) -> Iterator[EventLog]:
    with LocalLog(tmp_path / "log", PARTITIONS) as opened:
        assert publish_file(opened, events_file).records == len(LINES)
        opened.append("support", SUPPORT)
        yield opened


def _store(url: str) -> ServingStore:
    store = open_store(url)
    store.migrate()
    return store


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[ServingStore]:
    store = _store(f"sqlite:///{tmp_path}/serving.db")
    yield store
    store.dispose()


def _rows(store: ServingStore, table: Any, *order: str) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        columns = written_columns(table)  # the person they resolve to: no identities here
        query = select(*columns).order_by(*(table.c[name] for name in order))
        return [dict(row._mapping) for row in conn.execute(query)]


def _tables(store: ServingStore) -> dict[str, list[dict[str, Any]]]:
    """Everything the worker writes, minus what legitimately differs between runs."""
    dead = _rows(store, dead_letter, "topic", "partition", "offset")
    return {
        "state": _rows(store, realtime_state, "id_type", "id_value"),
        "support": _rows(store, realtime_support, "id_type", "id_value"),
        "orders": _rows(store, realtime_order, "order_id"),
        "offsets": _rows(store, stream_offsets, "topic", "partition"),
        "dead": [{k: v for k, v in r.items() if k not in {"id", "received_at"}} for r in dead],
    }


def _end_offsets(log: EventLog, topic: str = "clickstream") -> dict[int, int]:
    return {p: log.end_offset(topic, p) for p in range(PARTITIONS)}


def test_the_worker_builds_exact_state_dead_letters_and_offsets(
    log: EventLog, store: ServingStore
) -> None:
    stats = run(log, store, stop_when_caught_up=True, batch_size=3)

    assert stats.as_dict() == {
        "records": len(LINES) + len(SUPPORT),
        "events": 17 + 9,
        "duplicates": 1 + 1,
        "dead_lettered": 4 + 2,
        "orders": 1,
        "suppressed": 0,
        "batches": stats.batches,
        "conflicts": 0,
        "recomputed": 0,
        "retries": 0,
    }
    assert stats.batches >= 3
    assert _rows(store, realtime_state, "id_type", "id_value") == EXPECTED_STATE
    assert _rows(store, realtime_support, "id_type", "id_value") == EXPECTED_SUPPORT
    assert _rows(store, realtime_order, "order_id") == EXPECTED_ORDERS

    dead = _rows(store, dead_letter, "topic", "reason", "payload")
    assert [
        (r["topic"], r["reason"][: len(reason)], r["payload"], r["reason_code"])
        for r, (_, reason, _, _) in zip(dead, EXPECTED_DEAD, strict=True)
    ] == EXPECTED_DEAD
    for row in dead:
        (record,) = log.read(row["topic"], row["partition"], row["offset"], 1)
        assert (
            record.value.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
            == (row["payload"])
        )
        assert isinstance(row["received_at"], dt.datetime)

    for topic in TOPICS:
        offsets = {
            r["partition"]: r["next_offset"]
            for r in _rows(store, stream_offsets, "partition")
            if r["topic"] == topic
        }
        assert offsets == _end_offsets(log, topic)
        assert store.offsets("speed", topic) == _end_offsets(log, topic)
    assert {r["consumer_group"] for r in _rows(store, stream_offsets, "partition")} == {"speed"}

    before = _tables(store)
    again = run(log, store, stop_when_caught_up=True, batch_size=3)
    assert (again.records, again.batches) == (0, 0)
    assert _tables(store) == before


def _one_batch(log: EventLog, store: ServingStore) -> WorkerStats:
    """A new worker that stops after its first commit."""
    committed: list[BatchResult] = []
    return run(
        log,
        store,
        stop_when_caught_up=True,
        batch_size=2,
        should_stop=lambda: bool(committed),
        on_commit=committed.append,
    )


def test_a_fresh_worker_with_a_cold_cache_continues_the_same_state(
    log: EventLog, store: ServingStore, uninterrupted: dict[str, Any]
) -> None:
    """States are reloaded from the store when a worker starts: stopping after every batch
    (a new worker, an empty cache, each time) ends exactly where one run ends."""
    runs = 0
    while _one_batch(log, store).batches:
        runs += 1
    assert runs > 5
    assert _tables(store) == uninterrupted


def test_new_records_are_picked_up_where_the_worker_left_off(
    log: EventLog, sqlite_store: ServingStore
) -> None:
    run(log, sqlite_store, stop_when_caught_up=True)
    log.append("clickstream", [("a1", _msg("track", "m8", "11:20", event="Checkout Started"))])
    stats = run(log, sqlite_store, stop_when_caught_up=True)
    assert (stats.records, stats.events, stats.batches) == (1, 1, 1)
    (a1,) = [r for r in _rows(sqlite_store, realtime_state, "id_value") if r["id_value"] == "a1"]
    assert (a1["events_total"], a1["last_event_type"]) == (14, "Checkout Started")
    assert a1["session_last_event_at"] == T(2025, 3, 1, 11, 20)


@pytest.fixture
def uninterrupted(tmp_path: Path, log: EventLog) -> dict[str, list[dict[str, Any]]]:
    store = _store(f"sqlite:///{tmp_path}/reference.db")
    try:
        run(log, store, stop_when_caught_up=True, batch_size=2)
        return _tables(store)
    finally:
        store.dispose()


class Crash(Exception):
    pass


def test_a_crash_after_a_commit_then_a_restart_gives_the_same_tables(
    log: EventLog, sqlite_store: ServingStore, uninterrupted: dict[str, Any]
) -> None:
    committed: list[BatchResult] = []

    def crash_after_the_first_commit(result: BatchResult) -> None:
        committed.append(result)
        raise Crash

    with pytest.raises(Crash):
        run(
            log,
            sqlite_store,
            stop_when_caught_up=True,
            batch_size=2,
            on_commit=crash_after_the_first_commit,
        )
    stored = sqlite_store.offsets("speed", "clickstream")
    assert stored == {
        tp.partition: n for tp, n in committed[0].next_offsets.items() if tp.topic == "clickstream"
    }
    assert stored != _end_offsets(log)

    run(log, sqlite_store, stop_when_caught_up=True, batch_size=2)
    assert _tables(sqlite_store) == uninterrupted
    assert _tables(sqlite_store)["state"] == EXPECTED_STATE


def test_a_crash_inside_the_transaction_rolls_the_whole_batch_back(
    log: EventLog,
    sqlite_store: ServingStore,
    uninterrupted: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = store_writes.insert_dead_letters
    calls = 0

    def crash_on_the_third_batch(conn: Any, rows: Any) -> None:
        nonlocal calls
        calls += 1
        real(conn, rows)  # state rows and offsets are already written in this transaction
        if calls == 3:
            raise Crash

    monkeypatch.setattr(store_writes, "insert_dead_letters", crash_on_the_third_batch)
    with pytest.raises(Crash):
        run(log, sqlite_store, stop_when_caught_up=True, batch_size=2)
    partial = _tables(sqlite_store)
    monkeypatch.undo()

    # Only the first two batches are visible: up to 2 records x 2 batches per partition.
    first_two = {(t, p): min(4, end) for t in TOPICS for p, end in _end_offsets(log, t).items()}
    assert {(r["topic"], r["partition"]): r["next_offset"] for r in partial["offsets"]} == (
        first_two
    )
    assert partial["orders"] == []  # not reached yet
    run(log, sqlite_store, stop_when_caught_up=True, batch_size=2)
    assert _tables(sqlite_store) == uninterrupted


def test_a_crash_after_writing_an_order_rolls_back_its_state_and_offsets_too(
    log: EventLog,
    sqlite_store: ServingStore,
    uninterrupted: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = store_writes.execute
    before: list[dict[str, Any]] = []

    def crash_once_an_order_is_written(conn: Any, writes: Any) -> int:
        written = real(conn, writes)
        if written and any("realtime_order" in write.sql for write in writes):
            before.append(_tables(sqlite_store))  # what other readers see: the last commit
            raise Crash
        return written

    monkeypatch.setattr(store_writes, "execute", crash_once_an_order_is_written)
    with pytest.raises(Crash):
        run(log, sqlite_store, stop_when_caught_up=True, batch_size=2)
    monkeypatch.undo()
    after = _tables(sqlite_store)
    assert after == before[0]  # the batch with the order left no trace: state, offsets, order
    assert after["orders"] == []
    run(log, sqlite_store, stop_when_caught_up=True, batch_size=2)
    assert _tables(sqlite_store) == uninterrupted


def test_a_second_worker_racing_on_the_same_partitions_is_fenced(
    log: EventLog, sqlite_store: ServingStore, uninterrupted: dict[str, Any]
) -> None:
    def another_worker_runs_to_the_end(_: BatchResult) -> None:
        if not raced:
            raced.append(run(log, sqlite_store, stop_when_caught_up=True, batch_size=5))

    raced: list[Any] = []
    first = run(
        log,
        sqlite_store,
        stop_when_caught_up=True,
        batch_size=2,
        on_commit=another_worker_runs_to_the_end,
    )
    assert first.conflicts == 1  # its next batch found the offsets moved, re-read, caught up
    assert first.records + raced[0].records == len(LINES) + len(SUPPORT)
    assert _tables(sqlite_store) == uninterrupted


class FlakyLog(EventLog):
    """A log whose every ninth read fails, as an unreachable broker's would."""

    def __init__(self, inner: EventLog) -> None:
        self.inner = inner
        self.reads = self.failures = 0

    def read_batch(self, topic: str, partition: int, offset: int, max_records: int) -> Any:
        self.reads += 1
        if self.reads % 9 == 5:
            self.failures += 1
            raise TransientError(f"cannot read {topic}/{partition} at offset {offset}: down")
        return self.inner.read_batch(topic, partition, offset, max_records)

    def append(self, topic: str, records: Any) -> list[tuple[int, int]]:
        return self.inner.append(topic, records)

    def partitions(self, topic: str) -> int:
        return self.inner.partitions(topic)

    def end_offset(self, topic: str, partition: int) -> int:
        return self.inner.end_offset(topic, partition)

    def close(self) -> None:
        self.inner.close()


def test_transient_log_errors_are_waited_out_and_change_nothing(
    log: EventLog,
    sqlite_store: ServingStore,
    uninterrupted: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker_module, "RETRY_BASE_S", 0.001)
    flaky = FlakyLog(log)
    stats = run(flaky, sqlite_store, stop_when_caught_up=True, batch_size=2, retry=True)
    assert stats.retries == flaky.failures >= 3
    assert _tables(sqlite_store) == uninterrupted


def test_a_one_shot_run_does_not_retry_by_default(
    log: EventLog, sqlite_store: ServingStore
) -> None:
    with pytest.raises(TransientError, match="cannot read"):
        run(FlakyLog(log), sqlite_store, stop_when_caught_up=True, batch_size=2)


def test_polling_picks_up_live_appends_until_asked_to_stop(
    log: EventLog, sqlite_store: ServingStore
) -> None:
    checks = 0

    def should_stop() -> bool:
        nonlocal checks
        checks += 1
        if checks == 5:  # the worker is idle by now: a live event arrives
            log.append("clickstream", [("a2", _msg("page", "n4", "09:20", anon="a2"))])
        return checks > 10

    stats = run(
        log, sqlite_store, stop_when_caught_up=False, poll_interval=0.001, should_stop=should_stop
    )
    assert (stats.records, stats.batches) == (len(LINES) + len(SUPPORT) + 1, 2)
    (a2,) = [r for r in _rows(sqlite_store, realtime_state, "id_value") if r["id_value"] == "a2"]
    assert (a2["events_total"], a2["current_session_page_views"]) == (4, 3)


@pytest.mark.parametrize("interval", [0.0, 0.25])
def test_a_trickle_of_events_commits_at_most_once_per_commit_interval(
    log: EventLog, sqlite_store: ServingStore, interval: float
) -> None:
    """Events arriving every 10 ms for a second: with a commit interval they are applied in
    batches started that far apart (each commit costs the store's readers); without one, about
    one commit per arrival. Every event is applied either way."""
    commits: list[BatchResult] = []
    appended, started = 0, time.monotonic()

    def should_stop() -> bool:  # checked once a micro-batch: the events due by now arrive
        nonlocal appended
        due = min(100, int((time.monotonic() - started) / 0.01) + 1)
        log.append(
            "clickstream",
            [(f"t{i}", _msg("page", f"t{i}", "09:30", anon=f"t{i}")) for i in range(appended, due)],
        )
        appended = due
        return appended == 100 and sum(c.records for c in commits[1:]) == 100

    stats = run(
        log, sqlite_store, stop_when_caught_up=False, poll_interval=0.005,
        should_stop=should_stop, on_commit=commits.append, commit_interval=interval,
    )  # fmt: skip
    trickled = commits[1:]  # the first batch: the fixture's events, there from the start
    assert sum(c.events for c in trickled) == stats.events - commits[0].events == 100
    if interval:
        assert len(trickled) <= 1.5 / interval + 2  # a second and a half at most
    else:
        assert len(trickled) >= 20


def test_a_backlog_is_not_held_back_by_the_commit_interval(
    tmp_path: Path, sqlite_store: ServingStore
) -> None:
    """Full batches (a backlog after a restart) go on at once; only the last, partial one
    waits out the interval."""
    commits: list[float] = []
    records = 0
    with LocalLog(tmp_path / "backlog", PARTITIONS) as log:
        log.append(
            "clickstream",
            [(f"b{i}", _msg("page", f"b{i}", "09:30", anon=f"b{i}")) for i in range(400)],
        )

        def committed(result: BatchResult) -> None:
            nonlocal records
            records += result.records
            commits.append(time.monotonic())

        stats = run_worker(
            log, sqlite_store, stop_when_caught_up=False, batch_size=20,
            should_stop=lambda: records == 400, on_commit=committed, commit_interval=5.0,
        )  # fmt: skip
    assert stats.events == 400 and len(commits) >= 10
    # no full batch waited for the interval (the last, partial one is reported once it is
    # settled, after its wait)
    assert commits[-2] - commits[0] < 5.0


def test_nul_characters_never_stop_the_worker(tmp_path: Path, store: ServingStore) -> None:
    """PostgreSQL text cannot hold NUL: such identifiers are dead-lettered, other text is
    cleaned, so no record can wedge the worker."""
    props = {"order_id": "o\x00", "cart_id": "k\x00", "product_id": "p", "total": 1}
    lines = [
        _msg("page", "x1", "10:00", anon="a\x00"),  # an identifier: dead-lettered
        _msg("track", "x2", "10:01", anon="n1", event="Bad\x00Name", properties=props),
        _msg("track", "x3", "10:02", anon="n1", event="Order Completed", properties=props),
    ]
    support = [
        ("9", _ticket("created", "y1", "10:00", "t\x00", "9")),  # an id: dead-lettered
        ("9", _ticket("created", "y2", "10:00", "t2", "9", status="NEW\x00")),
    ]
    with LocalLog(tmp_path / "nul-log", PARTITIONS) as log:
        log.append("clickstream", [("n1", line) for line in lines])
        log.append("support", support)
        stats = run(log, store, stop_when_caught_up=True)
    assert (stats.events, stats.dead_lettered, stats.orders) == (3, 2, 0)
    (state,) = _rows(store, realtime_state, "id_value")
    assert (state["id_value"], state["last_event_type"]) == ("n1", "Order Completed")
    assert _rows(store, realtime_support, "id_value")[0]["open_ticket_count"] == 1


def test_implausible_events_are_dead_lettered_with_the_reason_and_a_rebuild_agrees(
    tmp_path: Path, store: ServingStore
) -> None:
    """An event time beyond the record's append time plus the skew, and money out of range,
    are dead-lettered with the reason, never summed; judged against the append time stored in
    the log, a rebuild from offset 0 (later, into a fresh store) decides exactly the same."""
    now = dt.datetime.now(dt.UTC)

    def page(mid: str, at: dt.datetime | str) -> bytes:
        when = at if isinstance(at, str) else at.isoformat().replace("+00:00", "Z")
        return orjson.dumps(
            {"type": "page", "messageId": mid, "timestamp": when, "anonymousId": "p1"}
        )

    def order(mid: str, **properties: Any) -> bytes:
        message = {
            "type": "track",
            "event": "Order Completed",
            "messageId": mid,
            "timestamp": "2025-03-01T10:00:00Z",
            "anonymousId": "p1",
            "properties": {"order_id": mid, **properties},
        }
        return orjson.dumps(message)

    lines = [
        page("past", "2025-03-01T10:00:00Z"),  # history replayed now: fine
        page("skewed", now + dt.timedelta(seconds=60)),  # within the skew: fine
        page("future", now + dt.timedelta(minutes=10)),
        page("far", "2999-01-01T00:00:00Z"),
        order("o-ok", total=20),
        order("o-huge", total=1e300),
        order("o-negative", total=-5),
        order("o-string", total="12.50"),
        orjson.dumps({"type": "track", "event": "Product Added", "messageId": "cart",
                      "timestamp": "2025-03-01T10:00:00Z", "anonymousId": "p1",
                      "properties": {"product_id": "x", "price": 1e308}}),
    ]  # fmt: skip
    ticket = _zendesk("user.created", "z-far", "10:00", id="9")
    support = [("9", ticket.replace(b"2025-03-01T10:00", b"2999-03-01T10:00"))]
    with LocalLog(tmp_path / "implausible", PARTITIONS) as log:
        log.append("clickstream", [("p1", line) for line in lines])
        log.append("support", support)
        stats = run(log, store, stop_when_caught_up=True, max_clock_skew_seconds=300)
        later = _store(f"sqlite:///{tmp_path}/rebuilt.db")
        try:
            rebuilt = run(log, later, stop_when_caught_up=True, max_clock_skew_seconds=300)
            assert _tables(later)["dead"] == _tables(store)["dead"]
        finally:
            later.dispose()
    assert (stats.events, stats.dead_lettered, stats.orders) == (4, 6, 2)
    assert (rebuilt.events, rebuilt.dead_lettered) == (4, 6)
    reasons = {
        orjson.loads(row["payload"]).get("messageId", "zendesk"): row["reason"]
        for row in _rows(store, dead_letter, "offset")
    }
    skew = "later than its receive time plus the allowed clock skew (events.max_clock_skew_seconds)"
    assert skew in reasons["future"] and skew in reasons["far"] and skew in reasons["zendesk"]
    amount = "must be an amount from 0 to 1,000,000,000"
    assert reasons["o-huge"].startswith("track: properties.total of 'Order Completed' " + amount)
    assert reasons["o-negative"].startswith("track: properties.total of 'Order Completed' ")
    assert reasons["cart"].startswith("track: properties.price of 'Product Added' " + amount)
    spend = sorted(r["revenue"] for r in _rows(store, realtime_order, "order_id"))
    assert spend == [12.5, 20.0]
    (state,) = _rows(store, realtime_state, "id_value")
    assert state["last_event_at"] < (now + dt.timedelta(minutes=2)).replace(tzinfo=None)
    assert state["cart_value"] == 0.0


# -- the serving store goes away for a while: the worker waits it out -------------------------


def _through_an_outage(log: EventLog, store: ServingStore, outage: Callable[[], None]) -> int:
    """The worker, retrying, with ``outage`` started right after its second commit; how many
    transient errors it waited out."""
    commits = 0

    def on_commit(_: BatchResult) -> None:
        nonlocal commits
        commits += 1
        if commits == 2:
            outage()

    stats = run(log, store, stop_when_caught_up=True, batch_size=2, retry=True, on_commit=on_commit)
    return stats.retries


def test_sqlite_held_busy_past_its_timeout_is_waited_out(
    log: EventLog,
    tmp_path: Path,
    uninterrupted: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another writer holds SQLite's lock for a second, far past the store's busy timeout:
    the commit fails as StoreUnavailable, the worker backs off and ends as an uninterrupted
    run does."""
    monkeypatch.setattr(worker_module, "RETRY_BASE_S", 0.05)
    path = tmp_path / "busy.db"
    store = _store(f"sqlite:///{path}?timeout=0.05")
    other_writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def hold_the_lock_for_a_second() -> None:
        other_writer.execute("BEGIN IMMEDIATE")
        threading.Timer(1.0, other_writer.rollback).start()

    try:
        assert _through_an_outage(log, store, hold_the_lock_for_a_second) >= 1
        assert _tables(store) == uninterrupted
    finally:
        store.dispose()
        other_writer.close()


@pytest.mark.postgres
@pytest.mark.slow
def test_a_postgres_restart_mid_stream_is_waited_out(
    log: EventLog,
    postgres_url: str,
    uninterrupted: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The machine's PostgreSQL is stopped after the worker's second commit and started again
    three seconds later: every store call in between fails as StoreUnavailable, the worker
    backs off, resumes from the stored offsets, and ends row for row as an uninterrupted run
    (on SQLite) does."""
    cluster = _postgres_cluster()
    monkeypatch.setattr(worker_module, "RETRY_BASE_S", 0.2)
    store = _store(postgres_url)
    restarted = threading.Event()

    def stop_then_start_again() -> None:
        _pg_ctl(cluster, "stop", "-m", "fast")
        threading.Timer(3.0, lambda: (_pg_ctl(cluster, "start"), restarted.set())).start()

    try:
        assert _through_an_outage(log, store, stop_then_start_again) >= 1
        assert restarted.wait(30)
        assert _tables(store) == uninterrupted
    finally:
        store.dispose()
        restarted.wait(30)
        _pg_ctl(cluster, "start")  # whatever happened above, leave PostgreSQL running


def _postgres_cluster() -> tuple[str, str]:
    """The local cluster serving the tests (``pg_lsclusters``: version and name)."""
    if shutil.which("pg_ctlcluster") is None or shutil.which("pg_lsclusters") is None:
        unavailable("restarting PostgreSQL needs pg_ctlcluster (Debian's postgresql-common)")
    listing = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True)
    for line in listing.stdout.splitlines():
        version, name, port, *_ = line.split()
        if port == "5432":
            return version, name
    unavailable(f"no local PostgreSQL cluster on port 5432: {listing.stdout!r}")


def _pg_ctl(cluster: tuple[str, str], action: str, *options: str) -> None:
    """``pg_ctlcluster`` as the .ci/run script calls it; starting a running cluster is fine."""
    version, name = cluster
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, action, *options]
    done = subprocess.run(command, capture_output=True, text=True)
    said = f"{done.stdout} {done.stderr}".strip()
    if done.returncode != 0 and not (action == "start" and "already running" in said):
        raise AssertionError(f"{' '.join(command)} failed: {said}")
