"""The speed-layer path end to end: a file → the local log → the worker → the serving store.

Hand-made events with hand-computed expectations; crashes are injected after a commit and in
the middle of a transaction, and a second worker races the first: the final tables never change.
"""

from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

import c360.speed.worker as worker_module
from c360.contracts.serving import dead_letter, realtime_state, stream_offsets
from c360.logs import EventLog, TopicPartition
from c360.logs.local import LocalLog
from c360.speed.replay import publish_file
from c360.speed.storage import OffsetConflict, claim_offsets
from c360.speed.worker import BatchResult, run
from c360.stores import ServingStore, open_store

PARTITIONS = 2
T = dt.datetime


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
]

EXPECTED_STATE = [
    {
        "id_type": "anonymous_id",
        "id_value": "a1",
        "user_id": "42",
        "user_id_at": T(2025, 3, 1, 10, 8),
        "session_start": T(2025, 3, 1, 10, 40),
        "session_last_event_at": T(2025, 3, 1, 11, 0),
        "current_session_page_views": 2,
        "last_event_at": T(2025, 3, 1, 11, 0),
        "last_event_type": "page",
        "events_total": 7,
        "recent_message_ids": '["m1","m2","m3","m4","m5","m6","m7"]',
    },
    {
        "id_type": "anonymous_id",
        "id_value": "a2",
        "user_id": None,
        "user_id_at": None,
        "session_start": T(2025, 3, 1, 8, 50),
        "session_last_event_at": T(2025, 3, 1, 9, 10),
        "current_session_page_views": 2,
        "last_event_at": T(2025, 3, 1, 9, 10),
        "last_event_type": "Order Completed",
        "events_total": 3,
        "recent_message_ids": '["n1","n2","n3"]',
    },
    {
        "id_type": "user_id",
        "id_value": "77",
        "user_id": "77",
        "user_id_at": T(2025, 3, 1, 12, 0),
        "session_start": T(2025, 3, 1, 12, 0),
        "session_last_event_at": T(2025, 3, 1, 12, 0),
        "current_session_page_views": 0,
        "last_event_at": T(2025, 3, 1, 12, 0),
        "last_event_type": "Signed In",
        "events_total": 1,
        "recent_message_ids": '["u1"]',
    },
]

EXPECTED_DEAD = [  # (reason prefix, payload as stored)
    ("not JSON: ", "this is not json"),
    ("not JSON: ", "\\x00\\xff binary"),
    ("page: timestamp: Input should be a valid datetime", LINES[11].decode()),
    ("track: event: required", LINES[8].decode()),
]


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    path = tmp_path / "clickstream.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(LINES) + b"\n"))
    return path


@pytest.fixture
def log(tmp_path: Path, events_file: Path) -> Iterator[EventLog]:
    with LocalLog(tmp_path / "log", PARTITIONS) as opened:
        assert publish_file(opened, events_file).records == len(LINES)
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


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServingStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/serving.db"
    else:
        url = request.getfixturevalue("postgres_url")
    store = _store(url)
    yield store
    store.dispose()


def _rows(store: ServingStore, table: Any, *order: str) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        query = select(table).order_by(*(table.c[name] for name in order))
        return [dict(row._mapping) for row in conn.execute(query)]


def _tables(store: ServingStore) -> dict[str, list[dict[str, Any]]]:
    """Everything the worker writes, minus what legitimately differs between runs."""
    dead = _rows(store, dead_letter, "partition", "offset")
    return {
        "state": _rows(store, realtime_state, "id_type", "id_value"),
        "offsets": _rows(store, stream_offsets, "partition"),
        "dead": [{k: v for k, v in r.items() if k not in {"id", "received_at"}} for r in dead],
    }


def _end_offsets(log: EventLog) -> dict[int, int]:
    return {p: log.end_offset("clickstream", p) for p in range(PARTITIONS)}


def test_the_worker_builds_exact_state_dead_letters_and_offsets(
    log: EventLog, any_store: ServingStore
) -> None:
    stats = run(log, any_store, stop_when_caught_up=True, batch_size=3)

    assert stats.as_dict() == {
        "records": 16,
        "events": 11,
        "duplicates": 1,
        "dead_lettered": 4,
        "batches": stats.batches,
        "conflicts": 0,
    }
    assert stats.batches >= 3
    assert _rows(any_store, realtime_state, "id_type", "id_value") == EXPECTED_STATE

    dead = _rows(any_store, dead_letter, "reason", "payload")
    assert [
        (r["reason"][: len(reason)], r["payload"])
        for r, (reason, _) in zip(dead, EXPECTED_DEAD, strict=True)
    ] == EXPECTED_DEAD
    for row in dead:
        assert row["topic"] == "clickstream"
        (record,) = log.read("clickstream", row["partition"], row["offset"], 1)
        assert (
            record.value.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
            == (row["payload"])
        )
        assert isinstance(row["received_at"], dt.datetime)

    offsets = {
        r["partition"]: r["next_offset"] for r in _rows(any_store, stream_offsets, "partition")
    }
    assert offsets == _end_offsets(log)
    assert all(
        r["consumer_group"] == "speed" for r in _rows(any_store, stream_offsets, "partition")
    )
    assert any_store.offsets("speed", "clickstream") == _end_offsets(log)

    before = _rows(any_store, dead_letter, "id")
    again = run(log, any_store, stop_when_caught_up=True, batch_size=3)
    assert (again.records, again.batches) == (0, 0)
    assert _rows(any_store, dead_letter, "id") == before
    assert _rows(any_store, realtime_state, "id_type", "id_value") == EXPECTED_STATE


def test_new_records_are_picked_up_where_the_worker_left_off(
    log: EventLog, sqlite_store: ServingStore
) -> None:
    run(log, sqlite_store, stop_when_caught_up=True)
    log.append("clickstream", [("a1", _msg("track", "m8", "11:10", event="Checkout Started"))])
    stats = run(log, sqlite_store, stop_when_caught_up=True)
    assert (stats.records, stats.events, stats.batches) == (1, 1, 1)
    (a1,) = [r for r in _rows(sqlite_store, realtime_state, "id_value") if r["id_value"] == "a1"]
    assert (a1["events_total"], a1["last_event_type"]) == (8, "Checkout Started")
    assert a1["session_last_event_at"] == T(2025, 3, 1, 11, 10)


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
    assert stored == {tp.partition: n for tp, n in committed[0].next_offsets.items()}
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
    real = worker_module.insert_dead_letters
    calls = 0

    def crash_on_the_third_batch(conn: Any, rows: Any) -> None:
        nonlocal calls
        calls += 1
        real(conn, rows)  # state rows and offsets are already written in this transaction
        if calls == 3:
            raise Crash

    monkeypatch.setattr(worker_module, "insert_dead_letters", crash_on_the_third_batch)
    with pytest.raises(Crash):
        run(log, sqlite_store, stop_when_caught_up=True, batch_size=2)
    partial = _tables(sqlite_store)
    monkeypatch.undo()

    # Only the first two batches are visible: up to 2 records x 2 batches per partition.
    first_two = {p: min(4, end) for p, end in _end_offsets(log).items()}
    assert {r["partition"]: r["next_offset"] for r in partial["offsets"]} == first_two
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
    assert first.records + raced[0].records == len(LINES)
    assert _tables(sqlite_store) == uninterrupted


def test_claiming_offsets_is_a_compare_and_set(sqlite_store: ServingStore) -> None:
    tp = TopicPartition("clickstream", 0)
    with sqlite_store.begin() as conn:
        claim_offsets(conn, "speed", {tp: (0, 5)})
    conflict = pytest.raises(OffsetConflict, match="expected at offset 0 but is at 5")
    with conflict, sqlite_store.begin() as conn:
        claim_offsets(conn, "speed", {tp: (0, 7)})
    missing = pytest.raises(OffsetConflict, match="expected at offset 3 but is at None")
    with missing, sqlite_store.begin() as conn:
        claim_offsets(conn, "speed", {TopicPartition("clickstream", 1): (3, 7)})
    with sqlite_store.begin() as conn:
        claim_offsets(conn, "speed", {tp: (5, 9)})
    assert sqlite_store.offsets("speed", "clickstream") == {0: 9}
    assert sqlite_store.offsets("other-group", "clickstream") == {}


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
    assert (stats.records, stats.batches) == (len(LINES) + 1, 2)
    (a2,) = [r for r in _rows(sqlite_store, realtime_state, "id_value") if r["id_value"] == "a2"]
    assert (a2["events_total"], a2["current_session_page_views"]) == (4, 3)
