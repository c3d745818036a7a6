"""The Dagster code location (c360[dagster]): the daily pipeline's partitioned assets
materialised in-process with Dagster's own test API — one partition of a small simulated world
published with its asset checks; a failed quality check that keeps yesterday serving; a
backfill over two dates as one run, in order."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import create_engine, delete
from tiny_world import DAY, build

from c360.config import Settings, load_config
from c360.contracts import shop_db
from c360.lake import Lake
from c360.pipeline.demo import demo_overrides
from c360.pipeline.steps import ZONE
from c360.simulator import generate
from c360.stores import open_store

pytestmark = pytest.mark.dagster

CUSTOMERS, DAYS = 150, 30
STEPS = ["identity", "features", "score", "quality", "publish", "segments", "gold", "retention"]
CHECKS = {
    "profile_row_count",
    "person_id_not_null",
    "person_id_unique",
    "email_null_rate",
    "freshness_shop_customers",
    "freshness_shop_orders",
    "freshness_mailchimp_members",
    "freshness_mailchimp_email_activity",
    "freshness_zendesk_events",
}


def definitions(settings: Settings, overrides: dict[str, str]):  # type: ignore[no-untyped-def]
    from c360.orchestration.dagster_defs import C360, build_definitions

    return build_definitions(settings, C360(overrides=overrides))


def run(defs, partition: str, **options: object):  # type: ignore[no-untyped-def]
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(partition_key=partition, raise_on_error=False, **options)


def tiny_overrides(settings: Settings) -> dict[str, str]:
    return {
        "lake.url": settings.lake.url,
        "serving.url": settings.serving.url,
        "sources.mysql.url": settings.sources.mysql.url,
        "sources.mailchimp.dir": settings.sources.mailchimp.dir,
        "sources.zendesk.path": settings.sources.zendesk.path,
        "log.url": settings.log.url,
        "log.partitions": str(settings.log.partitions),
        "quality.row_count_tolerance": "0.1",
    }


def test_one_partition_of_a_simulated_world_is_published_with_its_checks(
    tmp_path: Path,
) -> None:
    overrides = {
        **demo_overrides(tmp_path / "world"),
        "simulator.customers": str(CUSTOMERS),
        "simulator.days": str(DAYS),
    }
    settings = load_config(environ={}, overrides=overrides).settings
    generate(settings, replace=True)
    day = settings.simulator.start_date + dt.timedelta(days=DAYS - 1)

    result = run(definitions(settings, overrides), day.isoformat())

    assert result.success
    materialised = {event.asset_key.path[-1] for event in result.get_asset_materialization_events()}
    ingest = {f"ingest_{s}" for s in ("mysql", "mailchimp", "zendesk", "archive")}
    assert materialised == ingest | set(STEPS)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(checks) == CHECKS
    assert all(e.passed for e in checks.values()), {n: e.metadata for n, e in checks.items()}

    persons = Lake(settings.lake.url).manifest("profile", "batch_profile", day, ZONE)["rows"]
    store = open_store(settings.serving.url)
    try:
        published = store.latest_publish()
        assert published is not None
        assert published["batch_date"] == day.isoformat()
        assert published["persons"] == persons > CUSTOMERS / 2
        (some,) = store.query("SELECT person_id FROM person ORDER BY person_id LIMIT 1")
        profile = store.profile(some["person_id"])
        assert profile is not None and profile["person_id"] == some["person_id"]
        assert profile["batch"]["batch_date"] == day
        records = store.step_records(day)  # the run log, as c360 batch status shows it
        skipped = ("score", "retention")  # no churn model registered, no retention period set
        assert {records[name].status for name in (*ingest, *STEPS) if name not in skipped} == {
            "succeeded"
        }
        assert {records[name].status for name in skipped} == {"skipped"}
        assert store.lease("batch") is None  # every step gave the batch lock back
    finally:
        store.dispose()


def test_a_failed_quality_check_fails_the_asset_and_keeps_yesterday_serving(
    tmp_path: Path,
) -> None:
    settings = build(tmp_path)
    defs = definitions(settings, tiny_overrides(settings))
    assert run(defs, DAY.isoformat()).success
    engine = create_engine(settings.sources.mysql.url)
    with engine.begin() as conn:  # Carol's account goes: 4 persons instead of 5 (-20%)
        conn.execute(delete(shop_db.customers).where(shop_db.customers.c.customer_id == 3))
    engine.dispose()
    next_day = DAY + dt.timedelta(days=1)

    failed = run(defs, next_day.isoformat())

    assert not failed.success
    checks = {e.check_name: e for e in failed.get_asset_check_evaluations()}
    assert not checks["profile_row_count"].passed
    assert checks["person_id_unique"].passed
    quality = failed.get_step_failure_events()
    assert [event.step_key for event in quality] == ["c360__quality"]
    assert "profile row count" in str(quality[0].event_specific_data)
    done = {e.asset_key.path[-1] for e in failed.get_asset_materialization_events()}
    assert "publish" not in done and "features" in done
    store = open_store(settings.serving.url)
    try:
        assert store.latest_publish()["batch_date"] == DAY.isoformat()  # type: ignore[index]
        assert store.step_records(next_day)["quality"].status == "failed"
    finally:
        store.dispose()


def test_a_backfill_runs_each_step_over_its_dates_in_order(tmp_path: Path) -> None:
    settings = build(tmp_path)
    defs = definitions(settings, tiny_overrides(settings))
    first = DAY - dt.timedelta(days=1)
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        tags={
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": DAY.isoformat(),
        },
        raise_on_error=False,
    )
    assert result.success
    store = open_store(settings.serving.url)
    try:
        published = store.query("SELECT batch_date FROM batch_publish ORDER BY id")
        assert [row["batch_date"] for row in published] == [first.isoformat(), DAY.isoformat()]
        assert {r.status for r in store.step_records(first).values()} >= {"succeeded"}
    finally:
        store.dispose()
