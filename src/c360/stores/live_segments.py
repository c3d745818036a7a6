"""Real-time segment membership, evaluated inside the speed layer's micro-batch transaction.

A *real-time segment* is one whose definition reads a real-time field (``cart_value``,
``events_last_hour``, …; :data:`c360.stores.segments.REALTIME_FIELDS`). When a micro-batch
commits (:meth:`ServingStore.commit_micro_batch`), :func:`evaluate` runs in the same transaction,
after the states are written:

1. the persons the batch changed: those its changed identifiers' rows are resolved to
   (:mod:`c360.stores.resolution`, earlier in the same transaction);
2. each real-time segment evaluated for those persons only — batch fields from
   ``batch_profile``, real-time fields from their real-time rows as of the commit;
3. the difference with ``segment_live_member`` applied, and one ``segment_event``
   (``segment.entered`` / ``segment.exited``) written per change: the *outbox* the webhook
   dispatcher delivers from.

Because the events are written in the transaction that claims the batch's offsets, a crash
before the commit loses nothing (the batch is read again and evaluated again) and one after it
duplicates nothing (the offsets moved): each change gives exactly one event. Delivery is
at-least-once, keyed by the event id (:mod:`c360.pipeline.webhooks`).

Time passing alone changes ``time_since_last_event_seconds`` and ``events_last_hour``: the
segments reading them are also re-evaluated by :func:`sweep` (the stream worker runs it when
idle, every ``SWEEP_EVERY_S``), for their members and the persons with a recent event — so an
abandoned cart (``cart_value > 100 and time_since_last_event_seconds > 1800``) enters after 30
minutes of silence with no event to trigger it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson
from sqlalchemy import Connection, DateTime, bindparam, select, text

from c360.contracts import serving
from c360.contracts.times import epoch_ms
from c360.segments import Definition, DefinitionError, Kind, parse
from c360.speed.features import StateKey
from c360.stores import segments, views

if TYPE_CHECKING:
    from c360.stores.base import StoreDialect

ENTERED = "segment.entered"
EXITED = "segment.exited"
PENDING = "pending"
_CHUNK = 200


@dataclass(frozen=True)
class Change:
    segment: str
    person_id: str
    kind: str


def realtime_segments(
    conn: Connection,
) -> tuple[list[tuple[str, Definition]], dict[str, tuple[Kind, str]]]:
    """The segments whose definition reads a real-time field, parsed; and the field list."""
    rows = list(conn.execute(select(serving.segment.c.name, serving.segment.c.definition)))
    candidates = [
        (name, definition)
        for name, definition in rows
        if any(field in definition for field in segments.REALTIME_FIELDS)
    ]
    if not candidates:
        return [], {}
    known = segments.fields(conn)
    kinds = {name: kind for name, (kind, _) in known.items()}
    found = []
    for name, definition in candidates:
        try:
            parsed = parse(definition, kinds)
        except DefinitionError:  # a field gone from the profile: not evaluated
            continue
        if any(known[f][1] == "realtime" for f in parsed.fields):
            found.append((name, parsed))
    return found, known


def _persons(conn: Connection, dialect: StoreDialect, keys: Sequence[StateKey]) -> set[str]:
    """The persons real-time rows of ``keys`` belong to: one statement per identifier type,
    the values as one JSON array (the primary key is probed with each)."""
    by_type: dict[str, list[str]] = {}
    for id_type, id_value in keys:
        by_type.setdefault(id_type, []).append(id_value)
    query = segments.statement(
        "SELECT DISTINCT person_id FROM realtime_state "
        f"WHERE id_type = :id_type AND id_value IN {dialect.json_values(':ids')}"
    )
    found: set[str] = set()
    for id_type, values in by_type.items():
        params = {"id_type": id_type, "ids": orjson.dumps(values).decode()}
        found.update(row[0] for row in conn.execute(query, params) if row[0] is not None)
    return found


def evaluate(
    conn: Connection, dialect: StoreDialect, keys: Iterable[StateKey], now: dt.datetime
) -> list[Change]:
    """Re-evaluate the real-time segments for the persons of ``keys`` and write the changes
    and their events, in the caller's transaction. ``now`` is naive UTC."""
    keyed = list(dict.fromkeys(keys))
    if not keyed:
        return []
    live, known = realtime_segments(conn)
    if not live:
        return []
    return _evaluate(conn, dialect, live, known, sorted(_persons(conn, dialect, keyed)), now)


def sweep(
    conn: Connection, dialect: StoreDialect, now: dt.datetime, horizon: dt.timedelta
) -> list[Change]:
    """Re-evaluate the segments whose definition reads a field that changes with time alone
    (``time_since_last_event_seconds``, ``events_last_hour``) for their members and for the
    persons with an event since ``now - horizon``: what no event triggers (an abandoned cart
    after 30 minutes of silence). In the caller's transaction."""
    live, known = realtime_segments(conn)
    timed = [(n, d) for n, d in live if segments.TIME_DEPENDENT & set(d.fields)]
    if not timed:
        return []
    member = serving.segment_live_member
    persons = {
        row[0]
        for row in conn.execute(
            select(member.c.person_id).where(
                member.c.segment.in_(bindparam("names", expanding=True))
            ),
            {"names": [n for n, _ in timed]},
        )
    }
    recent = text(
        "SELECT DISTINCT person_id FROM realtime_state WHERE last_event_at >= :since"
    ).bindparams(bindparam("since", now - horizon, type_=DateTime()))
    persons.update(row[0] for row in conn.execute(recent) if row[0] is not None)
    return _evaluate(conn, dialect, timed, known, sorted(persons), now)


def _evaluate(
    conn: Connection,
    dialect: StoreDialect,
    live: Sequence[tuple[str, Definition]],
    known: dict[str, tuple[Kind, str]],
    persons: Sequence[str],
    now: dt.datetime,
) -> list[Change]:
    changes: list[Change] = []
    for start in range(0, len(persons), _CHUNK):
        chunk = persons[start : start + _CHUNK]
        marks = {f"lp_{i}": person for i, person in enumerate(chunk)}
        match = f"IN ({', '.join(':' + m for m in marks)})"
        realtime = views.realtime_for_persons_sql(dialect, match)
        for name, definition in live:
            compiled, _ = segments.condition(definition, known, dialect)
            query = (
                f"SELECT b.person_id FROM batch_profile b LEFT JOIN ({realtime}) rt "
                f"ON rt.person_id = b.person_id WHERE b.person_id {match} AND {compiled.sql}"
            )
            extra = {**marks, "now_ms": epoch_ms(now)}
            matched = {row[0] for row in conn.execute(segments.bound(query, compiled, extra))}
            changes += _apply(conn, dialect, name, chunk, matched, now)
    return changes


def _apply(
    conn: Connection,
    dialect: StoreDialect,
    name: str,
    persons: Sequence[str],
    matched: set[str],
    now: dt.datetime,
) -> list[Change]:
    """Apply the difference for ``persons``; each change is claimed by its own statement (an
    insert that does nothing on conflict, a delete), so two transactions evaluating the same
    person — two workers, a worker and a sweep — cannot both report it."""
    live = serving.segment_live_member
    current = {
        row[0]
        for row in conn.execute(
            select(live.c.person_id).where(
                live.c.segment == name, live.c.person_id.in_(bindparam("ids", expanding=True))
            ),
            {"ids": list(persons)},
        )
    }
    changes: list[Change] = []
    # RETURNING tells whether this statement made the change (psycopg's rowcount of an
    # INSERT … ON CONFLICT DO NOTHING is -1).
    claim = dialect.insert(live).on_conflict_do_nothing().returning(live.c.person_id)
    for person in sorted(matched - current):
        row = {"segment": name, "person_id": person, "entered_at": now}
        if conn.execute(claim, row).first() is not None:
            changes.append(Change(name, person, ENTERED))
    for person in sorted(current - matched):
        gone = live.delete().where(live.c.segment == name, live.c.person_id == person)
        if conn.execute(gone.returning(live.c.person_id)).first() is not None:
            changes.append(Change(name, person, EXITED))
    if changes:
        conn.execute(
            serving.segment_event.insert(),
            [
                {
                    "event_id": str(uuid.uuid4()),
                    "segment": c.segment,
                    "person_id": c.person_id,
                    "kind": c.kind,
                    "occurred_at": now,
                    "status": PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                }
                for c in changes
            ],
        )
    return changes
