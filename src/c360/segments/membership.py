"""Daily segment membership as SQL steps on the batch engine (DuckDB or Spark, same SQL).

Membership is kept as *spells*: ``(segment, person_id, entered_on, exited_on)`` — the person
matched the segment's definition in the batch of ``entered_on`` and first failed to in the batch
of ``exited_on`` (null: still a member). The steps for date D read two inputs:

- ``batch_profile``: the day's batch profile (the lake's ``profile/batch_profile/dt=D``);
- ``previous_member``: the spells as of the latest earlier run (``segments/segment_member``),
  empty on the first run;

and give ``segment_member``, the spells as of D: a continuing spell stays open, an open spell of
a person who no longer matches is closed on D, a person matching without an open spell opens
one on D, closed spells are kept (the history). Spells of segments that were not evaluated
today (a definition that reads a real-time field, or one whose field the profile no longer has)
are carried over unchanged; those of deleted segments are dropped.

Re-running D reads the same earlier spells and gives the same answer (the step is idempotent).
Every value of a definition, and every segment name, is a bound parameter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa

from c360.contracts.compute import SqlStep
from c360.segments.definition import Definition, compile_sql

SCHEMA = pa.schema(
    [
        pa.field("segment", pa.string(), nullable=False),
        pa.field("segment_version", pa.string(), nullable=False),
        pa.field("person_id", pa.string(), nullable=False),
        pa.field("entered_on", pa.date32(), nullable=False),
        pa.field("exited_on", pa.date32()),
    ]
)
TODAY = "segment_today"
OUTPUT = "segment_member"


@dataclass(frozen=True)
class Segment:
    """A segment as the batch sees it: name, version (its creation time: a segment deleted and
    made again under the same name starts without the old one's spells) and, when it can be
    evaluated in the batch, its parsed definition."""

    name: str
    version: str
    definition: Definition | None


def _one_of(segments: Sequence[Segment]) -> tuple[str, tuple[object, ...]]:
    """SQL true for the spells (``p``) of these segments, in these versions."""
    if not segments:
        return "FALSE", ()
    terms = " OR ".join("(p.segment = ? AND p.segment_version = ?)" for _ in segments)
    return f"({terms})", tuple(v for s in segments for v in (s.name, s.version))


def steps(day: dt.date, segments: Sequence[Segment]) -> list[SqlStep]:
    """The steps for ``day``: today's matches of the segments that can be evaluated, then the
    spells of every segment that exists (those not evaluated carried over)."""
    selects: list[str] = []
    params: list[object] = []
    evaluated = [s for s in segments if s.definition is not None]
    for segment in evaluated:
        assert segment.definition is not None
        compiled = compile_sql(segment.definition)
        selects.append(
            "SELECT CAST(? AS VARCHAR) AS segment, CAST(? AS VARCHAR) AS segment_version, "
            f"person_id FROM batch_profile WHERE {compiled.sql}"
        )
        params += [segment.name, segment.version, *compiled.params]
    today = "\nUNION ALL\n".join(selects) or (
        "SELECT CAST(NULL AS VARCHAR) AS segment, CAST(NULL AS VARCHAR) AS segment_version, "
        "CAST(NULL AS VARCHAR) AS person_id FROM batch_profile WHERE FALSE"
    )
    is_evaluated, evaluated_params = _one_of(evaluated)
    is_defined, defined_params = _one_of(segments)
    same = "t.segment = p.segment AND t.segment_version = p.segment_version"
    spells = f"""
SELECT p.segment, p.segment_version, p.person_id, p.entered_on,
       CASE WHEN p.exited_on IS NULL AND {is_evaluated} AND t.person_id IS NULL
            THEN CAST(? AS DATE) ELSE p.exited_on END AS exited_on
FROM previous_member p
LEFT JOIN {TODAY} t ON p.exited_on IS NULL AND {same} AND t.person_id = p.person_id
WHERE {is_defined}
UNION ALL
SELECT t.segment, t.segment_version, t.person_id, CAST(? AS DATE) AS entered_on,
       CAST(NULL AS DATE) AS exited_on
FROM {TODAY} t
WHERE NOT EXISTS (
    SELECT 1 FROM previous_member p
    WHERE p.exited_on IS NULL AND {same} AND p.person_id = t.person_id)
"""
    spell_params = (*evaluated_params, day, *defined_params, day)
    return [
        SqlStep(TODAY, today, tuple(params)),
        SqlStep(OUTPUT, spells, spell_params),
    ]


def conform(table: pa.Table) -> pa.Table:
    """The engine's output in the lake's schema, ordered (segment, person, entered)."""
    ordered = table.select(SCHEMA.names).sort_by(
        [("segment", "ascending"), ("person_id", "ascending"), ("entered_on", "ascending")]
    )
    return ordered.cast(SCHEMA)


def current_counts(table: pa.Table) -> Mapping[str, int]:
    """Members per segment now (open spells)."""
    counts: dict[str, int] = {}
    for segment, exited in zip(
        table["segment"].to_pylist(), table["exited_on"].to_pylist(), strict=True
    ):
        if exited is None:
            counts[segment] = counts.get(segment, 0) + 1
    return counts
