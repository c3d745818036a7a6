"""Behaviour carries signal: churners fade out before their churn date and stop after it."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import sqlite3
from collections import Counter, defaultdict
from typing import Any

import pyarrow.parquet as pq
import pytest

from c360.config import load_config
from c360.simulator import generate

START = dt.date(2024, 6, 1)
DAYS = 300


@pytest.fixture(scope="module")
def activity(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Per person: clickstream events, orders and email opens by day, plus the persons."""
    folder = tmp_path_factory.mktemp("churn")
    config = folder / "c360.toml"
    config.write_text("")
    settings = load_config(
        config,
        environ={},
        overrides={
            "simulator.seed": 5,
            "simulator.customers": 500,
            "simulator.days": DAYS,
            "simulator.start_date": START.isoformat(),
            "simulator.truth_dir": str(folder / "truth"),
            "sources.mysql.url": f"sqlite:///{folder / 'shop.db'}",
            "sources.clickstream.path": str(folder / "clicks.jsonl.gz"),
            "sources.zendesk.path": str(folder / "zendesk.jsonl"),
            "sources.mailchimp.dir": str(folder / "mailchimp"),
        },
    ).settings
    generate(settings)
    ids = pq.read_table(folder / "truth" / "identifiers.parquet").to_pylist()
    owner = {(r["id_type"], r["id_value"]): r["person_key"] for r in ids}
    records = pq.read_table(folder / "truth" / "records.parquet").to_pylist()
    order_owner = {r["record_id"]: r["person_key"] for r in records if r["record_type"] == "order"}

    def day(stamp: str) -> int:
        return (dt.date.fromisoformat(stamp[:10]) - START).days

    events: dict[int, Counter[int]] = defaultdict(Counter)
    with gzip.open(folder / "clicks.jsonl.gz", "rt") as lines:
        for line in lines:
            m = json.loads(line)
            events[owner[("anonymous_id", m["anonymousId"])]][day(m["timestamp"])] += 1
    orders: dict[int, Counter[int]] = defaultdict(Counter)
    conn = sqlite3.connect(folder / "shop.db")
    try:
        for order_id, created in conn.execute("SELECT order_id, created_at FROM orders"):
            orders[order_owner[str(order_id)]][day(created)] += 1
    finally:
        conn.close()
    opens: dict[int, Counter[int]] = defaultdict(Counter)
    with (folder / "mailchimp" / "email_activity.jsonl").open() as lines:
        for line in lines:
            row = json.loads(line)
            for action in row["activity"]:
                if action["action"] in ("open", "click"):
                    opens[owner[("mailchimp_id", row["email_id"])]][day(action["timestamp"])] += 1
    persons = pq.read_table(folder / "truth" / "persons.parquet").to_pylist()
    return {"events": events, "orders": orders, "opens": opens, "persons": persons}


def _window(counts: Counter[int], lo: int, hi: int) -> int:
    return sum(n for d, n in counts.items() if lo <= d < hi)


def _churners(activity: dict[str, Any]) -> list[tuple[int, int]]:
    """(person_key, churn day) of churners active for six months before their churn."""
    out = []
    for p in activity["persons"]:
        if not p["churns"]:
            continue
        churn = (p["churn_date"] - START).days
        first = (p["first_active_date"] - START).days
        if churn - 180 >= first:
            out.append((p["person_key"], churn))
    return out


def test_nothing_happens_after_the_churn_date(activity: dict[str, Any]) -> None:
    churners = [
        (p["person_key"], (p["churn_date"] - START).days)
        for p in activity["persons"]
        if p["churns"]
    ]
    assert len(churners) > 100
    for source in ("events", "orders", "opens"):
        after = sum(_window(activity[source][key], churn, DAYS) for key, churn in churners)
        assert after == 0, source


def test_activity_decays_in_the_weeks_before_churn(activity: dict[str, Any]) -> None:
    churners = _churners(activity)
    assert len(churners) >= 40
    for source, floor in (("events", 400), ("orders", 20)):
        per_4_weeks_before = (
            sum(_window(activity[source][k], c - 180, c - 90) for k, c in churners) * 28 / 90
        )
        last_4_weeks = sum(_window(activity[source][k], c - 28, c) for k, c in churners)
        assert per_4_weeks_before > floor, source
        assert last_4_weeks < 0.5 * per_4_weeks_before, (source, last_4_weeks, per_4_weeks_before)


def test_non_churners_keep_going(activity: dict[str, Any]) -> None:
    stayers = [
        p["person_key"]
        for p in activity["persons"]
        if p["churn_date"] is None
        and p["kind"] == "customer"
        and (p["first_active_date"] - START).days < 60
    ]
    assert len(stayers) > 150
    early = sum(_window(activity["events"][k], 60, 120) for k in stayers)
    late = sum(_window(activity["events"][k], DAYS - 60, DAYS) for k in stayers)
    assert late > 0.7 * early > 0
