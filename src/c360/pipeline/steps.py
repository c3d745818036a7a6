"""The daily pipeline's steps. Each reads the lake and writes its output back to it, so any
step can be re-run alone: ingest → identity → features → score → quality → publish.

Outputs (zone ``features``): ``identity/identity_map/dt=D``, ``profile/person/dt=D``,
``profile/batch_profile/dt=D`` (the day's profile, kept: the point-in-time history) and
``profile/timeline_event/dt=D`` (the timeline's batch events, :mod:`c360.batch.timeline`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from c360.batch import features, quality
from c360.config import Settings
from c360.contracts.compute import LakeInput
from c360.contracts.identity import IDENTITY_MAP
from c360.engines import compute
from c360.ingest.run import enabled_sources, ingest
from c360.lake import Lake
from c360.pipeline import churn, churn_registry, identity
from c360.pipeline.lake_inputs import raw_inputs, snapshot
from c360.stores import open_store

ZONE = "features"
TIMELINE = "timeline_event"


@dataclass(frozen=True)
class Outcome:
    status: str  # succeeded | skipped
    rows: int | None = None
    detail: str | None = None


def _identity_input(lake: Lake, day: dt.date) -> LakeInput:
    return snapshot(lake, "identity", "identity_map", day, IDENTITY_MAP, zone=ZONE)


def run_ingest(settings: Settings, lake: Lake, day: dt.date) -> Outcome:
    reports = ingest(settings, day, enabled_sources(settings))
    quarantined = sum(r.quarantined for r in reports)
    return Outcome(
        "succeeded",
        sum(r.rows for r in reports),
        f"{len(reports)} tables, {quarantined} rows quarantined",
    )


def run_identity(settings: Settings, lake: Lake, day: dt.date) -> Outcome:
    report = identity.resolve(settings, lake, day)
    return Outcome("succeeded", report.persons, report.detail())


def run_features(settings: Settings, lake: Lake, day: dt.date) -> Outcome:
    inputs = [*raw_inputs(lake, day), _identity_input(lake, day)]
    timeline = settings.timeline
    steps = features.feature_steps(day, timeline.days, timeline.max_events_per_identifier)
    tables = compute(settings.compute, inputs, steps, features.FEATURE_OUTPUTS)
    tables["batch_profile"] = churn.null_absent_sources(settings, tables["batch_profile"])
    for name in features.FEATURE_OUTPUTS:
        lake.write_partition("profile", name, day, tables[name], zone=ZONE)
    return Outcome("succeeded", tables["batch_profile"].num_rows, "persons profiled")


def run_score(settings: Settings, lake: Lake, day: dt.date) -> Outcome:
    if not churn_registry.versions(lake):
        return Outcome("skipped", detail="no churn model registered yet (c360 train churn)")
    result = churn.score(settings, day, lake=lake)
    detail = f"{result.scored} persons scored by churn model {result.model_version}"
    return Outcome("succeeded", result.scored, detail)


def _earlier_profile(lake: Lake, day: dt.date) -> quality.Earlier | None:
    earlier = [d for d in lake.partitions("profile", "batch_profile", ZONE) if d < day]
    if not earlier:
        return None
    rows = int(lake.manifest("profile", "batch_profile", earlier[-1], ZONE)["rows"])
    return quality.Earlier(earlier[-1], rows)


def _newest_partitions(
    settings: Settings, lake: Lake, day: dt.date
) -> dict[tuple[str, str], dt.date | None]:
    """The newest partition of each watched table of the enabled sources (``sources.enabled``)."""
    enabled = {"shop", *settings.sources.enabled}
    newest: dict[tuple[str, str], dt.date | None] = {}
    for source, table in quality.WATCHED_SOURCES:
        if source not in enabled:
            continue
        days = [d for d in lake.partitions(source, table) if d <= day]
        newest[source, table] = days[-1] if days else None
    return newest


def run_quality(settings: Settings, lake: Lake, day: dt.date) -> Outcome:
    checks = quality.run_checks(
        day,
        lake.read_partition("profile", "batch_profile", day, ZONE),
        lake.read_partition("profile", "person", day, ZONE),
        _earlier_profile(lake, day),
        _newest_partitions(settings, lake, day),
        settings.quality,
    )
    quality.enforce(checks)
    warnings = [f"{c.name}: {c.detail}" for c in checks if not c.passed]
    detail = f"{len(checks)} checks passed" if not warnings else "warnings: " + "; ".join(warnings)
    return Outcome("succeeded", len(checks), detail)


def run_publish(settings: Settings, lake: Lake, day: dt.date) -> Outcome:
    tables = {
        "identity_map": lake.read_partition("identity", "identity_map", day, ZONE),
        "person_redirect": lake.read_partition("identity", "person_redirect", day, ZONE),
        "person": lake.read_partition("profile", "person", day, ZONE),
        "batch_profile": lake.read_partition("profile", "batch_profile", day, ZONE),
    }
    if day in lake.partitions("profile", TIMELINE, ZONE):  # absent for days computed before it
        tables[TIMELINE] = lake.read_partition("profile", TIMELINE, day, ZONE)
    store = open_store(settings.serving.url)
    try:
        store.migrate()
        reconciled = store.publish_batch(day, tables)
    finally:
        store.dispose()
    links = ", ".join(f"{count} {kind}" for kind, count in reconciled.as_dict().items())
    detail = f"profiles published; real-time identity links: {links}"
    return Outcome("succeeded", tables["batch_profile"].num_rows, detail)


STEPS: dict[str, Callable[[Settings, Lake, dt.date], Outcome]] = {
    "ingest": run_ingest,
    "identity": run_identity,
    "features": run_features,
    "score": run_score,
    "quality": run_quality,
    "publish": run_publish,
}
