"""Segments in the serving store: the SQL behind ``ServingStore.create_segment``, ``segments``,
``segment``, ``delete_segment``, ``segment_fields``, ``preview_segment`` and the membership
publish.

**Fields** a definition may read (:func:`fields`): every column of the published
``batch_profile`` (so a feature published after this code was written — ``churn_risk`` — is
one at once), the catalogue's features (known before the first publish), and the real-time
features the ``realtime_profile`` view gives per person. Their kinds come from the column types.

**Preview** (:func:`preview`): the count and a sample of the persons a definition selects, in
two statements on ``batch_profile`` — the values as published for the serving batch, the ones the
daily membership step reads — joined to ``realtime_profile`` (read now) only when the definition
reads a real-time field. The sample carries the person id and the fields the definition reads,
nothing of the golden record.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlalchemy import Connection, bindparam, delete, inspect, select, text
from sqlalchemy import types as sqltypes
from sqlalchemy.sql.elements import TextClause

from c360.access import consent
from c360.batch.catalogue import CATALOGUE
from c360.contracts import serving
from c360.contracts.times import epoch_ms, naive_utc
from c360.errors import NotFoundError, TerminalError
from c360.segments import Compiled, Definition, DefinitionError, Kind, compile_sql, kind_of, parse
from c360.segments.definition import colon
from c360.speed import merge
from c360.stores import consent as stored_consent

if TYPE_CHECKING:
    from c360.stores.base import StoreDialect

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
MAX_DESCRIPTION = 500
# The real-time features the realtime_profile view has per person (c360.stores.views).
REALTIME_VIEW_COLUMNS = (
    "current_session_page_views",
    "current_session_product_views",
    "current_session_start",
    "last_event_at",
    "last_event_type",
    "events_last_hour",
    "cart_items",
    "cart_value",
)
_NOT_FIELDS = {"person_id"}


class SegmentExists(TerminalError):
    """A segment of that name exists already (delete it first, or pick another name)."""


class SegmentNameError(TerminalError):
    """A segment name that is not one: lower-case letters, digits, ``_`` and ``-``."""


@dataclass(frozen=True)
class Segment:
    name: str
    definition: str
    description: str | None
    created_at: dt.datetime
    fields: tuple[str, ...] = ()
    members: int | None = None  # current members by the latest membership publish
    live_members: int | None = None  # a real-time segment's members now (None: not real time)
    members_as_of: dt.date | None = None  # the batch date ``members`` is as of

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "definition": self.definition,
            "description": self.description,
            "created_at": self.created_at.replace(tzinfo=dt.UTC),  # stored naive UTC
            "fields": list(self.fields),
            "members": self.members,
            "live_members": self.live_members,
            "members_as_of": self.members_as_of,
        }


@dataclass(frozen=True)
class Preview:
    count: int
    sample: list[dict[str, Any]]
    fields: tuple[str, ...]


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise SegmentNameError(
            "a segment name is 1 to 64 lower-case letters, digits, '_' or '-', "
            "beginning with a letter or digit"
        )
    return name


def _kind(column_type: sqltypes.TypeEngine[Any]) -> Kind:
    if isinstance(column_type, sqltypes.Boolean):
        return Kind.BOOL
    if isinstance(column_type, sqltypes.Integer | sqltypes.Numeric | sqltypes.Float):
        return Kind.NUMBER
    if isinstance(column_type, sqltypes.DateTime):
        return Kind.TIMESTAMP
    if isinstance(column_type, sqltypes.Date):
        return Kind.DATE
    return Kind.TEXT


# Real-time fields computed at evaluation time (``:now_ms``) rather than read from the view.
COMPUTED = {"time_since_last_event_seconds"}
# Fields whose value changes with time alone (c360.stores.live_segments sweeps them).
TIME_DEPENDENT = {"time_since_last_event_seconds", "events_last_hour"}
REALTIME_FIELDS: dict[str, tuple[Kind, str]] = {
    f.name: (kind_of(f.type), "realtime")
    for f in merge.REALTIME_FEATURES
    if f.name in REALTIME_VIEW_COLUMNS or f.name in COMPUTED
}


def fields(conn: Connection) -> dict[str, tuple[Kind, str]]:
    """Each field a definition may read: its kind and where it is (``batch`` or ``realtime``)."""
    known: dict[str, tuple[Kind, str]] = {
        f.name: (kind_of(f.type), "batch") for f in CATALOGUE if f.name not in _NOT_FIELDS
    }
    inspector = inspect(conn)
    if inspector.has_table(serving.BATCH_PROFILE):
        for column in inspector.get_columns(serving.BATCH_PROFILE):
            if column["name"] not in _NOT_FIELDS:
                known[column["name"]] = (_kind(column["type"]), "batch")
    for name, field in REALTIME_FIELDS.items():
        known.setdefault(name, field)
    return known


def check(conn: Connection, definition: str) -> tuple[Definition, dict[str, tuple[Kind, str]]]:
    known = fields(conn)
    return parse(definition, {name: kind for name, (kind, _) in known.items()}), known


def _row(
    row: Any,
    counts: Mapping[str, int],
    used: Mapping[str, tuple[tuple[str, ...], bool]],
    live: Mapping[str, int],
) -> Segment:
    fields_read, realtime = used.get(row.name, ((), False))
    evaluated = row.evaluated_on
    return Segment(
        row.name,
        row.definition,
        row.description,
        row.created_at,
        fields_read,
        counts.get(row.name, 0) if evaluated is not None else None,
        live.get(row.name, 0) if realtime else None,
        evaluated,
    )


def _live_counts(conn: Connection, name: str | None = None) -> dict[str, int]:
    m = serving.segment_live_member
    query = select(m.c.segment, text("count(*)")).select_from(m).group_by(m.c.segment)
    if name is not None:
        query = query.where(m.c.segment == name)
    return {segment: int(count) for segment, count in conn.execute(query)}


def _member_counts(conn: Connection, name: str | None = None) -> dict[str, int]:
    m = serving.segment_member
    query = (
        select(m.c.segment, text("count(*)"))
        .select_from(m)
        .where(m.c.exited_on.is_(None))
        .group_by(m.c.segment)
    )
    if name is not None:
        query = query.where(m.c.segment == name)
    return {segment: int(count) for segment, count in conn.execute(query)}


def _used_fields(
    conn: Connection, definitions: Sequence[tuple[str, str]]
) -> dict[str, tuple[tuple[str, ...], bool]]:
    """Per segment: the fields its definition reads, and whether one is real time."""
    layers = fields(conn)
    known = {name: kind for name, (kind, _) in layers.items()}
    used: dict[str, tuple[tuple[str, ...], bool]] = {}
    for name, text_ in definitions:
        try:
            read = parse(text_, known).fields
        except DefinitionError:  # a field since dropped from the profile: shown without
            read = ()
        used[name] = (read, any(layers[f][1] == "realtime" for f in read))
    return used


def create(
    conn: Connection, name: str, definition: str, description: str | None, at: dt.datetime
) -> Segment:
    check_name(name)
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise SegmentNameError(f"a description is at most {MAX_DESCRIPTION} characters")
    parsed, known = check(conn, definition)
    s = serving.segment
    if conn.execute(select(s.c.name).where(s.c.name == name)).first() is not None:
        raise SegmentExists(
            f"segment {name!r} exists already; delete it first or pick another name"
        )
    conn.execute(
        s.insert().values(name=name, definition=definition, description=description, created_at=at)
    )
    realtime = any(known[f][1] == "realtime" for f in parsed.fields)
    return Segment(name, definition, description, at, parsed.fields, None, 0 if realtime else None)


def every(conn: Connection) -> list[Segment]:
    s = serving.segment
    rows = list(conn.execute(select(s).order_by(s.c.name)))
    used = _used_fields(conn, [(row.name, row.definition) for row in rows])
    counts, live = _member_counts(conn), _live_counts(conn)
    return [_row(row, counts, used, live) for row in rows]


def find(conn: Connection, name: str) -> Segment:
    s = serving.segment
    row = conn.execute(select(s).where(s.c.name == name)).first()
    if row is None:
        raise NotFoundError(f"no segment {name!r}; see c360 segment list")
    used = _used_fields(conn, [(row.name, row.definition)])
    return _row(row, _member_counts(conn, name), used, _live_counts(conn, name))


def remove(conn: Connection, name: str) -> bool:
    """Delete a segment and its membership; whether it existed."""
    conn.execute(delete(serving.segment_member).where(serving.segment_member.c.segment == name))
    live = serving.segment_live_member
    conn.execute(delete(live).where(live.c.segment == name))
    deleted = conn.execute(delete(serving.segment).where(serving.segment.c.name == name))
    return bool(deleted.rowcount)


def replace_members(
    conn: Connection, day: dt.date, spells: pa.Table, evaluated: Sequence[str]
) -> int:
    s = serving.segment
    if evaluated:
        conn.execute(
            s.update()
            .where(s.c.name.in_(bindparam("evaluated", expanding=True)))
            .values(evaluated_on=day),
            {"evaluated": list(evaluated)},
        )
    m = serving.segment_member
    conn.execute(m.delete())
    columns = [c.name for c in m.columns]
    for batch in spells.select(columns).to_batches(max_chunksize=5_000):
        rows = batch.to_pylist()
        if rows:
            conn.execute(m.insert(), rows)
    names = select(serving.segment.c.name)
    conn.execute(m.delete().where(m.c.segment.not_in(names)))
    return int(conn.execute(select(text("count(*)")).select_from(m)).scalar_one())


AUDIENCE_SCHEMA = pa.schema(
    [
        ("person_id", pa.string()),
        ("email", pa.string()),
        ("first_name", pa.string()),
        ("last_name", pa.string()),
        ("entered_on", pa.date32()),
        ("marketing_consent_source", pa.string()),
        ("marketing_consent_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True)
class Audience:
    """A segment's current members who may be marketed to, and how many were left out."""

    members: pa.Table  # AUDIENCE_SCHEMA, by person id
    without_consent: int


_CONSENT_COLUMNS = ("marketing_consent", "marketing_consent_source", "marketing_consent_at")


def audience(conn: Connection, name: str) -> Audience:
    """The segment's current members (by the latest membership run) with marketing consent
    and an email; members without consent (false or unknown) or without an email are counted,
    never returned. Consent is the newest decision of the batch's and those since
    (:mod:`c360.access.consent`): a withdrawal made after the batch leaves the person out at
    once, an opt-in since puts them in. A profile published before consent existed counts
    only the decisions since."""
    find(conn, name)  # NotFoundError
    m = "segment_member m JOIN batch_profile b ON b.person_id = m.person_id"
    current = "m.segment = :name AND m.exited_on IS NULL"
    total = conn.execute(
        text(f"SELECT count(*) FROM segment_member m WHERE {current}"), {"name": name}
    ).scalar_one()
    columns = {c["name"] for c in inspect(conn).get_columns(serving.BATCH_PROFILE)}
    batch = ", ".join(
        f"b.{name}" if name in columns else f"NULL AS {name}" for name in _CONSENT_COLUMNS
    )
    query = (
        text(
            f"""
        SELECT m.person_id, p.email, p.first_name, p.last_name, m.entered_on, {batch}
        FROM {m} JOIN person p ON p.person_id = m.person_id
        WHERE {current} AND p.email IS NOT NULL
        ORDER BY m.person_id
        """
        )
        .bindparams(bindparam("name", name))
        .columns(
            entered_on=sqltypes.Date(),
            marketing_consent=sqltypes.Boolean(),
            marketing_consent_at=sqltypes.DateTime(),
        )
    )
    since = stored_consent.for_everyone(conn)
    rows = []
    for row in conn.execute(query):
        member = dict(row._mapping)
        batch_said = consent.batch_decision(
            member.pop("marketing_consent"),
            member["marketing_consent_at"],
            member["marketing_consent_source"],
        )
        winner = consent.newest([batch_said, since.get(member["person_id"])])
        if winner is None or not winner.consent:
            continue
        member["marketing_consent_source"] = winner.source
        member["marketing_consent_at"] = naive_utc(winner.decided_at).replace(tzinfo=dt.UTC)
        rows.append(member)
    table = pa.Table.from_pylist(rows, AUDIENCE_SCHEMA)
    return Audience(table, int(total) - table.num_rows)


def _sql_type(value: object) -> sqltypes.TypeEngine[Any]:
    if isinstance(value, bool):
        return sqltypes.Boolean()
    if isinstance(value, int):
        return sqltypes.BigInteger()
    if isinstance(value, float):
        return sqltypes.Float()
    if isinstance(value, dt.datetime):
        return sqltypes.DateTime()
    if isinstance(value, dt.date):
        return sqltypes.Date()
    return sqltypes.Text()


@lru_cache(maxsize=512)
def statement(sql: str) -> TextClause:
    """``text(sql)``, made once per SQL: parsing a statement's parameters costs a regular
    expression over it, which the real-time evaluation would pay per chunk of persons."""
    return text(sql)


def bound(sql: str, compiled: Compiled, extra: Mapping[str, object] | None = None) -> TextClause:
    """``sql`` with the definition's values bound, each with its SQL type (dates and times
    reach SQLite as ISO text, as the store holds them)."""
    params = [bindparam(k, v, type_=_sql_type(v)) for k, v in compiled.named.items()]
    params += [bindparam(k, v) for k, v in (extra or {}).items()]
    return statement(sql).bindparams(*params)


def condition(
    definition: Definition, known: Mapping[str, tuple[Kind, str]], dialect: StoreDialect
) -> tuple[Compiled, bool]:
    """The WHERE condition over ``batch_profile b`` (and real-time features ``rt``), and
    whether it reads a real-time field. A computed field reads ``:now_ms``."""
    realtime = any(known[f][1] == "realtime" for f in definition.fields)
    return compile_sql(definition, colon(), lambda name: column(name, known, dialect)), realtime


def column(name: str, known: Mapping[str, tuple[Kind, str]], dialect: StoreDialect) -> str:
    """A field's SQL: ``b."x"`` for a batch field, ``rt."x"`` for a real-time one, and the
    seconds since the newest event for ``time_since_last_event_seconds``."""
    if name == "time_since_last_event_seconds":
        return f"((:now_ms - {dialect.epoch_ms('rt.last_event_at')}) / 1000.0)"
    return f'{"rt" if known[name][1] == "realtime" else "b"}."{name}"'


def preview(
    conn: Connection, dialect: StoreDialect, definition: str, sample: int, now: dt.datetime
) -> Preview:
    parsed, known = check(conn, definition)
    compiled, realtime = condition(parsed, known, dialect)
    source = serving.BATCH_PROFILE + " b"
    if realtime:
        source += " LEFT JOIN realtime_profile rt ON rt.person_id = b.person_id"
    where = f"FROM {source} WHERE {compiled.sql}"
    shown = "".join(f', {column(f, known, dialect)} AS "{f}"' for f in parsed.fields)
    extra: dict[str, object] = (
        {"now_ms": epoch_ms(now)} if ":now_ms" in compiled.sql + shown else {}
    )
    total: int | None = None
    if realtime and sample > 0:
        # One statement: the count is a window over every match, computed before the LIMIT,
        # so the real-time view (most of such a preview's time) is evaluated once.
        counted = "count(*) OVER () AS matched__"
    else:
        # A plain count is faster than the window on the batch table alone (PostgreSQL counts
        # in parallel: 40 ms against 150 ms for 121k persons).
        total = int(conn.execute(bound(f"SELECT count(*) {where}", compiled, extra)).scalar_one())
        counted = "0 AS matched__"
    rows = []
    if sample > 0:
        query = f"SELECT b.person_id{shown}, {counted} {where} ORDER BY b.person_id LIMIT :n"
        rows = [
            dict(r._mapping) for r in conn.execute(bound(query, compiled, {**extra, "n": sample}))
        ]
    if total is None:
        total = int(rows[0]["matched__"]) if rows else 0
    for row in rows:
        del row["matched__"]
        for name in parsed.fields:  # SQLite answers 0/1
            if known[name][0] is Kind.BOOL and row[name] is not None:
                row[name] = bool(row[name])
    return Preview(total, rows, parsed.fields)
