"""A small generated world, checked source by source against the real formats and the truth."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import itertools
import json
import re
import sqlite3
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from c360.config import Settings, load_config
from c360.contracts.segment import validate
from c360.contracts.shop_db import ORDER_STATUSES
from c360.simulator import GenerateSummary, TargetNotEmptyError, generate
from c360.simulator.writers.mailchimp import ADDRESS_PARTS, EXPORT_COLUMNS

START = dt.date(2025, 3, 1)
DAYS = 60
END = dt.datetime.combine(START + dt.timedelta(days=DAYS), dt.time()) - dt.timedelta(seconds=1)
ECOMMERCE = {
    "Products Searched", "Product Viewed", "Product Added", "Product Removed",
    "Checkout Started", "Order Completed",
}  # fmt: skip
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")


def settings_for(
    folder: Path, *, seed: int = 11, customers: int = 400, days: int = DAYS
) -> Settings:
    overrides = {
        "simulator.seed": seed,
        "simulator.customers": customers,
        "simulator.days": days,
        "simulator.start_date": START.isoformat(),
        "simulator.truth_dir": str(folder / "truth"),
        "sources.mysql.url": f"sqlite:///{folder / 'shop.db'}",
        "sources.clickstream.path": str(folder / "clickstream.jsonl.gz"),
        "sources.zendesk.path": str(folder / "zendesk.jsonl"),
        "sources.mailchimp.dir": str(folder / "mailchimp"),
    }
    config = folder / "c360.toml"  # an explicit (empty) file: no ./c360.toml of the caller leaks in
    folder.mkdir(parents=True, exist_ok=True)
    config.write_text("")
    return load_config(config, environ={}, overrides=overrides).settings


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerateSummary]:
    folder = tmp_path_factory.mktemp("world")
    return folder, generate(settings_for(folder))


def jsonl(path: Path) -> Iterator[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            yield json.loads(line)


def query(folder: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(folder / "shop.db")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def truth(folder: Path, name: str) -> list[dict[str, Any]]:
    return pq.read_table(folder / "truth" / f"{name}.parquet").to_pylist()  # type: ignore[no-any-return]


def identifier_index(folder: Path) -> dict[tuple[str, str], set[int]]:
    index: dict[tuple[str, str], set[int]] = defaultdict(set)
    for row in truth(folder, "identifiers"):
        index[(row["id_type"], row["id_value"])].add(row["person_key"])
    return index


def dump(folder: Path) -> dict[str, list[tuple[Any, ...]]]:
    tables = {"customers": "customer_id", "products": "product_id", "orders": "order_id",
              "order_items": "order_item_id"}  # fmt: skip
    return {t: query(folder, f"SELECT * FROM {t} ORDER BY {pk}") for t, pk in tables.items()}


# --- determinism -----------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_world(
    tmp_path: Path, world: tuple[Path, GenerateSummary]
) -> None:
    folder, summary = world
    again = generate(settings_for(tmp_path / "again"))
    assert again.__dict__ | {"seconds": 0} == summary.__dict__ | {"seconds": 0}
    files = sorted(
        p.relative_to(folder) for p in folder.rglob("*") if p.is_file() and p.suffix != ".db"
    )
    assert len(files) >= 10
    for name in files:
        if name.name == "c360.toml":
            continue
        assert (folder / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name
    assert dump(folder) == dump(tmp_path / "again")

    other = generate(settings_for(tmp_path / "other", seed=12))
    assert other.orders != summary.orders or other.clickstream_events != summary.clickstream_events
    for other_name in ("clickstream.jsonl.gz", "zendesk.jsonl", "mailchimp/members.jsonl"):
        assert (folder / other_name).read_bytes() != (tmp_path / "other" / other_name).read_bytes()
    assert dump(folder)["orders"] != dump(tmp_path / "other")["orders"]


def test_refuses_a_non_empty_database_unless_replacing(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, customers=30, days=10)
    first = generate(settings)
    clicks = tmp_path / "clickstream.jsonl.gz"
    before = clicks.read_bytes()
    with pytest.raises(TargetNotEmptyError, match="--replace"):
        generate(settings)
    assert clicks.read_bytes() == before  # nothing was touched
    again = generate(settings, replace=True)
    assert again.orders == first.orders
    assert query(tmp_path, "SELECT count(*) FROM orders") == [(first.orders,)]
    assert not [p for p in tmp_path.rglob(".*tmp-*")]  # no temporary files left behind


# --- orders database ---------------------------------------------------------------------------


def test_orders_db_integrity_and_money(world: tuple[Path, GenerateSummary]) -> None:
    folder, summary = world
    counts = {
        t: n
        for t, (n,) in ((t, query(folder, f"SELECT count(*) FROM {t}")[0]) for t in dump(folder))
    }
    assert counts == {
        "customers": 400,
        "products": summary.products,
        "orders": summary.orders,
        "order_items": summary.order_items,
    }
    assert 200 <= summary.products <= 3000 and summary.orders > 250
    assert query(
        folder,
        "SELECT count(*) FROM order_items WHERE order_id NOT IN (SELECT order_id FROM orders)",
    ) == [(0,)]
    assert query(
        folder,
        "SELECT count(*) FROM order_items "
        "WHERE product_id NOT IN (SELECT product_id FROM products)",
    ) == [(0,)]
    assert query(
        folder,
        "SELECT count(*) FROM orders WHERE customer_id IS NOT NULL "
        "AND customer_id NOT IN (SELECT customer_id FROM customers)",
    ) == [(0,)]
    assert query(
        folder,
        "SELECT count(*) FROM orders WHERE order_id NOT IN (SELECT order_id FROM order_items)",
    ) == [(0,)]

    lines: dict[int, Decimal] = defaultdict(Decimal)
    for order_id, qty, price in query(
        folder, "SELECT order_id, quantity, CAST(unit_price AS TEXT) FROM order_items"
    ):
        assert qty >= 1
        lines[order_id] += qty * Decimal(price)
    statuses: Counter[str] = Counter()
    rows = query(folder, "SELECT order_id, status, CAST(subtotal AS TEXT), CAST(shipping AS TEXT), "
                 "CAST(total AS TEXT), created_at, updated_at, currency FROM orders")  # fmt: skip
    for order_id, status, subtotal, shipping, total, created, updated, currency in rows:
        statuses[status] += 1
        assert Decimal(subtotal) == lines[order_id]
        assert Decimal(total) == Decimal(subtotal) + Decimal(shipping)
        assert Decimal(shipping) in (Decimal(0), Decimal("4.95"))
        assert currency == "EUR"
        created_at = dt.datetime.fromisoformat(created)
        updated_at = dt.datetime.fromisoformat(updated)
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.000000", updated)
        assert dt.datetime.combine(START, dt.time()) <= created_at <= updated_at <= END
        assert (status == "placed") == (created_at == updated_at)
    assert set(statuses) == set(ORDER_STATUSES)
    assert statuses["delivered"] > statuses["shipped"] > 0
    order_ids = [r[0] for r in rows]
    created = [r[5] for r in sorted(rows)]
    assert order_ids == list(range(1, len(rows) + 1)) and created == sorted(created)
    for (price,) in query(folder, "SELECT CAST(price AS TEXT) FROM products"):
        assert Decimal(price) == Decimal(price).quantize(Decimal("0.01")) > 0


def test_guest_orders_exist_and_truth_links_some_to_customers(
    world: tuple[Path, GenerateSummary],
) -> None:
    folder, summary = world
    guests = query(folder, "SELECT order_id, email FROM orders WHERE customer_id IS NULL")
    assert summary.guest_orders == len(guests) > 20
    person_of = {r["record_id"]: r["person_key"] for r in truth(folder, "records")
                 if r["record_type"] == "order"}  # fmt: skip
    persons = {p["person_key"]: p for p in truth(folder, "persons")}
    owners = [persons[person_of[str(order_id)]] for order_id, _ in guests]
    registered = [p for p in owners if p["customer_id"] is not None]
    guest_only = [p for p in owners if p["is_guest_only"]]
    assert registered and guest_only
    accounts = dict(query(folder, "SELECT customer_id, email FROM customers"))
    by_order = dict(guests)
    other_address = [
        o for o, _ in guests
        if persons[person_of[str(o)]]["customer_id"] is not None
        and by_order[o].lower() != accounts[persons[person_of[str(o)]]["customer_id"]].lower()
    ]  # fmt: skip
    assert other_address  # registered persons checking out under a work address or a typo


# --- clickstream -----------------------------------------------------------------------------


def test_clickstream_messages_follow_the_segment_spec(world: tuple[Path, GenerateSummary]) -> None:
    folder, summary = world
    messages = list(jsonl(folder / "clickstream.jsonl.gz"))
    assert len(messages) == summary.clickstream_events > 5000
    types: Counter[str] = Counter()
    events: Counter[str] = Counter()
    last = ""
    for m in messages:
        validate(m)  # the platform's own decoder accepts every message
        types[m["type"]] += 1
        assert UUID.match(m["messageId"]) and UUID.match(m["anonymousId"])
        assert ISO_Z.match(m["timestamp"]) and m["timestamp"] >= last
        last = m["timestamp"]
        context = m["context"]
        assert {"ip", "userAgent", "page", "library"} <= set(context)
        assert {"path", "url", "referrer", "title"} <= set(context["page"])
        assert context["page"]["url"].startswith("https://") and context["page"]["path"].startswith(
            "/"
        )
        assert set(context["library"]) == {"name", "version"}
        if m["type"] == "track":
            assert m["event"] in ECOMMERCE
            events[m["event"]] += 1
            assert isinstance(m["properties"], dict)
        elif m["type"] == "page":
            assert {"path", "url", "referrer", "title"} <= set(m["properties"]) and m["name"]
        elif m["type"] == "identify":
            assert m["userId"] and "@" in m["traits"]["email"]
        elif m["type"] == "alias":
            assert m["previousId"] == m["anonymousId"] and m["userId"]
    assert len({m["messageId"] for m in messages}) == len(messages)
    assert set(types) == {"page", "track", "identify", "alias"}
    assert set(events) == ECOMMERCE
    end = END.isoformat() + ".999Z"
    assert messages[0]["timestamp"] >= START.isoformat() and last <= end


def test_order_completed_matches_the_orders_db(world: tuple[Path, GenerateSummary]) -> None:
    folder, _ = world
    items: dict[str, list[tuple[str, int, str]]] = defaultdict(list)
    for order_id, product, qty, price in query(
        folder, "SELECT order_id, product_id, quantity, CAST(unit_price AS TEXT) FROM order_items "
        "ORDER BY order_item_id"
    ):  # fmt: skip
        items[str(order_id)].append((str(product), qty, f"{Decimal(price):.2f}"))
    sql = "SELECT order_id, customer_id, CAST(total AS TEXT), CAST(subtotal AS TEXT) FROM orders"
    orders = {str(o): (c, Decimal(t), Decimal(s)) for o, c, t, s in query(folder, sql)}
    completed = [
        m for m in jsonl(folder / "clickstream.jsonl.gz") if m.get("event") == "Order Completed"
    ]
    assert 0.75 * len(orders) < len(completed) < len(orders)  # ad blockers hide some orders
    for m in completed:
        p = m["properties"]
        customer_id, total, subtotal = orders[p["order_id"]]
        got = [
            (x["product_id"], x["quantity"], f"{Decimal(str(x['price'])):.2f}")
            for x in p["products"]
        ]
        assert got == items[p["order_id"]]
        assert Decimal(str(p["total"])) == total and Decimal(str(p["revenue"])) == subtotal
        assert m.get("userId") == (str(customer_id) if customer_id is not None else None)


def test_clickstream_has_devices_sessions_and_anonymous_browsing(
    world: tuple[Path, GenerateSummary],
) -> None:
    folder, _ = world
    index = identifier_index(folder)
    by_cookie: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in jsonl(folder / "clickstream.jsonl.gz"):
        by_cookie[m["anonymousId"]].append(m)
    cookies_per_person = Counter(next(iter(index[("anonymous_id", a)])) for a in by_cookie)
    assert max(cookies_per_person.values()) >= 3
    sessions = gaps = anonymous_then_known = 0
    for msgs in by_cookie.values():
        times = [dt.datetime.fromisoformat(m["timestamp"].replace("Z", "+00:00")) for m in msgs]
        steps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
        sessions += 1 + sum(s > 1800 for s in steps)
        gaps += sum(600 < s <= 1800 for s in steps)  # nothing between 10 and 30 minutes
        known = [bool(m.get("userId")) for m in msgs]
        if not known[0] and any(known):
            anonymous_then_known += 1
    assert sessions > 1.5 * len(by_cookie)
    assert gaps == 0
    assert anonymous_then_known > 10


# --- zendesk -------------------------------------------------------------------------------------


def test_zendesk_payloads_have_the_webhook_shape(world: tuple[Path, GenerateSummary]) -> None:
    folder, summary = world
    events = list(jsonl(folder / "zendesk.jsonl"))
    assert len(events) == summary.zendesk_events > 50
    top = {
        "type",
        "account_id",
        "id",
        "time",
        "zendesk_event_version",
        "subject",
        "detail",
        "event",
    }
    users: dict[str, str] = {}
    phones: list[str | None] = []
    tickets: dict[str, list[str]] = defaultdict(list)
    last = ""
    kinds: Counter[str] = Counter()
    for e in events:
        assert set(e) == top
        assert e["time"] >= last and ISO_Z.match(e["time"]) and UUID.match(e["id"])
        last = e["time"]
        kinds[e["type"]] += 1
        d = e["detail"]
        if e["type"] == "zen:event-type:user.created":
            assert e["subject"] == f"zen:user:{d['id']}" and d["role"] == "end-user"
            assert "@" in d["email"] and d["name"]
            users[d["id"]] = e["time"]
            phones.append(d["phone"])  # the user resource's phone: international, or null
            assert d["phone"] is None or re.fullmatch(r"\+\d{2} ?\d{3} ?\d{6}", d["phone"])
            continue
        assert e["zendesk_event_version"] == "2022-11-06"
        assert e["subject"] == f"zen:ticket:{d['id']}"
        assert d["requester_id"] in users and users[d["requester_id"]] <= e["time"]
        assert d["status"] in {"NEW", "OPEN", "SOLVED", "CLOSED"} and d["via"]["channel"]
        if e["type"] == "zen:event-type:ticket.created":
            assert d["id"] not in tickets and d["status"] == "NEW"
        else:
            assert d["id"] in tickets  # created first
        if e["type"] == "zen:event-type:ticket.status_changed":
            assert (
                set(e["event"]) == {"current", "previous"} and e["event"]["current"] == d["status"]
            )
        if e["type"] == "zen:event-type:ticket.comment_added":
            assert e["event"]["comment"]["body"] and "author" in e["event"]["comment"]
        tickets[d["id"]].append(e["type"])
    assert summary.tickets == len(tickets)
    # zendesk_phone_share (0.3) of the users whose person has a phone: 2 of this world's 25
    assert 0 < sum(phone is not None for phone in phones) < len(phones) / 2
    assert {k.removeprefix("zen:event-type:") for k in kinds} == {
        "ticket.created", "ticket.status_changed", "ticket.comment_added", "user.created",
    }  # fmt: skip
    csat = [
        e
        for e in events
        if e["event"].get("comment", {}).get("body", "").startswith("Satisfaction")
    ]
    assert csat and all(any(t.startswith("csat_") for t in e["detail"]["tags"]) for e in csat)


# --- mailchimp -------------------------------------------------------------------------------


def test_mailchimp_files_have_the_api_shapes(world: tuple[Path, GenerateSummary]) -> None:
    folder, summary = world
    mc = folder / "mailchimp"
    members = list(jsonl(mc / "members.jsonl"))
    assert len(members) == summary.mailchimp_members > 50
    statuses = Counter(m["status"] for m in members)
    assert set(statuses) <= {"subscribed", "unsubscribed", "cleaned"} and statuses["subscribed"]
    for m in members:
        assert m["id"] == hashlib.md5(m["email_address"].lower().encode()).hexdigest()
        assert set(m["merge_fields"]) == {"FNAME", "LNAME", "ADDRESS", "PHONE", "BIRTHDAY"}
        address = m["merge_fields"]["ADDRESS"]  # an object, or "" when empty (as the API has it)
        assert address == "" or set(address) == {*ADDRESS_PARTS}
        assert 0 <= m["stats"]["avg_open_rate"] <= 1 and 1 <= m["member_rating"] <= 5
        assert m["timestamp_opt"].endswith("+00:00") and m["last_changed"] >= m["timestamp_opt"]
    campaigns = list(jsonl(mc / "campaigns.jsonl"))
    assert len(campaigns) == summary.campaigns == DAYS // 7 + 1
    assert all(c["type"] == "regular" and c["settings"]["subject_line"] for c in campaigns)
    ids = {m["id"] for m in members}
    rows = list(jsonl(mc / "email_activity.jsonl"))
    assert len(rows) == summary.email_activity
    assert sum(c["emails_sent"] for c in campaigns) == len(rows)
    actions: Counter[str] = Counter()
    for r in rows:
        assert r["email_id"] in ids and r["campaign_id"] in {c["id"] for c in campaigns}
        for a in r["activity"]:
            actions[a["action"]] += 1
            assert a["timestamp"].endswith("+00:00")
    assert actions["open"] > actions["click"] > 0
    assert sum(not r["activity"] for r in rows) > len(rows) / 3  # most recipients do nothing
    with (mc / "members_export.csv").open(newline="") as handle:
        export = list(csv.reader(handle))
    assert tuple(export[0]) == EXPORT_COLUMNS
    assert len(export) == len(members) + 1
    assert {row[0] for row in export[1:]} == {m["email_address"] for m in members}
    # the export's Address: the object's filled parts joined by two spaces
    addresses = {m["email_address"]: m["merge_fields"]["ADDRESS"] for m in members}
    joined = {
        email: "  ".join(a[k] for k in ADDRESS_PARTS if a[k]) if a else ""
        for email, a in addresses.items()
    }
    column = EXPORT_COLUMNS.index("Address")
    assert {row[0]: row[column] for row in export[1:]} == joined


def test_mailchimp_addresses_are_the_persons_own(world: tuple[Path, GenerateSummary]) -> None:
    """A member's ADDRESS is their home address as the shop has it (a share of members)."""
    folder, _ = world
    members = list(jsonl(folder / "mailchimp" / "members.jsonl"))
    filled = [m for m in members if m["merge_fields"]["ADDRESS"]]
    assert 0.25 < len(filled) / len(members) < 0.55  # newsletter_address_share, 0.4
    person_of = {r["record_id"]: r["person_key"] for r in truth(folder, "records")}
    customer_of = {p["person_key"]: p["customer_id"] for p in truth(folder, "persons")}
    accounts = {
        c: (line, postcode, city, country)
        for c, line, postcode, city, country in query(
            folder, "SELECT customer_id, address_line, postcode, city, country FROM customers"
        )
    }
    checked = 0
    for m in filled:
        customer = customer_of[person_of[m["id"]]]
        if customer is None:
            continue
        a = m["merge_fields"]["ADDRESS"]
        assert (a["addr1"], a["zip"], a["city"], a["country"]) == accounts[customer]
        checked += 1
    assert checked > 20


# --- ground truth --------------------------------------------------------------------------------


def test_truth_covers_every_record_and_identifier(world: tuple[Path, GenerateSummary]) -> None:
    folder, summary = world
    index = identifier_index(folder)
    persons = truth(folder, "persons")
    household = {p["person_key"]: p["household_key"] for p in persons}
    for (kind, _), owners in index.items():  # one person each, but a household's mailbox/phone
        if len(owners) > 1:
            assert kind in ("email", "phone") and len(owners) == 2, (kind, owners)
            assert len({household[o] for o in owners} - {None}) == 1, owners
    assert any(len(owners) == 2 for (kind, _), owners in index.items() if kind == "email")
    records = {(r["source"], r["record_type"], r["record_id"]) for r in truth(folder, "records")}
    assert len(persons) == summary.persons == 400 + summary.guests + round(400 * 0.04)

    def has(kind: str, value: Any) -> bool:
        return (kind, str(value)) in index

    for customer_id, email, phone in query(
        folder, "SELECT customer_id, email, phone FROM customers"
    ):
        assert has("customer_id", customer_id) and has("email", email)
        assert phone is None or has("phone", phone)
        assert ("mysql", "customer", str(customer_id)) in records
    for order_id, email, phone in query(folder, "SELECT order_id, email, phone FROM orders"):
        assert ("mysql", "order", str(order_id)) in records and has("email", email)
        assert phone is None or has("phone", phone)
    for m in jsonl(folder / "clickstream.jsonl.gz"):
        assert has("anonymous_id", m["anonymousId"])
        assert "userId" not in m or has("customer_id", m["userId"])
        if m["type"] == "identify":
            assert has("email", m["traits"]["email"])
    for e in jsonl(folder / "zendesk.jsonl"):
        d = e["detail"]
        if e["type"] == "zen:event-type:user.created":
            assert has("zendesk_user_id", d["id"]) and has("email", d["email"])
            assert d["phone"] is None or has("phone", d["phone"])
            assert ("zendesk", "user", d["id"]) in records
        else:
            assert ("zendesk", "ticket", d["id"]) in records
    for m in jsonl(folder / "mailchimp" / "members.jsonl"):
        assert has("mailchimp_id", m["id"]) and has("mailchimp_id", m["unique_email_id"])
        assert has("email", m["email_address"]) and ("mailchimp", "member", m["id"]) in records
        assert not m["merge_fields"]["PHONE"] or has("phone", m["merge_fields"]["PHONE"])
    for r in jsonl(folder / "mailchimp" / "email_activity.jsonl"):
        assert ("mailchimp", "email_activity", f"{r['campaign_id']}:{r['email_id']}") in records
    kinds = Counter(kind for kind, _ in index)
    assert set(kinds) == {
        "customer_id",
        "email",
        "anonymous_id",
        "zendesk_user_id",
        "mailchimp_id",
        "phone",
    }
    # identity resolution has work to do: some persons show several addresses and cookies
    emails_per_person = Counter(next(iter(o)) for (k, _), o in index.items() if k == "email")
    assert max(emails_per_person.values()) >= 3


def test_uuid_pattern_is_strict() -> None:
    assert UUID.match(str(uuid.UUID(int=0x1234_5678_9ABC_4DEF_8123_4567_89AB_CDEF)))
    assert not UUID.match("not-a-uuid")
