"""Erasure in the serving store: the registry of where a person's rows live, and the deletes.

:data:`PERSONAL_TABLES` is **the** list of serving tables that hold personal data and how a
person's rows are matched in each; erasure deletes from every one of them, in this order, in
one transaction. ``tests/unit/test_erasure_registry.py`` fails when a table of
:mod:`c360.contracts.serving` has a column that names a person or an identifier and is neither
here nor in :data:`NOT_PERSONAL`: a new table cannot be forgotten. *To register a table* (the
read audit, say), add a :class:`PersonalTable` row naming its columns.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, MetaData, Table, and_, false, func, inspect, or_, select
from sqlalchemy.sql.elements import ColumnElement

from c360.contracts import serving
from c360.privacy.identifiers import ID_TYPES, ORDER, PERSON, Subject, identifier_hashes
from c360.privacy.suppression import NO_SUPPRESSION, SuppressionList
from c360.speed.features import USER_ID

if TYPE_CHECKING:
    from c360.stores.base import StoreDialect

# The speed layer keys a clickstream without a cookie by its userId: the customer id.
_PAIR_ALIASES = {USER_ID: "customer_id"}


@dataclass(frozen=True)
class PersonalTable:
    """A serving table with personal data and how a person's rows are found in it."""

    table: str
    columns: Mapping[str, str] = field(default_factory=dict)  # column -> identifier type held
    pair: tuple[str, str] | None = None  # (id_type column, id_value column)
    documents: tuple[str, ...] = ()  # text columns searched for the person's identifiers
    via: tuple[str, str, str] | None = None  # (column, table, its column): linked to its rows


PERSONAL_TABLES: tuple[PersonalTable, ...] = (
    PersonalTable("person", {"person_id": PERSON, "customer_id": "customer_id"}),
    PersonalTable(serving.BATCH_PROFILE, {"person_id": PERSON}),
    PersonalTable("identity_map", {"person_id": PERSON}, pair=("id_type", "id_value")),
    # a shared identifier names no person: its row goes when the subject holds the value (an
    # erasure by it, or of a person whose golden record or identifiers carry it)
    PersonalTable("ambiguous_identifier", pair=("id_type", "id_value")),
    PersonalTable("person_redirect", {"retired_id": PERSON, "person_id": PERSON}),
    PersonalTable(
        "identity_stitch",
        {"anonymous_id": "anonymous_id", "customer_id": "customer_id", "batch_person_id": PERSON},
    ),
    PersonalTable(
        "realtime_state",
        {"user_id": "customer_id", "person_id": PERSON},
        pair=("id_type", "id_value"),
    ),
    PersonalTable("realtime_support", {"person_id": PERSON}, pair=("id_type", "id_value")),
    PersonalTable(
        "realtime_order",
        {"user_id": "customer_id", "order_id": ORDER, "person_id": PERSON},
        pair=("id_type", "id_value"),
    ),
    PersonalTable("timeline_event", pair=("id_type", "id_value")),
    PersonalTable("search_term", {"person_id": PERSON}),
    PersonalTable("segment_member", {"person_id": PERSON}),
    PersonalTable("segment_live_member", {"person_id": PERSON}),
    # before its events: a delivery is found through its event
    PersonalTable("webhook_delivery", via=("event_id", "segment_event", "event_id")),
    PersonalTable("segment_event", {"person_id": PERSON}),
    PersonalTable("dead_letter", documents=("payload",)),
    # consent decisions are stored per identifier and under the person id itself
    PersonalTable("consent_decision", pair=("id_type", "id_value")),
    PersonalTable("read_audit", {"person_id": PERSON}),
)

# Serving tables without personal data, and why (the registry test reads this).
NOT_PERSONAL: Mapping[str, str] = {
    "stream_offsets": "consumer positions",
    "batch_publish": "publish dates and counts",
    "batch_run": "the pipeline's run log",
    "api_key": "keys and their hashes",
    "segment": "definitions",
    "erasure_receipt": "the evidence: hashes and counts only",
    "suppressed_identifier": "hashes only",
    "erasure_salt": "the hashes' key",
    "batch_lock": "which batch run holds the lock (host, process)",
}


def _registered(name: str) -> PersonalTable:
    return next(t for t in PERSONAL_TABLES if t.table == name)


def _condition(table: Table, spec: PersonalTable, subject: Subject) -> ColumnElement[bool]:
    """SQL: the rows of ``table`` that belong to the subject."""
    parts: list[ColumnElement[bool]] = []
    for column, id_type in spec.columns.items():
        values = _typed(table, column, subject.of(id_type))
        if values:
            parts.append(table.c[column].in_(values))
    if spec.pair is not None:
        type_column, value_column = (table.c[name] for name in spec.pair)
        for id_type in (*ID_TYPES, USER_ID, PERSON):
            values = subject.of(_PAIR_ALIASES.get(id_type, id_type))
            if values:
                parts.append(and_(type_column == id_type, value_column.in_(values)))
    for column in spec.documents:
        text = func.lower(table.c[column])
        tokens = [t.lower() for t in subject.strong_tokens()]
        tokens += [f'"userid":"{c}"' for c in subject.of("customer_id")]
        parts += [text.contains(token, autoescape=True) for token in tokens]
    if spec.via is not None:
        column, other_name, other_column = spec.via
        other = serving.metadata.tables[other_name]
        linked = select(other.c[other_column]).where(
            _condition(other, _registered(other_name), subject)
        )
        parts.append(table.c[column].in_(linked))
    return or_(*parts) if parts else false()


def _typed(table: Table, column: str, values: list[str]) -> list[Any]:
    """``values`` as the column holds them (an integer column: the numeric ones as ints)."""
    if column not in table.c or not values:
        return []
    try:
        integral = table.c[column].type.python_type is int
    except NotImplementedError:
        integral = False
    return [int(v) for v in values if v.isdigit()] if integral else values


def _tables(conn: Connection) -> dict[str, Table]:
    """The registry's tables as this store has them (batch_profile's columns are published)."""
    tables = dict(serving.metadata.tables)
    if inspect(conn).has_table(serving.BATCH_PROFILE):
        tables[serving.BATCH_PROFILE] = Table(serving.BATCH_PROFILE, MetaData(), autoload_with=conn)
    return tables


def resolve(conn: Connection, id_type: str, value: str) -> Subject:
    """Every identifier of the person an identifier names, through identity: the person
    (a retired id followed to its survivor), their retired ids, all their identity_map
    identifiers and golden-record values, the cookies stitched to their customer ids, and their
    real-time order ids. An identifier no person holds yet is erased alone, with its cookies."""
    subject = Subject()
    subject.add(id_type, value)
    persons = set(subject.of(PERSON))
    if id_type in ID_TYPES:
        m = serving.identity_map
        lookup = select(m.c.person_id).where(
            m.c.id_type == id_type, m.c.id_value.in_(subject.of(id_type))
        )
        persons |= {str(p) for p in conn.execute(lookup).scalars()}
    r = serving.person_redirect
    survivors = select(r.c.person_id).where(r.c.retired_id.in_(sorted(persons)))
    persons |= {str(p) for p in conn.execute(survivors).scalars()}
    subject.add_all((PERSON, p) for p in persons)
    retired = select(r.c.retired_id).where(r.c.person_id.in_(sorted(persons)))
    subject.add_all((PERSON, p) for p in conn.execute(retired).scalars())
    m = serving.identity_map
    known = select(m.c.id_type, m.c.id_value).where(m.c.person_id.in_(subject.persons))
    subject.add_all((str(t), v) for t, v in conn.execute(known))
    p = serving.person
    golden = select(p.c.customer_id, p.c.email, p.c.phone).where(p.c.person_id.in_(subject.persons))
    for customer_id, email, phone in conn.execute(golden):
        subject.add_all((("customer_id", customer_id), ("email", email), ("phone", phone)))
    _add_cookies(conn, subject)
    o = serving.realtime_order
    orders = select(o.c.order_id).where(_condition(o, _registered("realtime_order"), subject))
    subject.add_all((ORDER, order) for order in conn.execute(orders).scalars())
    return subject


def _add_cookies(conn: Connection, subject: Subject) -> None:
    customers = subject.of("customer_id")
    if not customers:
        return
    s, state = serving.identity_stitch, serving.realtime_state
    stitched = select(s.c.anonymous_id).where(s.c.customer_id.in_(customers))
    identified = select(state.c.id_value).where(
        state.c.id_type == "anonymous_id", state.c.user_id.in_(customers)
    )
    for query in (stitched, identified):
        subject.add_all(("anonymous_id", cookie) for cookie in conn.execute(query).scalars())


def delete(conn: Connection, subject: Subject) -> dict[str, int]:
    """Delete the subject's rows from every registered table, in the caller's transaction;
    the rows deleted per table (tables with none left out)."""
    tables = _tables(conn)
    counts: dict[str, int] = {}
    for spec in PERSONAL_TABLES:
        table = tables.get(spec.table)
        if table is None:
            continue
        deleted = conn.execute(table.delete().where(_condition(table, spec, subject))).rowcount
        if deleted:
            counts[spec.table] = int(deleted)
    return counts


def salt(conn: Connection, insert: Any) -> bytes:
    """The store's erasure salt, made on first use (concurrent first uses agree)."""
    table = serving.erasure_salt
    conn.execute(insert(table).values(id=1, salt=secrets.token_hex(32)).on_conflict_do_nothing())
    return bytes.fromhex(conn.execute(select(table.c.salt)).scalar_one())


def suppress(
    conn: Connection,
    insert: Any,
    hashes: Sequence[Mapping[str, str]],
    erasure_id: str,
    at: dt.datetime,
) -> None:
    """Add hashes to the suppression list (a hash already there keeps its first erasure)."""
    rows = [
        {"hash": h["hash"], "id_type": h["type"], "erasure_id": erasure_id, "since": at}
        for h in hashes
    ]
    if rows:
        conn.execute(insert(serving.suppressed_identifier).values(rows).on_conflict_do_nothing())
        # The list changed: speed-layer micro-batches computed against the old one do not
        # commit (c360.stores.realtime.check_suppression).
        salted = serving.erasure_salt
        conn.execute(salted.update().values(generation=salted.c.generation + 1))


def stored_salt(conn: Connection) -> bytes | None:
    """The erasure salt, or None while no one was ever erased (the first erasure makes it;
    it never changes after)."""
    stored = conn.execute(select(serving.erasure_salt.c.salt)).scalar_one_or_none()
    return None if stored is None else bytes.fromhex(stored)


def person_hashes(salt: bytes, person_ids: Collection[str]) -> dict[str, str]:
    """Each person id's hash as the suppression list holds it, hash → person id: the CPU
    work of checking many persons, done without the store (outside a transaction)."""
    persons = list(person_ids)
    return dict(zip(identifier_hashes(salt, PERSON, persons), persons, strict=True))


def erased_persons(conn: Connection, dialect: StoreDialect, by_hash: Mapping[str, str]) -> set[str]:
    """Those of the persons (:func:`person_hashes`) on the suppression list (erased). The
    hashes go as one JSON array, the primary key probed with each: a list of bound
    parameters would cost SQLAlchemy's compiler per hash, and more than PostgreSQL's 65,535
    of them fail."""
    if not by_hash:
        return set()
    query = f"SELECT hash FROM suppressed_identifier WHERE hash IN {dialect.json_values(':h')}"
    found = conn.exec_driver_sql(dialect.driver_sql(query), {"h": json.dumps(list(by_hash))})
    return {by_hash[str(h)] for (h,) in found}


def generation(conn: Connection) -> int:
    """How many times the suppression list grew (0 before the first erasure)."""
    found = conn.execute(select(serving.erasure_salt.c.generation)).scalar_one_or_none()
    return int(found or 0)


def suppression_list(conn: Connection) -> SuppressionList:
    """The salt, the hashes and the list's generation; empty while no one was erased (or in a
    store not yet migrated to erasure: ingestion reads this without migrating)."""
    schema = inspect(conn)
    if not schema.has_table(serving.suppressed_identifier.name):
        return NO_SUPPRESSION
    counted = "generation" in {c["name"] for c in schema.get_columns(serving.erasure_salt.name)}
    # The generation first: a list read with an older generation than its hashes is only read
    # again once more, one with a newer generation than its hashes would be trusted wrongly.
    grown = generation(conn) if counted else 0
    hashes = frozenset(
        str(h) for h in conn.execute(select(serving.suppressed_identifier.c.hash)).scalars()
    )
    if not hashes:
        return replace(NO_SUPPRESSION, generation=grown)
    stored = conn.execute(select(serving.erasure_salt.c.salt)).scalar_one()
    return SuppressionList(bytes.fromhex(stored), hashes, grown)


def record_receipt(conn: Connection, receipt: Mapping[str, Any]) -> None:
    conn.execute(
        serving.erasure_receipt.insert().values(
            erasure_id=receipt["erasure_id"],
            erased_at=dt.datetime.fromisoformat(receipt["erased_at"]).replace(tzinfo=None),
            requested_by=receipt["requested_by"],
            identifiers=json.dumps(receipt["identifiers"]),
            stores=json.dumps(receipt["stores"]),
        )
    )


def receipts(conn: Connection) -> list[dict[str, Any]]:
    r = serving.erasure_receipt
    rows = conn.execute(select(r).order_by(r.c.erased_at))
    return [
        {
            "erasure_id": row.erasure_id,
            "erased_at": row.erased_at.isoformat(),
            "requested_by": row.requested_by,
            "identifiers": json.loads(row.identifiers),
            "stores": json.loads(row.stores),
        }
        for row in rows
    ]
