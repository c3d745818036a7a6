"""The daily pipeline's steps. Each reads the lake and writes its output back to it, so any
step can be re-run alone: ingest → identity → features → score → quality → publish → segments
→ gold → retention.

Outputs (zone ``features``): ``identity/identity_map/dt=D`` (and ``identity/ambiguous/dt=D``,
published as ``ambiguous_identifier``), ``profile/person/dt=D``,
``profile/batch_profile/dt=D`` (the day's profile, kept: the point-in-time history) and
``profile/timeline_event/dt=D`` (the timeline's batch events, :mod:`c360.batch.timeline`) and
``segments/segment_member/dt=D`` (segment membership spells as of D, :mod:`c360.segments`);
zone ``gold``: the BI tables ``c360/<table>/dt=D`` (:mod:`c360.batch.gold`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from c360.batch import features, gold, quality
from c360.config import Settings
from c360.contracts import serving
from c360.contracts.compute import LakeInput
from c360.contracts.identity import IDENTITY_MAP
from c360.engines import compute
from c360.ingest.run import enabled_sources, ingest
from c360.lake import Lake
from c360.pipeline import churn, churn_registry, identity, retention
from c360.pipeline.lake_inputs import latest_before, partition, raw_inputs, snapshot
from c360.segments import Definition, DefinitionError, fields_of, membership, parse
from c360.stores import open_store

ZONE = "features"
TIMELINE = "timeline_event"
AMBIGUOUS = "ambiguous"  # identity's identifiers of several persons (c360.identity.stable_ids)


@dataclass(frozen=True)
class Outcome:
    """A step's result: its status, rows and a line for people; for the metrics, ``checks``
    (the quality step's) and ``counts`` (named numbers, e.g. the identity step's merges)."""

    status: str  # succeeded | skipped
    rows: int | None = None
    detail: str | None = None
    checks: tuple[quality.Check, ...] = ()  # the quality step's data-quality results
    counts: Mapping[str, int] = field(default_factory=dict)


# The identity report's numbers a step outcome carries (what the batch metrics export).
IDENTITY_COUNTS = (
    "persons", "merges", "splits", "refused_links", "flagged_clusters", "largest_cluster",
)  # fmt: skip


Step = Callable[[Settings, Lake, dt.date], Outcome]


def _identity_input(lake: Lake, day: dt.date) -> LakeInput:
    return snapshot(lake, "identity", "identity_map", day, IDENTITY_MAP, zone=ZONE)


def _ingest(settings: Settings, day: dt.date, sources: tuple[str, ...]) -> Outcome:
    reports = ingest(settings, day, sources)
    quarantined = sum(r.quarantined for r in reports)
    return Outcome(
        "succeeded",
        sum(r.rows for r in reports),
        f"{len(reports)} tables, {quarantined} rows quarantined",
    )


def run_ingest(settings: Settings, lake: Lake, day: dt.date) -> Outcome:
    """Every enabled source (:func:`~c360.ingest.run.enabled_sources`) into the raw zone."""
    return _ingest(settings, day, enabled_sources(settings))


def ingest_source(source: str) -> Step:
    """The ingest step of one source alone (an orchestrator's asset per source)."""

    def run(settings: Settings, lake: Lake, day: dt.date) -> Outcome:
        return _ingest(settings, day, (source,))

    return run


def run_identity(settings: Settings, lake: Lake, day: dt.date) -> Outcome:
    report = identity.resolve(settings, lake, day)
    counts = {name: getattr(report, name) for name in IDENTITY_COUNTS}
    # A giant cluster fails the step (GiantClusterError): none in a step that succeeded.
    counts["giant_clusters"] = 0
    return Outcome("succeeded", report.persons, report.detail(), counts=counts)


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


def watched_sources(settings: Settings) -> list[tuple[str, str]]:
    """The (source, table) pairs of :data:`~c360.batch.quality.WATCHED_SOURCES` whose source
    is enabled (``sources.enabled``): those whose freshness the quality step checks."""
    enabled = {"shop", *settings.sources.enabled}
    return [(source, table) for source, table in quality.WATCHED_SOURCES if source in enabled]


def newest_partitions(
    settings: Settings, lake: Lake, day: dt.date
) -> dict[tuple[str, str], dt.date | None]:
    """The newest partition on or before D of each watched table of the enabled sources."""
    newest: dict[tuple[str, str], dt.date | None] = {}
    for source, table in watched_sources(settings):
        days = [d for d in lake.partitions(source, table) if d <= day]
        newest[source, table] = days[-1] if days else None
    return newest


def run_quality(settings: Settings, lake: Lake, day: dt.date) -> Outcome:
    """The data-quality checks of D's profile (:mod:`c360.batch.quality`); a failed critical
    one raises :class:`~c360.batch.quality.QualityError` (with every check's result)."""
    checks = quality.run_checks(
        day,
        lake.read_partition("profile", "batch_profile", day, ZONE),
        lake.read_partition("profile", "person", day, ZONE),
        _earlier_profile(lake, day),
        newest_partitions(settings, lake, day),
        settings.quality,
    )
    quality.enforce(checks)
    warnings = [f"{c.name}: {c.detail}" for c in checks if not c.passed]
    detail = f"{len(checks)} checks passed" if not warnings else "warnings: " + "; ".join(warnings)
    return Outcome("succeeded", len(checks), detail, tuple(checks))


def run_publish(settings: Settings, lake: Lake, day: dt.date) -> Outcome:
    tables = {
        "identity_map": lake.read_partition("identity", "identity_map", day, ZONE),
        "person_redirect": lake.read_partition("identity", "person_redirect", day, ZONE),
        "person": lake.read_partition("profile", "person", day, ZONE),
        "batch_profile": lake.read_partition("profile", "batch_profile", day, ZONE),
    }
    if day in lake.partitions("profile", TIMELINE, ZONE):  # absent for days computed before it
        tables[TIMELINE] = lake.read_partition("profile", TIMELINE, day, ZONE)
    if day in lake.partitions("identity", AMBIGUOUS, ZONE):  # so, too: the stored rows stay
        tables[serving.ambiguous_identifier.name] = lake.read_partition(
            "identity", AMBIGUOUS, day, ZONE
        )
    store = open_store(settings.serving.url)
    try:
        store.migrate()
        reconciled = store.publish_batch(day, tables)
    finally:
        store.dispose()
    links = ", ".join(f"{count} {kind}" for kind, count in reconciled.as_dict().items())
    detail = f"profiles published; real-time identity links: {links}"
    profiles = tables["batch_profile"].num_rows
    return Outcome("succeeded", profiles, detail, counts={"profiles": profiles})


SEGMENTS = "segments"  # the lake's source folder of segment membership


def run_segments(settings: Settings, lake: Lake, day: dt.date) -> Outcome:
    """Segment membership for D on the batch engine (:mod:`c360.segments.membership`): the
    spells as of D go to the lake (``segments/segment_member/dt=D``, the history) and replace
    ``segment_member`` in the serving store. A definition over a real-time field, or over a
    field the day's profile lacks, is not evaluated in the batch; its spells carry over."""
    store = open_store(settings.serving.url)
    try:
        store.migrate()
        defined = store.segments()
        profile = lake.read_partition("profile", "batch_profile", day, ZONE).schema
        fields = fields_of(profile)
        segments = []
        for segment in defined:
            try:
                parsed: Definition | None = parse(segment.definition, fields)
            except DefinitionError:
                parsed = None
            version = segment.created_at.isoformat()
            segments.append(membership.Segment(segment.name, version, parsed))
        inputs = [
            partition(lake, "batch_profile", "profile", "batch_profile", day, profile, ZONE),
            latest_before(
                lake, "previous_member", SEGMENTS, membership.OUTPUT, day, membership.SCHEMA, ZONE
            ),
        ]
        steps = membership.steps(day, segments)
        spells = compute(settings.compute, inputs, steps, [membership.OUTPUT])
        table = membership.conform(spells[membership.OUTPUT])
        lake.write_partition(SEGMENTS, membership.OUTPUT, day, table, zone=ZONE)
        evaluated = [s.name for s in segments if s.definition is not None]
        store.replace_segment_members(day, table, evaluated)
    finally:
        store.dispose()
    counts = membership.current_counts(table)
    detail = f"{len(evaluated)} segments evaluated, {sum(counts.values())} current members"
    if len(evaluated) < len(segments):
        skipped = len(segments) - len(evaluated)
        detail += f"; not evaluated in the batch (real-time or unknown fields): {skipped}"
    return Outcome("succeeded", table.num_rows, detail)


def run_gold(settings: Settings, lake: Lake, day: dt.date) -> Outcome:
    """The BI tables of D (:mod:`c360.batch.gold`) as Parquet in the lake's gold zone:
    ``profile``, ``segment_member``, ``segment`` and, once the profile has churn columns,
    ``churn_score``. (The serving store's ``bi_`` views follow each publish by themselves.)"""
    person = lake.read_partition("profile", "person", day, ZONE).schema
    profile = lake.read_partition("profile", "batch_profile", day, ZONE).schema
    spells_days = lake.partitions(SEGMENTS, membership.OUTPUT, ZONE)
    inputs = [
        partition(lake, "person", "profile", "person", day, person, ZONE),
        partition(lake, "batch_profile", "profile", "batch_profile", day, profile, ZONE),
        partition(lake, "spells", SEGMENTS, membership.OUTPUT, day, membership.SCHEMA, ZONE)
        if day in spells_days
        else LakeInput("spells", (), membership.SCHEMA),
    ]
    steps, outputs = gold.steps(profile)
    tables = dict(compute(settings.compute, inputs, steps, outputs))
    store = open_store(settings.serving.url)
    try:
        store.migrate()
        tables["segment"] = gold.segment_table([s.as_dict() for s in store.segments()])
    finally:
        store.dispose()
    for name, table in tables.items():
        lake.write_partition(gold.SOURCE, name, day, table, zone=gold.ZONE)
    rows = tables["profile"].num_rows
    return Outcome("succeeded", rows, f"BI tables written: {', '.join(sorted(tables))}")


def run_retention(settings: Settings, lake: Lake, day: dt.date) -> Outcome:
    """Raw events older than ``retention.*`` leave the lake and the event log
    (:mod:`c360.pipeline.retention`); last, so the day's steps have read what they need."""
    kept = settings.retention
    if kept.raw_event_days is None and kept.log_days is None:
        return Outcome("skipped", None, "retention.raw_event_days and log_days are not set")
    report = retention.enforce(settings, lake, day)
    return Outcome("succeeded", len(report.partitions) + report.log_records, report.detail())


STEPS: dict[str, Step] = {
    "ingest": run_ingest,
    "identity": run_identity,
    "features": run_features,
    "score": run_score,
    "quality": run_quality,
    "publish": run_publish,
    SEGMENTS: run_segments,
    "gold": run_gold,
    "retention": run_retention,
}
