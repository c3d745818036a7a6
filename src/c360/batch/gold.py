"""BI tables: the profile, segment membership and churn scores as plain, documented tables.

A BI tool needs no c360 code to read them: in the lake's ``gold`` zone as Parquet
(``gold/c360/<table>/dt=D/``, Hive-partitioned, one partition per batch date) and in the serving
store as views of the same names prefixed ``bi_`` (``bi_profile``, …) over the published
tables, so they change atomically with each publish. ``docs/bi_tables.md`` is generated from
:data:`TABLES` (``c360 features --bi-tables``); a test keeps both in step.

**They hold personal data** (the golden record's names, email, phone): grant them as you grant
the serving store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa

from c360.batch.catalogue import CATALOGUE
from c360.contracts.compute import SqlStep

SOURCE = "c360"  # gold/c360/<table>
ZONE = "gold"
CHURN_PREFIX = "churn_"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    description: str


@dataclass(frozen=True)
class BiTable:
    name: str
    description: str
    columns: tuple[Column, ...]
    note: str = ""


PERSON_COLUMNS = (
    Column("person_id", "string", "Stable person id (p_ + 16 hex digits); the key."),
    Column("customer_id", "int64", "The orders DB customer id, when the person has an account."),
    Column("email", "string", "The golden record's email (lower case)."),
    Column("first_name", "string", "First name (orders DB)."),
    Column("last_name", "string", "Last name (orders DB)."),
    Column("phone", "string", "Phone (orders DB, as entered)."),
    Column("city", "string", "City (orders DB)."),
    Column("country", "string", "Country, ISO 3166-1 alpha-2 (orders DB)."),
)
PERSON_NAMES = tuple(c.name for c in PERSON_COLUMNS)

TABLES = (
    BiTable(
        "profile",
        "One row per person: the golden record, then every batch feature as of the batch "
        "cutoff (the end of the batch date, UTC).",
        (
            *PERSON_COLUMNS,
            *(
                Column(f.name, str(f.type), f"{f.description} ({f.source})")
                for f in CATALOGUE
                if f.name != "person_id"
            ),
        ),
        "Features published after this list was written (the churn model's `churn_risk`, "
        "`churn_risk_band`, …) follow as further columns; `docs/features.md` explains each.",
    ),
    BiTable(
        "segment_member",
        "Segment membership spells: one row per time a person entered a segment.",
        (
            Column("segment", "string", "The segment's name (`c360 segment list`)."),
            Column("person_id", "string", "The person (joins `profile.person_id`)."),
            Column("entered_on", "date32[day]", "Batch date the person first matched."),
            Column(
                "exited_on",
                "date32[day]",
                "Batch date the person first no longer matched; null while a member.",
            ),
            Column("is_member", "bool", "Whether the person is a member now (exited_on is null)."),
        ),
    ),
    BiTable(
        "segment",
        "The segments: name and definition.",
        (
            Column("name", "string", "The segment's name."),
            Column("definition", "string", "Its definition over profile fields."),
            Column("description", "string", "What it is for, as its author wrote."),
            Column("created_at", "timestamp[us, tz=UTC]", "When it was defined."),
        ),
        "In the lake written each batch date as the segments stood then.",
    ),
    BiTable(
        "churn_score",
        "One row per person scored by the churn model: its `churn_*` profile columns.",
        (
            Column("person_id", "string", "The person (joins `profile.person_id`)."),
            Column("batch_date", "date32[day]", "The batch date the score is as of."),
        ),
        "Present once a churn model writes scores into the batch profile: every `churn_*` "
        "column of the profile follows (`churn_risk`, `churn_risk_band`, the model version); "
        "absent before.",
    ),
)


def churn_columns(profile: pa.Schema) -> list[str]:
    return [name for name in profile.names if name.startswith(CHURN_PREFIX)]


def profile_columns(profile: pa.Schema) -> list[str]:
    """The batch columns ``profile`` carries after the golden record's."""
    return [name for name in profile.names if name not in PERSON_NAMES]


def steps(profile: pa.Schema) -> tuple[list[SqlStep], list[str]]:
    """The gold tables' SQL over ``person``, ``batch_profile`` and ``spells`` (the day's
    segment membership), and the names of the outputs (``churn_score`` only when there are churn
    columns)."""
    person = ", ".join(f"p.{name}" for name in PERSON_NAMES)
    features = "".join(f", b.{name}" for name in profile_columns(profile))
    result = [
        SqlStep(
            "profile",
            f"SELECT {person}{features} FROM person p "
            "LEFT JOIN batch_profile b ON b.person_id = p.person_id",
        ),
        SqlStep(
            "segment_member",
            "SELECT segment, person_id, entered_on, exited_on, "
            "exited_on IS NULL AS is_member FROM spells",
        ),
    ]
    outputs = ["profile", "segment_member"]
    churn = churn_columns(profile)
    dated = ", batch_date" if "batch_date" in profile.names else ""
    if churn:
        result.append(
            SqlStep(
                "churn_score",
                f"SELECT person_id{dated}, {', '.join(churn)} FROM batch_profile "
                f"WHERE {' OR '.join(f'{c} IS NOT NULL' for c in churn)}",
            )
        )
        outputs.append("churn_score")
    return result, outputs


SEGMENT_SCHEMA = pa.schema(
    [
        ("name", pa.string()),
        ("definition", pa.string()),
        ("description", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)


def segment_table(segments: Sequence[Mapping[str, object]]) -> pa.Table:
    """The ``segment`` table from the segments as the store lists them."""
    return pa.Table.from_pylist(
        [{name: s[name] for name in SEGMENT_SCHEMA.names} for s in segments], SEGMENT_SCHEMA
    )


def markdown() -> str:
    """``docs/bi_tables.md``: every BI table with its columns."""
    lines = [
        "# BI tables",
        "",
        "Generated from `src/c360/batch/gold.py` (`c360 features --bi-tables` prints it); do not",
        "edit. Each table is Parquet in the lake's gold zone, `gold/c360/<table>/dt=D/` (one",
        "partition per batch date, Hive-style), and a view `bi_<table>` in the serving store",
        "(SQLite or PostgreSQL) over the serving batch. They hold personal data: grant them as",
        "you grant the serving store. Types are the Parquet (Arrow) types; in the serving store",
        "decimals are double precision, times are TIMESTAMP without a zone (UTC) and bools are",
        "0/1 on SQLite.",
    ]
    for table in TABLES:
        lines += [
            "",
            f"## `{table.name}` (`bi_{table.name}`)",
            "",
            table.description,
            "",
            "| column | type | meaning |",
            "| --- | --- | --- |",
        ]
        lines += [f"| `{c.name}` | {c.type} | {c.description} |" for c in table.columns]
        if table.note:
            lines += ["", table.note]
    return "\n".join(lines) + "\n"


def column_names(table: str) -> Sequence[str]:
    return [c.name for c in next(t for t in TABLES if t.name == table).columns]
