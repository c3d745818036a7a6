"""Reading unified profiles by key: the serving layer's lookups behind the API."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, text

from c360.contracts import serving
from c360.contracts.times import epoch_ms, naive_utc, naive_utc_now
from c360.stores.views import (
    LAMBDA_MERGES,
    ORDER_DELTAS_FOR_PERSON,
    SUPPORT_FOR_PERSON,
    realtime_for_person_sql,
)

if TYPE_CHECKING:
    from c360.stores.base import StoreDialect

# An anonymous_id resolves through its real-time stitch link first (the customer it identified
# as since the batch), then through the batch's identity_map — the same order as the views.
_FIND_BY_LINK = """
SELECT m.person_id FROM identity_stitch s
JOIN identity_map m ON m.id_type = 'customer_id' AND m.id_value = s.customer_id
WHERE s.anonymous_id = :v
"""
_FIND = "SELECT person_id FROM identity_map WHERE id_type = :t AND id_value = :v"


def _rows(conn: Connection, sql: str, **params: Any) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in conn.execute(text(sql), params)]


def find_person(conn: Connection, id_type: str, id_value: str) -> str | None:
    """The person an identifier (in lookup form) belongs to, or None."""
    if id_type == "anonymous_id":
        linked = _rows(conn, _FIND_BY_LINK, v=id_value)
        if linked:
            return str(linked[0]["person_id"])
    rows = _rows(conn, _FIND, t=id_type, v=id_value)
    return str(rows[0]["person_id"]) if rows else None


def read_profile(
    conn: Connection, dialect: StoreDialect, person_id: str, now: dt.datetime | None
) -> dict[str, Any] | None:
    """The joined profile of one person, or None when the person is unknown (see
    :meth:`c360.stores.ServingStore.profile`)."""
    person = _rows(conn, "SELECT * FROM person WHERE person_id = :p", p=person_id)
    redirected_from = None
    if not person:
        survivor = _rows(
            conn, "SELECT person_id FROM person_redirect WHERE retired_id = :p", p=person_id
        )
        if not survivor:
            return None
        redirected_from, person_id = person_id, str(survivor[0]["person_id"])
        person = _rows(conn, "SELECT * FROM person WHERE person_id = :p", p=person_id)
        if not person:
            return None
    now = naive_utc_now() if now is None else naive_utc(now)
    batch = _rows(conn, f"SELECT * FROM {serving.BATCH_PROFILE} WHERE person_id = :p", p=person_id)
    realtime = _rows(
        conn, realtime_for_person_sql(dialect), person_id=person_id, now_ms=epoch_ms(now)
    )
    support = _rows(conn, SUPPORT_FOR_PERSON, person_id=person_id)
    deltas = _rows(conn, ORDER_DELTAS_FOR_PERSON, person_id=person_id)
    identifiers = _rows(
        conn,
        "SELECT id_type, id_value FROM identity_map WHERE person_id = :p "
        "ORDER BY id_type, id_value",
        p=person_id,
    )
    live = dict(realtime[0]) if realtime else {}
    live.pop("person_id", None)
    last = live.get("last_event_at")
    if isinstance(last, str):
        last = dt.datetime.fromisoformat(last)
    live["time_since_last_event_seconds"] = (now - last).total_seconds() if last else None
    open_tickets = int(support[0]["open_ticket_count"] or 0) if support else 0
    live["open_ticket_count"] = open_tickets
    live["has_open_support_ticket"] = open_tickets > 0
    batch_values = dict(batch[0]) if batch else {}
    batch_values.pop("person_id", None)
    delta = dict(deltas[0]) if deltas else {}
    delta.pop("person_id", None)
    live.update({name: delta.get(name) for name in ("orders_since_cutoff", "spend_since_cutoff")})
    return {
        "person_id": person_id,
        "redirected_from": redirected_from,
        "person": {k: v for k, v in person[0].items() if k != "person_id"},
        "identifiers": identifiers,
        "profile": lambda_merge(batch_values, delta),
        "batch": batch_values,
        "realtime": live,
    }


def _date(value: Any) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def lambda_merge(batch: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    """Batch values completed by the speed layer's deltas after the cutoff (as the view does)."""
    merged = dict(batch)
    for column, (delta_column, how) in LAMBDA_MERGES.items():
        extra = delta.get(delta_column)
        if extra is None:
            continue
        if how == "add":
            merged[column] = (batch.get(column) or 0) + extra
        else:
            dates = [d for d in (_date(batch.get(column)), _date(extra)) if d is not None]
            merged[column] = max(dates)
    return merged
