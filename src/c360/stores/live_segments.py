"""Real-time segment membership, evaluated inside the speed layer's micro-batch transaction.

A *real-time segment* is one whose definition reads a real-time field (``cart_value``,
``events_last_hour``, …; :data:`c360.stores.segments.REALTIME_FIELDS`). When a micro-batch
commits (:meth:`ServingStore.commit_micro_batch`), :func:`evaluate` runs in the same transaction,
after the states are written:

1. the persons the batch changed: each changed identifier resolved as the ``profile`` view
   resolves real-time rows (its cookie's stitch link, the customer it identified as, itself);
2. each real-time segment evaluated for those persons only — batch fields from
   ``batch_profile``, real-time fields from their real-time rows as of the commit;
3. the difference with ``segment_live_member`` applied, and one ``segment_event``
   (``segment.entered`` / ``segment.exited``) written per change: the *outbox* the webhook
   dispatcher delivers from.

Because the events are written in the transaction that claims the batch's offsets, a crash
before the commit loses nothing (the batch is read again and evaluated again) and one after it
duplicates nothing (the offsets moved): each change gives exactly one event. Delivery is
at-least-once, keyed by the event id (:mod:`c360.pipeline.webhooks`).

What is **not** done: time passing alone changes nothing — a definition such as "no activity
for 30 minutes" is only re-evaluated when the person's state changes, not on a timer.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, bindparam, select, text

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


def _persons(conn: Connection, keys: Sequence[StateKey]) -> set[str]:
    """The persons real-time rows of ``keys`` belong to (as the profile view resolves them)."""
    found: set[str] = set()
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        values = ", ".join(f"(:t{i}, :v{i})" for i in range(len(chunk)))
        params: dict[str, object] = {}
        for i, (id_type, id_value) in enumerate(chunk):
            params[f"t{i}"], params[f"v{i}"] = id_type, id_value
        query = text(
            f"SELECT DISTINCT {views.RESOLVE_PERSON} AS person_id "
            f"FROM realtime_state r{views.RESOLVE_JOINS} "
            f"WHERE (r.id_type, r.id_value) IN (VALUES {values})"
        )
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
    persons = sorted(_persons(conn, keyed))
    changes: list[Change] = []
    for start in range(0, len(persons), _CHUNK):
        chunk = persons[start : start + _CHUNK]
        marks = {f"lp_{i}": person for i, person in enumerate(chunk)}
        match = f"IN ({', '.join(':' + m for m in marks)})"
        realtime = views.realtime_for_persons_sql(dialect, match)
        for name, definition in live:
            compiled, _ = segments.condition(definition, known)
            query = (
                f"SELECT b.person_id FROM batch_profile b LEFT JOIN ({realtime}) rt "
                f"ON rt.person_id = b.person_id WHERE b.person_id {match} AND {compiled.sql}"
            )
            extra = {**marks, "now_ms": epoch_ms(now)}
            matched = {row[0] for row in conn.execute(segments.bound(query, compiled, extra))}
            changes += _apply(conn, name, chunk, matched, now)
    return changes


def _apply(
    conn: Connection, name: str, persons: Sequence[str], matched: set[str], now: dt.datetime
) -> list[Change]:
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
    entered = sorted(matched - current)
    exited = sorted(current - matched)
    if entered:
        conn.execute(
            live.insert(), [{"segment": name, "person_id": p, "entered_at": now} for p in entered]
        )
    if exited:
        conn.execute(
            live.delete().where(
                live.c.segment == name, live.c.person_id.in_(bindparam("gone", expanding=True))
            ),
            {"gone": exited},
        )
    changes = [Change(name, p, ENTERED) for p in entered] + [
        Change(name, p, EXITED) for p in exited
    ]
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
