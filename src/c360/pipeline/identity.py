"""The identity step for date D: records → links → clusters → stable person ids → identity_map.

Stages (:mod:`c360.contracts.identity`) work on the tables of one in-process session of the
compute swap point (:func:`c360.engines.open_compute`), bounded by ``compute.threads`` and
``compute.memory_limit`` and spilling past the limit, so the rows never sit on the driver as
whole Arrow tables: the record extraction runs on the configured engine (on DuckDB in the
session itself, over views of the lake); Splink scores on DuckDB (the session's table, in
place) or Spark (``compute.engine``; what crosses between Spark and the session crosses as
Parquet files in a scratch folder under the lake, removed after each hand-over);
normalisation, the graph, the guarded clustering (NumPy over record positions) and the stable
ids run in the session, so their result does not depend on the engine that produced the
inputs.

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

from c360.batch.features import identity_record_steps
from c360.config import Settings
from c360.contracts import identity as contract
from c360.contracts.compute import LakeInput, LocalSql
from c360.contracts.identity import SOURCE, ZONE
from c360.engines import open_compute
from c360.identity import clustering, graph, probabilistic, records, stable_ids
from c360.lake import Lake
from c360.pipeline import lake_inputs
from c360.pipeline.lake_inputs import raw_inputs
from c360.pipeline.table_writes import write_tables

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


# What the step writes (features/identity/<name>/dt=D): the session table each is read from
# and its schema; state tables last (the next day reads them back).
_OUTPUTS: tuple[tuple[str, str, pa.Schema], ...] = (
    ("records", "records", contract.RECORDS),
    ("links", "keyed_links", contract.LINKS),
    ("clusters", "clusters", contract.CLUSTERS),
    ("flags", "flags", contract.FLAGS),
    ("refused", "refused", contract.REFUSED),
    ("ignored", "ignored", contract.IGNORED),
    ("identity_map", "identity_map", contract.IDENTITY_MAP),
    ("ambiguous", "ambiguous", contract.AMBIGUOUS),
    ("assignment", "assignment", contract.ASSIGNMENT),
    ("person_history", "history", contract.PERSON_HISTORY),
    ("person_redirect", "redirects", contract.REDIRECTS),
    ("person_ids", "person_ids", contract.PERSON_IDS),
)
_WRITE_BATCH_ROWS = 250_000


def _count(local: LocalSql, table: str) -> int:
    return int(local.rows(f"SELECT count(*) FROM {table}")[0][0])


def resolve(settings: Settings, lake: Lake, day: dt.date) -> IdentityReport:
    """Run the identity step for ``day`` and write its outputs to the lake.

    Every stage works on tables of one in-process session of the compute swap point (DuckDB,
    bounded by ``compute.memory_limit`` and spilling past it): the records, identifiers, links,
    clusters and ids never become whole Arrow tables on the driver; each output is streamed
    to the lake in batches.
    """
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = round(now - clock, 3)
        clock = now

    # On Spark, tables cross between the executors and the session as Parquet files in the
    # lake's scratch folders (which a cluster's executors reach, as they reach the lake).
    compute = open_compute(settings.compute, lake.scratch)
    with compute.local() as local:
        compute.run_into(
            local, raw_inputs(lake, day), identity_record_steps(day), records.RAW_OUTPUTS
        )
        lap("extract")
        records.normalise_in(local, settings.identity)
        lap("records")
        graph.deterministic_in(local, settings.identity)
        lap("graph")
        matched = probabilistic.link_in(compute, local, settings.identity)
        lap("probabilistic")
        deterministic_links = _count(local, "deterministic_links")
        local.execute(
            "CREATE OR REPLACE TEMP TABLE links AS SELECT * FROM deterministic_links "
            "UNION ALL SELECT * FROM probabilistic_links"
        )
        local.execute("DROP TABLE deterministic_links")
        local.execute("DROP TABLE probabilistic_links")
        clustered = clustering.cluster_in(local, settings.identity)
        lap("clustering")
        local.register_lake(_previous_inputs(lake, day))
        local.execute(
            "CREATE OR REPLACE TEMP VIEW reasons_in AS SELECT cluster_key, reason FROM flags"
        )
        stable_ids.assign_in(local, day)
        # The identifiers identity_map publishes: a cookie's accounts are evidence, not its own.
        local.execute(
            """
            CREATE OR REPLACE TEMP VIEW identifiers_in AS SELECT * FROM identifiers
            WHERE NOT (id_type = 'customer_id'
                       AND pos IN (SELECT rowid FROM records WHERE record_type = 'cookie'))
            """
        )
        local.execute("CREATE OR REPLACE TEMP VIEW assignment_in AS SELECT * FROM assignment")
        stable_ids.identity_map_in(local)
        identifiers = _count(local, "identifiers")
        local.execute("DROP VIEW identifiers_in")
        local.execute("DROP TABLE identifiers")  # not written: room for the writes
        lap("stable_ids")
        _write(local, lake, day)
        lap("write")
        summary = stable_ids.summary_in(local)
        report = IdentityReport(
            day=day,
            records=_count(local, "records"),
            identifiers=identifiers,
            deterministic_links=deterministic_links,
            probabilistic_links=matched.link_count or 0,
            ignored_values=_count(local, "ignored"),
            refused_links=clustered.refused,
            flagged_clusters=clustered.flagged_clusters,
            persons=summary["persons"],
            largest_cluster=clustered.largest_size,
            merges=summary["merges"],
            splits=summary["splits"],
            redirects=summary["redirects"],
            mapped_identifiers=_count(local, "identity_map"),
            ambiguous_identifiers=_count(local, "ambiguous"),
            probabilistic=matched.summary(),
            seconds=seconds,
        )
    log.info("identity %s: %s", day, report.detail())
    return report


def _write(local: LocalSql, lake: Lake, day: dt.date) -> None:
    """Every output's session table to ``features/identity/<name>/dt=D``, streamed in
    batches, two tables encoded at a time (:mod:`c360.pipeline.table_writes`)."""
    # The links by record key, as a table (a table is read in slices: both writers keep busy).
    local.execute(f"CREATE OR REPLACE TEMP TABLE keyed_links AS {records.keyed_links_sql('links')}")
    local.execute("DROP TABLE links")
    write_tables(local, lake, day, _OUTPUTS, source=SOURCE, zone=ZONE, batch_rows=_WRITE_BATCH_ROWS)


def _previous_inputs(lake: Lake, day: dt.date) -> list[LakeInput]:
    """The stable-id state kept by the latest day before ``day``, as the session views
    ``prev_assignment``, ``prev_redirects`` and ``prev_person_ids`` (empty on the first run)."""
    kept = [set(lake.partitions(SOURCE, name, ZONE)) for name in STATE_TABLES]
    earlier = sorted(d for d in set.intersection(*kept) if d < day)
    views = (
        ("prev_assignment", "assignment", contract.ASSIGNMENT),
        ("prev_redirects", "person_redirect", contract.REDIRECTS),
        ("prev_person_ids", "person_ids", contract.PERSON_IDS),
    )
    if not earlier:
        return [LakeInput(view, (), schema) for view, _, schema in views]
    return [
        lake_inputs.partition(lake, view, SOURCE, table, earlier[-1], schema, ZONE)
        for view, table, schema in views
    ]


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
