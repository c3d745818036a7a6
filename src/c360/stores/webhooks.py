"""The webhook outbox in the serving store: the SQL behind ``ServingStore.due_events`` and
``record_delivery`` (:mod:`c360.stores.live_segments` writes the events).

An event is ``pending`` until delivered (``delivered``), withheld because the person has no
marketing consent (``withheld``: nothing is sent), or given up after the last attempt
(``failed``). Every attempt is a ``webhook_delivery`` row. Recording an attempt is a
compare-and-set on the event's attempt count, so two dispatchers never both count one attempt.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, select, text, update
from sqlalchemy import types as sqltypes

from c360.access import consent
from c360.contracts import serving
from c360.stores import consent as stored_consent

if TYPE_CHECKING:
    from c360.stores.base import StoreDialect

PENDING, DELIVERED, WITHHELD, FAILED = "pending", "delivered", "withheld", "failed"


@dataclass(frozen=True)
class DueEvent:
    event_id: str
    segment: str
    person_id: str
    kind: str
    occurred_at: dt.datetime
    attempts: int
    email: str | None
    consent: bool  # the newest decision, the batch's or one since, is a yes


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt's outcome, and what becomes of the event."""

    event_id: str
    attempt: int  # 1-based
    at: dt.datetime
    status_code: int | None
    error: str | None
    succeeded: bool
    status: str  # the event's status after it: pending, delivered, withheld, failed
    next_attempt_at: dt.datetime


def due(conn: Connection, dialect: StoreDialect, now: dt.datetime, limit: int) -> list[DueEvent]:
    """Pending events due at ``now``, oldest due first, with the person's email and consent:
    the newest of the batch's and the decisions since (:mod:`c360.access.consent`), so a
    withdrawal made a moment ago withholds the person's events."""
    e = serving.segment_event
    columns = {c["name"] for c in inspect(conn).get_columns(serving.BATCH_PROFILE)}
    batch = ", ".join(
        f"b.{column} AS {name}" if column in columns else f"NULL AS {name}"
        for column, name in (
            ("marketing_consent", "consent"),
            ("marketing_consent_at", "consent_at"),
        )
    )
    query = text(
        f"""
        SELECT e.event_id, e.segment, e.person_id, e.kind, e.occurred_at, e.attempts, p.email,
               {batch}
        FROM {e.name} e
        LEFT JOIN person p ON p.person_id = e.person_id
        LEFT JOIN batch_profile b ON b.person_id = e.person_id
        WHERE e.status = :pending AND e.next_attempt_at <= :now
        ORDER BY e.next_attempt_at, e.occurred_at, e.event_id
        LIMIT :limit
        """
    ).columns(
        occurred_at=e.c.occurred_at.type, consent=sqltypes.Boolean(), consent_at=sqltypes.DateTime()
    )
    rows = conn.execute(query, {"pending": PENDING, "now": now, "limit": limit}).all()
    since = stored_consent.for_persons(conn, dialect, {r.person_id for r in rows})
    return [
        DueEvent(
            r.event_id,
            r.segment,
            r.person_id,
            r.kind,
            r.occurred_at,
            int(r.attempts),
            r.email,
            consent.consents(
                consent.batch_decision(r.consent, r.consent_at), since.get(r.person_id)
            ),
        )
        for r in rows
    ]


def record(conn: Connection, attempt: Attempt) -> bool:
    """Record ``attempt`` and move its event on; False (nothing written) if another
    dispatcher recorded this attempt first."""
    e = serving.segment_event
    finished = attempt.at if attempt.status != PENDING else None
    moved = conn.execute(
        update(e)
        .where(
            e.c.event_id == attempt.event_id,
            e.c.status == PENDING,
            e.c.attempts == attempt.attempt - 1,
        )
        .values(
            status=attempt.status,
            attempts=attempt.attempt,
            next_attempt_at=attempt.next_attempt_at,
            finished_at=finished,
        )
    )
    if not moved.rowcount:
        return False
    if attempt.status != WITHHELD:
        conn.execute(
            serving.webhook_delivery.insert().values(
                event_id=attempt.event_id,
                attempt=attempt.attempt,
                attempted_at=attempt.at,
                status_code=attempt.status_code,
                error=attempt.error,
                succeeded=attempt.succeeded,
            )
        )
    return True


def deliveries(conn: Connection, event_id: str) -> list[dict[str, object]]:
    d = serving.webhook_delivery
    query = select(d).where(d.c.event_id == event_id).order_by(d.c.attempt)
    return [dict(row._mapping) for row in conn.execute(query)]
