"""The daily pipeline: run log, skip and resume, the quality gate, backfills, the CLI."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, delete
from tiny_world import DAY, build

from c360.config import Settings
from c360.contracts import serving, shop_db
from c360.contracts.arrow_types import arrow_schema
from c360.lake import Lake
from c360.pipeline.daily import run_day, run_range
from c360.pipeline.steps import ZONE
from c360.stores import open_store

ALL = [
    *("ingest", "identity", "features", "score", "quality", "publish", "segments", "gold"),
    "retention",
]


def statuses(result: object) -> dict[str, str]:
    return {s.step: s.status for s in result.steps}  # type: ignore[attr-defined]


def latest_publish(settings: Settings) -> str:
    store = open_store(settings.serving.url)
    try:
        return str(
            store.query("SELECT batch_date FROM batch_publish ORDER BY id DESC LIMIT 1")[0][
                "batch_date"
            ]
        )
    finally:
        store.dispose()


def test_completed_steps_are_skipped_unless_forced(tiny_world: Settings) -> None:
    first = run_day(tiny_world, DAY)
    skipped = {"score": "skipped", "retention": "skipped"}  # no model; retention not set
    assert statuses(first) == {**dict.fromkeys(ALL, "succeeded"), **skipped}
    assert {s.step: s.rows for s in first.steps}["publish"] == 5
    # What the metrics read: the steps' counts and check results, structured.
    steps = {s.step: s for s in first.steps}
    assert steps["publish"].counts == {"profiles": 5}
    identity = steps["identity"].counts
    assert identity["persons"] == 5 and identity["giant_clusters"] == 0
    assert set(identity) >= {"merges", "splits", "refused_links", "flagged_clusters"}
    passed = {check.name: check.passed for check in steps["quality"].checks}
    assert passed["person_id unique"] is True and len(passed) == steps["quality"].rows
    again = run_day(tiny_world, DAY)
    assert statuses(again) == {**dict.fromkeys(ALL, "done-before"), **skipped}
    forced = run_day(tiny_world, DAY, force=True)
    assert statuses(forced)["features"] == "succeeded"


def test_a_failed_quality_check_keeps_yesterday_serving_then_resumes(tmp_path: Path) -> None:
    settings = build(tmp_path, {"C360_QUALITY_ROW_COUNT_TOLERANCE": "0.1"})
    assert run_day(settings, DAY).status == "succeeded"
    engine = create_engine(settings.sources.mysql.url)
    with engine.begin() as conn:  # Carol's account goes: 4 persons instead of 5 (-20%)
        conn.execute(delete(shop_db.customers).where(shop_db.customers.c.customer_id == 3))
    engine.dispose()
    next_day = DAY + dt.timedelta(days=1)
    failed = run_day(settings, next_day)
    assert failed.status == "failed"
    assert [s.step for s in failed.steps] == ["ingest", "identity", "features", "score", "quality"]
    assert "profile row count" in (failed.steps[-1].detail or "")
    checks = {c.name: c.passed for c in failed.steps[-1].checks}  # every check, failed step too
    assert checks["profile row count"] is False and checks["person_id unique"] is True
    assert latest_publish(settings) == DAY.isoformat()  # yesterday's profile still serving
    store = open_store(settings.serving.url)
    try:
        record = store.step_records(next_day)["quality"]
    finally:
        store.dispose()
    assert record.status == "failed" and "row_count_tolerance" in (record.detail or "")

    lenient_quality = settings.quality.model_copy(update={"row_count_tolerance": 0.5})
    lenient = settings.model_copy(update={"quality": lenient_quality})
    resumed = run_day(lenient, next_day)
    assert statuses(resumed) == {
        "ingest": "done-before",
        "identity": "done-before",
        "features": "done-before",
        "score": "skipped",
        "quality": "succeeded",
        "publish": "succeeded",
        "segments": "succeeded",
        "gold": "succeeded",
        "retention": "skipped",
    }
    assert latest_publish(settings) == next_day.isoformat()


def test_backfill_runs_dates_in_order(tiny_world: Settings) -> None:
    first = DAY - dt.timedelta(days=2)
    results = run_range(tiny_world, first, DAY)
    assert [r.batch_date for r in results] == [first, first + dt.timedelta(days=1), DAY]
    assert all(r.status == "succeeded" for r in results)
    assert latest_publish(tiny_world) == DAY.isoformat()


def test_cli_prints_per_step_json_and_status(tiny_world: Settings, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "C360_LAKE_URL": tiny_world.lake.url,
        "C360_SERVING_URL": tiny_world.serving.url,
        "C360_SOURCES_MYSQL_URL": tiny_world.sources.mysql.url,
        "C360_SOURCES_MAILCHIMP_DIR": tiny_world.sources.mailchimp.dir,
        "C360_SOURCES_ZENDESK_PATH": tiny_world.sources.zendesk.path,
    }
    run = subprocess.run(
        [sys.executable, "-m", "c360", "batch", "run", "--date", DAY.isoformat(), "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["status"] == "succeeded"
    assert [s["step"] for s in report["steps"]] == ALL
    assert all(isinstance(s["seconds"], float) for s in report["steps"])
    status = subprocess.run(
        [sys.executable, "-m", "c360", "batch", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert json.loads(status.stdout)[DAY.isoformat()][0]["status"] in ("succeeded", "skipped")


def test_a_day_with_no_data_from_one_source_still_publishes(tmp_path: Path) -> None:
    settings = build(tmp_path, {"C360_QUALITY_FRESHNESS_DAYS": "0"})
    assert run_day(settings, DAY).status == "succeeded"
    Path(settings.sources.zendesk.path).write_text("")  # Zendesk sent nothing new
    next_day = DAY + dt.timedelta(days=1)
    result = run_day(settings, next_day)
    assert result.status == "succeeded"
    quality = next(s for s in result.steps if s.step == "quality")
    assert "freshness zendesk.events" in (quality.detail or "")  # a warning, not a failure
    assert latest_publish(settings) == next_day.isoformat()
    store = open_store(settings.serving.url)
    try:
        alice = store.query(
            "SELECT support_ticket_count FROM profile p JOIN identity_map m "
            "ON m.person_id = p.person_id WHERE m.id_type = 'customer_id' AND m.id_value = '1'"
        )
    finally:
        store.dispose()
    assert alice == [{"support_ticket_count": 2}]  # yesterday's partitions still count


def test_the_publish_carries_the_timeline_of_the_last_days(tiny_world: Settings) -> None:
    """Orders, ticket events, email activity and web sessions before the cutoff, per identifier,
    read back as one person's timeline: the guest order through its email, the cookie's
    sessions, nothing after the cutoff."""
    assert run_day(tiny_world, DAY).status == "succeeded"
    written = Lake(tiny_world.lake.url).read_partition("profile", "timeline_event", DAY, ZONE)
    contract = arrow_schema(serving.timeline_event)
    assert [(f.name, f.type) for f in written.schema] == [(f.name, f.type) for f in contract]
    store = open_store(tiny_world.serving.url)
    try:
        alice = store.find_person("customer_id", "1")
        assert alice is not None
        page = store.timeline(alice, limit=100, days=90, now=dt.datetime(2025, 1, 11, 0, 30))
    finally:
        store.dispose()
    assert page is not None
    events = [(e["at"], e["kind"], e["type"], e["reference"]) for e in page.events]
    t = dt.datetime
    expected = [
        (t(2025, 1, 9, 11), "web", "session", None),
        (t(2025, 1, 9, 10), "web", "session", None),
        (t(2025, 1, 6, 9), "order", "order", "4"),  # the guest order, through its email
        (t(2025, 1, 5, 10, 1), "email", "click", "c1"),
        (t(2025, 1, 5, 10), "email", "open", "c1"),
        (t(2025, 1, 5, 9), "order", "order", "5"),
        (t(2025, 1, 4, 9), "ticket", "ticket.comment_added", "101"),
        (t(2025, 1, 4, 9), "order", "order", "3"),
        (t(2025, 1, 4, 8, 1), "ticket", "ticket.status_changed", "101"),
        (t(2025, 1, 3, 9), "order", "order", "2"),
        (t(2025, 1, 3, 8, 1), "ticket", "ticket.created", "101"),
        (t(2025, 1, 2, 9), "order", "order", "1"),
        (t(2025, 1, 2, 8, 1), "ticket", "ticket.created", "100"),
    ]
    assert sorted(events, key=lambda e: e[0], reverse=True) == events  # newest first
    assert sorted(events, key=str) == sorted(expected, key=str)
    by_reference = {(e["kind"], e["reference"]): e for e in page.events}
    assert (
        by_reference["order", "1"]["summary"] == "Order 1: 3 items, Mug …, 100.00 GBP (delivered)"
    )
    assert by_reference["order", "2"]["status"] == "cancelled"
    visit = page.events[1]
    assert (visit["page_views"], visit["product_views"], visit["quantity"]) == (1, 1, 1)
    assert visit["ended_at"] == t(2025, 1, 9, 10, 8)
    statuses = {e["type"]: e["status"] for e in page.events if e["reference"] == "101"}
    assert statuses == {
        "ticket.created": "NEW",
        "ticket.status_changed": "SOLVED",
        "ticket.comment_added": None,
    }
