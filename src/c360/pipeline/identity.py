"""The identity step for date D: records → links → clusters → stable person ids → identity_map.

Stages (:mod:`c360.contracts.identity`), each handed the compute swap point
(:func:`c360.engines.open_compute`): the record extraction runs on the configured compute engine
like the features; Splink scores on DuckDB or Spark (``compute.engine``); the graph, the guarded
clustering and the stable ids run in-process on DuckDB/NumPy over Arrow (a million records take
seconds there, and the result does not depend on the engine that produced the inputs).
``compute.threads`` and ``compute.memory_limit`` bound every DuckDB the step opens, Splink's too
(each is an in-process session of the swap point).

Everything the step decides is written to the lake (zone ``features``, source ``identity``,
one partition per day), which is what ``c360 identity explain`` and ``eval`` read back:
``records``, ``links``, ``clusters``, ``flags``, ``refused`` (links the cluster guards turned
down), ``ignored`` (evidence values the graph guards refused),
``identity_map``, ``ambiguous`` and the stable-id state (``assignment``, ``person_history``,
``person_redirect``, ``person_ids``).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from c360.batch.features import identity_record_steps
from c360.config import Settings
from c360.contracts.compute import Compute
from c360.contracts.identity import CLUSTER_REASONS, LINKS, SOURCE, ZONE
from c360.engines import open_compute
from c360.identity import clustering, graph, probabilistic, records, stable_ids
from c360.lake import Lake
from c360.pipeline.lake_inputs import raw_inputs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IdentityReport:
    """What one identity run did: counts per stage, guard decisions, seconds per stage."""

    day: dt.date
    records: int
    identifiers: int
    deterministic_links: int
    probabilistic_links: int
    ignored_values: int
    refused_links: int
    flagged_clusters: int
    persons: int
    largest_cluster: int
    merges: int
    splits: int
    redirects: int
    mapped_identifiers: int
    ambiguous_identifiers: int
    probabilistic: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "day": self.day.isoformat()}

    def detail(self) -> str:
        return (
            f"{self.persons} persons from {self.records} records; "
            f"{self.deterministic_links} deterministic + {self.probabilistic_links} "
            f"probabilistic links; {self.merges} merges, {self.splits} splits; "
            f"{self.refused_links} links refused, {self.flagged_clusters} clusters flagged"
        )


def _extract(
    compute: Compute, settings: Settings, lake: Lake, day: dt.date
) -> records.IdentityRecords:
    raw = compute.run(raw_inputs(lake, day), identity_record_steps(day), records.RAW_OUTPUTS)
    return records.build(raw, settings.identity)


def _map_identifiers(extracted: records.IdentityRecords) -> pa.Table:
    """The identifiers identity_map publishes: a cookie's accounts are evidence, not its own."""
    identifiers = extracted.identifiers
    cookie_accounts = pc.and_(
        pc.starts_with(identifiers["record_key"], "clickstream/cookie:"),
        pc.equal(identifiers["id_type"], "customer_id"),
    )
    return identifiers.filter(pc.invert(cookie_accounts))


def resolve(settings: Settings, lake: Lake, day: dt.date) -> IdentityReport:
    """Run the identity step for ``day`` and write its outputs to the lake."""
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = round(now - clock, 3)
        clock = now

    compute = open_compute(settings.compute)
    extracted = _extract(compute, settings, lake, day)
    lap("records")
    deterministic = graph.deterministic_links(
        compute, extracted.records, extracted.identifiers, settings.identity
    )
    lap("graph")
    matched = probabilistic.link_run(compute, extracted.records, settings.identity)
    lap("probabilistic")
    links = pa.concat_tables([deterministic.links.cast(LINKS), matched.links.cast(LINKS)])
    clustered = clustering.cluster(extracted.records, links, settings.identity)
    lap("clustering")
    previous_state = previous(lake, day)
    assigned = stable_ids.assign(
        compute,
        clustered.clusters,
        extracted.records,
        previous_state,
        day,
        reasons=_reasons(clustered),
    )
    mapped = stable_ids.identity_map(compute, _map_identifiers(extracted), assigned.assignment)
    lap("stable_ids")
    _write(
        lake,
        day,
        {
            "records": extracted.records,
            "links": links,
            "clusters": clustered.clusters,
            "flags": clustered.flags,
            "refused": clustered.refused,
            "ignored": deterministic.ignored,
            "identity_map": mapped.map,
            "ambiguous": mapped.ambiguous,
        },
    )
    _write(lake, day, assigned.state_tables())
    lap("write")
    summary = assigned.summary()
    report = IdentityReport(
        day=day,
        records=extracted.records.num_rows,
        identifiers=extracted.identifiers.num_rows,
        deterministic_links=deterministic.links.num_rows,
        probabilistic_links=matched.links.num_rows,
        ignored_values=deterministic.ignored.num_rows,
        refused_links=clustered.refused.num_rows,
        flagged_clusters=len(set(clustered.flags["cluster_key"].to_pylist())),
        persons=summary["persons"],
        largest_cluster=clustered.largest_size,
        merges=summary["merges"],
        splits=summary["splits"],
        redirects=summary["redirects"],
        mapped_identifiers=mapped.map.num_rows,
        ambiguous_identifiers=mapped.ambiguous.num_rows,
        probabilistic=matched.summary(),
        seconds=seconds,
    )
    log.info("identity %s: %s", day, report.detail())
    return report


def _reasons(clustered: clustering.Clustering) -> pa.Table:
    flags = clustered.flags
    return pa.table(
        {"cluster_key": flags["cluster_key"], "reason": flags["reason"]},
        schema=CLUSTER_REASONS,
    )


def _write(lake: Lake, day: dt.date, tables: dict[str, pa.Table]) -> None:
    for name, table in tables.items():
        lake.write_partition(SOURCE, name, day, table, zone=ZONE)


def previous(lake: Lake, day: dt.date) -> stable_ids.Previous | None:
    """The stable-id state kept by the latest day before ``day`` (None on the first run).

    Re-running ``day`` therefore starts from the same state as its first run did.
    """
    kept = [set(lake.partitions(SOURCE, name, ZONE)) for name in STATE_TABLES]
    earlier = sorted(d for d in set.intersection(*kept) if d < day)
    if not earlier:
        return None
    last = earlier[-1]
    return stable_ids.Previous(
        day=last,
        assignment=lake.read_partition(SOURCE, "assignment", last, ZONE),
        redirects=lake.read_partition(SOURCE, "person_redirect", last, ZONE),
        person_ids=lake.read_partition(SOURCE, "person_ids", last, ZONE),
    )


STATE_TABLES = ("assignment", "person_redirect", "person_ids")


def latest_day(lake: Lake, on_or_before: dt.date | None = None) -> dt.date | None:
    """The newest day the identity step wrote (on or before a date)."""
    days = [
        d
        for d in lake.partitions(SOURCE, "assignment", ZONE)
        if on_or_before is None or d <= on_or_before
    ]
    return days[-1] if days else None
