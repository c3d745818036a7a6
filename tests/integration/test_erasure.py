"""Erasure (issue 18): a person with data in every store, lake and log is erased; a scan of
every serving table, every lake file and every log record then finds none of their identifiers,
and everyone else's data is intact. Then suppression keeps them out.

The world is the hand-made tiny world (tiny_world.py) after a full daily run and the speed
layer: Alice (customer 1; alice@x.com and alice.work@x.com; cookie c-a; Zendesk user 10;
Mailchimp a1) has rows everywhere; Bob, Carol, Dave and Eve are the others.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine, insert, inspect
from tiny_world import DAY, T, _customers, build

from c360.config import Settings
from c360.contracts import shop_db
from c360.lake import Lake
from c360.logs import EventLog, open_configured
from c360.pipeline.daily import run_day
from c360.pipeline.erasure import TOPICS, forget
from c360.pipeline.stream_worker import run as run_stream
from c360.stores import ServingStore
from kafka_mock import MockCluster, mock_cluster
from plugins.services import service_fixture

# Words that only Alice's data holds (her names are in her emails); case-insensitive.
ALICE_TEXT = ("alice",)
# Her short identifiers, searched as whole values of identifier columns only (a "1" elsewhere
# is a count or a price).
ALICE_IDS = {
    "customer_id": {"1"},
    "user_id": {"1", "10"},
    "anonymous_id": {"c-a"},
    "requester_id": {"10"},
    "key": {"c-a", "10"},
    "euid": {"a1"},
    "order_id": {"1", "2", "3", "4", "5", "o-9"},
    "id_value": {"1", "10", "c-a", "a1"},
    "batch_person_id": set(),
}
OTHERS = ("bob@y.com", "carol@z.com", "dave@g.com", "eve@n.com")

SUPPORT = [
    ("10", {"id": "200", "requester_id": "10", "status": "OPEN"}),
    ("11", {"id": "201", "requester_id": "11", "status": "OPEN"}),
]


def _support_event(n: int, detail: dict[str, object]) -> bytes:
    event = {
        "type": "zen:event-type:ticket.created",
        "account_id": 1,
        "id": f"s{n}",
        "time": "2025-01-11T09:00:00Z",
        "zendesk_event_version": "2022-11-06",
        "subject": "zen:x",
        "detail": detail,
        "event": {},
    }
    return json.dumps(event).encode()


# A message the speed layer dead-letters (a track without its event name) naming Alice.
BAD = {
    "type": "track",
    "messageId": "bad-1",
    "anonymousId": "c-q",
    "timestamp": "2025-01-11T02:00:00Z",
    "properties": {"email": "Alice@X.com"},
}
# Alice's order after the cutoff: the speed layer's realtime_order.
ORDER = {
    "type": "track",
    "event": "Order Completed",
    "messageId": "m9",
    "anonymousId": "c-a",
    "userId": "1",
    "timestamp": "2025-01-11T03:00:00Z",
    "properties": {"order_id": "o-9", "revenue": 12.5},
}
EXTRA = [BAD, ORDER]


def _fill_log(log: EventLog, clickstream: list[dict[str, Any]]) -> None:
    records = [(str(m["anonymousId"]), json.dumps(m).encode()) for m in clickstream]
    log.append("clickstream", records)
    log.append("support", [(k, _support_event(n, d)) for n, (k, d) in enumerate(SUPPORT)])


def _world(store: ServingStore, tmp_path: Path, log_url: str | None = None) -> Settings:
    url = store.engine.url.render_as_string(hide_password=False)
    env = {
        "C360_SERVING_URL": url,
        "C360_SOURCES_ENABLED": "mysql,mailchimp,zendesk,clickstream",
        "C360_QUALITY_ROW_COUNT_TOLERANCE": "1",  # a tiny world: one person is 25 %
    }
    if log_url is not None:
        env["C360_LOG_URL"] = log_url
    settings = build(tmp_path, env)
    from tiny_world import CLICKSTREAM

    with open_configured(settings.log) as log:
        if log_url is not None:  # build() filled the local log only
            _fill_log(log, CLICKSTREAM + EXTRA)
        else:
            _fill_log(log, EXTRA)
    store.create_segment("spenders", "total_lifetime_spend > 0")
    store.create_segment("visitors", "time_since_last_event_seconds >= 0")
    result = run_day(settings, DAY)
    assert all(s.status in ("succeeded", "skipped") for s in result.steps), result.steps
    with open_configured(settings.log) as log:
        run_stream(log, store, topics=TOPICS, stop_when_caught_up=True)
    return settings


def _bad_cells(rows: list[dict[str, Any]], person_ids: set[str]) -> list[tuple[str, Any]]:
    found = []
    for row in rows:
        for column, value in row.items():
            if value is None:
                continue
            text = str(value)
            lowered = text.lower()
            if (
                any(word in lowered for word in ALICE_TEXT)
                or any(p in text for p in person_ids)
                or text.strip() in ALICE_IDS.get(column, ())
            ):
                found.append((column, text))
    return found


def _serving_scan(store: ServingStore, person_ids: set[str]) -> dict[str, list[Any]]:
    tables = inspect(store.engine).get_table_names()
    found = {}
    for table in tables:
        if table in ("erasure_receipt", "suppressed_identifier", "alembic_version"):
            continue
        rows = store.query(f'SELECT * FROM "{table}"')
        bad = _bad_cells(rows, person_ids)
        if bad:
            found[table] = bad
    return found


def _lake_scan(root: Path, person_ids: set[str]) -> dict[str, list[Any]]:
    found = {}
    for path in root.rglob("*"):
        if path.suffix == ".parquet":
            bad = _bad_cells(pq.read_table(path).to_pylist(), person_ids)
        elif path.is_file():
            data = path.read_bytes().lower()
            bad = [("bytes", w) for w in ALICE_TEXT if w.encode() in data]
        else:
            continue
        if bad:
            found[str(path.relative_to(root))] = bad
    return found


def _log_records(log: EventLog, compacted: bool = False) -> list[dict[str, Any]]:
    """What a reader of the log sees, erased records left out; ``compacted`` (Kafka): what the
    broker keeps once its cleaner has run — the newest record per key, tombstoned keys gone."""
    rows: list[dict[str, Any]] = []
    for topic in TOPICS:
        for partition in range(log.partitions(topic)):
            offset, seen = 0, []
            while offset < log.end_offset(topic, partition):
                batch = log.read_batch(topic, partition, offset, 1000)
                seen += [
                    {"key": k.decode(), "payload": v.decode()}
                    for k, v in zip(batch.keys, batch.values, strict=True)
                ]
                offset = batch.next_offset
            if compacted:
                seen = list({row["key"]: row for row in seen}.values())
            rows += seen
    return [r for r in rows if r["payload"]]


def _all_records(log: EventLog) -> list[dict[str, Any]]:
    rows = []
    for topic in TOPICS:
        for partition in range(log.partitions(topic)):
            offset = 0
            while offset < log.end_offset(topic, partition):
                batch = log.read_batch(topic, partition, offset, 1000)
                rows += [
                    {"key": k.decode(), "payload": v.decode()}
                    for k, v in zip(batch.keys, batch.values, strict=True)
                ]
                offset = batch.next_offset
    return rows


def _alice(store: ServingStore) -> set[str]:
    person = store.find_person("email", "alice@x.com")
    assert person is not None
    return {person}


def _check_erased(
    settings: Settings, store: ServingStore, persons: set[str], compacted: bool = False
) -> None:
    assert _serving_scan(store, persons) == {}
    assert _lake_scan(Path(settings.lake.url), persons) == {}
    with open_configured(settings.log) as log:
        records = _log_records(log, compacted)
    assert _bad_cells(records, persons) == []
    # everyone else is intact
    texts = json.dumps(records) + json.dumps(store.query("SELECT * FROM identity_map"), default=str)
    assert all(other in texts for other in ("bob@y.com",))
    assert store.find_person("email", "bob@y.com") is not None
    assert store.find_person("email", "carol@z.com") is not None


def _before(settings: Settings, store: ServingStore, persons: set[str]) -> None:
    """Alice really is everywhere before (else the scan after proves nothing)."""
    serving = _serving_scan(store, persons)
    expected = {
        "person", "batch_profile", "identity_map", "search_term", "timeline_event",
        "realtime_state", "realtime_support", "realtime_order", "segment_member",
        "segment_live_member", "segment_event", "dead_letter",
    }  # fmt: skip
    assert expected <= set(serving), sorted(serving)
    lake = _lake_scan(Path(settings.lake.url), persons)
    for prefix in ("raw/shop", "raw/mailchimp", "raw/zendesk", "raw/events", "features", "gold"):
        assert any(path.startswith(prefix) for path in lake), (prefix, sorted(lake))
    with open_configured(settings.log) as log:
        assert _bad_cells(_log_records(log), persons)


def test_a_person_is_erased_from_every_store_lake_and_log(
    store: ServingStore, tmp_path: Path
) -> None:
    settings = _world(store, tmp_path)
    persons = _alice(store)
    _before(settings, store, persons)

    receipt = forget(settings, store, "email", "ALICE@x.com", requested_by="test")

    _check_erased(settings, store, persons)
    kept = store.erasure_receipts()
    assert [r["erasure_id"] for r in kept] == [receipt["erasure_id"]]
    stored = kept[0]
    assert stored["stores"]["serving"]["rows"] > 0
    assert stored["stores"]["lake"]["files"] > 0 and stored["stores"]["lake"]["rows"] > 0
    logged = {t["topic"]: t for t in stored["stores"]["log"]["topics"]}
    assert logged["clickstream"]["records"] == 9 and logged["clickstream"]["files"] == 1
    assert logged["support"]["records"] == 1
    types = {i["type"] for i in stored["identifiers"]}
    assert {"email", "customer_id", "anonymous_id", "zendesk_user_id", "mailchimp_id"} <= types
    # the evidence holds no value: not an email, not a name, not the person id
    assert _bad_cells([stored], persons) == []
    assert (
        "alice" not in json.dumps(store.query("SELECT * FROM erasure_receipt"), default=str).lower()
    )
    # The redacted records keep their offsets; a consumer replaying the log skips them: no
    # dead letter, no state brought back.
    with open_configured(settings.log) as log:
        replay = run_stream(log, store, group="replay", topics=TOPICS, stop_when_caught_up=True)
    assert replay.records == 12 and replay.dead_lettered == 0
    assert _serving_scan(store, persons) == {}


@service_fixture("kafka")
def kafka_cluster() -> Iterator[MockCluster]:
    yield from mock_cluster()


@pytest.mark.kafka
def test_on_kafka_the_erased_keys_are_tombstoned(
    store: ServingStore, tmp_path: Path, kafka_cluster: MockCluster
) -> None:
    url = f"kafka://{kafka_cluster.bootstrap_servers}?timeout_ms=10000"
    settings = _world(store, tmp_path, log_url=url)
    persons = _alice(store)
    _before(settings, store, persons)

    receipt = forget(settings, store, "customer_id", "1", requested_by="test")

    _check_erased(settings, store, persons, compacted=True)
    logged = {t["topic"]: t for t in receipt["stores"]["log"]["topics"]}
    assert logged["clickstream"]["tombstones"] == 2  # c-a, and c-q's message naming her
    assert logged["clickstream"]["pending"] is True
    # The records are still in the mock's log until compaction; a consumer reading it from the
    # start meets the tombstones last, and a replay from offset 0 of the original records is
    # what compaction prevents. The tombstones themselves are skipped: neither events nor dead
    # letters.
    with open_configured(settings.log) as log:
        tombstones = [
            r for r in _all_records(log) if r["payload"] == "" and r["key"] in ("c-a", "c-q")
        ]
    assert len(tombstones) == 2


def test_the_next_extract_does_not_bring_the_person_back_unless_as_a_new_account(
    store: ServingStore, tmp_path: Path
) -> None:
    """Suppression at ingestion: the sources still hold Alice (the shop's database, the
    Mailchimp export, the Zendesk file); the next day's run drops every row keyed by her erased
    identifiers — but a new shop account with her email is a new customer, and is kept."""
    settings = _world(store, tmp_path)
    persons = _alice(store)
    forget(settings, store, "person_id", next(iter(persons)), requested_by="test")
    engine = create_engine(settings.sources.mysql.url)
    with engine.begin() as conn:
        conn.execute(
            insert(shop_db.customers),
            [{**_customers()[0], "customer_id": 99, "first_name": "Alicia",
              "created_at": T(2025, 1, 11, 8), "updated_at": T(2025, 1, 11, 8)}],
        )  # fmt: skip
    engine.dispose()

    next_day = DAY + dt.timedelta(days=1)
    result = run_day(settings, next_day)
    assert all(s.status in ("succeeded", "skipped") for s in result.steps), result.steps

    lake = Lake(settings.lake.url)
    customers = lake.read_partition("shop", "customers", next_day).to_pylist()
    assert sorted(c["customer_id"] for c in customers) == [2, 3, 99]
    orders = lake.read_partition("shop", "orders", next_day)
    assert not {1, 2, 3, 4, 5} & set(orders["order_id"].to_pylist())
    members = lake.read_partition("mailchimp", "members", next_day)["email_address"].to_pylist()
    assert "alice@x.com" not in members and "bob@y.com" in members
    for day in lake.partitions("zendesk", "events"):
        users = lake.read_partition("zendesk", "events", day)["user_id"].to_pylist()
        assert "10" not in users
    # The new account is a person again; nothing of the old one came back.
    returned = store.find_person("customer_id", "99")
    assert returned is not None and returned not in persons
    for id_type, value in (("customer_id", "1"), ("anonymous_id", "c-a"),
                           ("zendesk_user_id", "10"), ("mailchimp_id", "a1")):  # fmt: skip
        assert store.find_person(id_type, value) is None, (id_type, value)
    assert store.query(
        "SELECT count(*) AS n FROM identity_map WHERE id_value = 'alice.work@x.com'"
    ) == [{"n": 0}]
