"""A person's timeline: recent events across sources, newest first, paginated by time.

**Where events come from** — the Lambda split, as the profile's merge (:mod:`.views`): the
batch covers events before the serving batch's cutoff, the speed layer those at or after it.

- ``order``: the orders DB's orders before the cutoff; ``realtime_order`` (Segment "Order
  Completed") since;
- ``ticket``: Zendesk ticket events before; ``realtime_support.recent_ticket_events`` since;
- ``email``: Mailchimp opens, clicks and bounces (batch only);
- ``web``: sessions of the archived clickstream before; since, from ``realtime_state``: the
  ended sessions (``recent_sessions``), the current session and the cart.

A web session is shown from the speed layer when its last event is at or after the cutoff; the
batch's row of the same session (same cookie, same start) then gives way to it. Everything is
kept per source identifier and resolved to a person when read, by the rules of :mod:`.views`:
a cookie through its stitch link, else the identity map (orders: who was logged in first).

**Bounds**: events older than ``now - timeline.days`` are not shown; the batch publishes at
most ``timeline.max_events_per_identifier`` per identifier; the speed layer keeps the last
:data:`~c360.speed.features.MAX_RECENT_SESSIONS` ended sessions per cookie and
:data:`~c360.speed.support.MAX_TIMELINE_EVENTS` ticket events per Zendesk user.

**Order and pages**: newest first by (time, event id); a page is the first ``limit`` events
before a :class:`TimelineKey` (the previous page's last event, or a time). Each source is read
with its own bounded query on one connection (the batch's at most ``limit + 1`` rows after the
key; the speed layer's lists and its orders since the cutoff whole), merged here.

Event ids are 16 hex digits of an md5 of the event's natural key (``order:<id>``,
``ticket:<event id>``, …): the same for an order or a ticket event from either layer, and free
of personal data (they go into cursors).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
import pyarrow as pa
from sqlalchemy import (
    BigInteger,
    Connection,
    DateTime,
    Float,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    text,
)
from sqlalchemy.sql.selectable import TextualSelect

from c360.contracts import serving
from c360.contracts.times import epoch_ms, naive_from_epoch_us, naive_utc

if TYPE_CHECKING:
    from c360.stores.base import ServingStore

KINDS = ("order", "ticket", "email", "web")
_INSERT_CHUNK = 5_000


class TimelineKey(NamedTuple):
    """A position in the timeline: events strictly before (time, event id) come next. A bare
    time is ``(time, "")``."""

    at: dt.datetime  # naive UTC
    event_id: str


@dataclass(frozen=True)
class TimelinePage:
    """One page: the person answered for (a retired id answers as its survivor), the events,
    and the key of the next page (None on the last)."""

    person_id: str
    redirected_from: str | None
    events: list[dict[str, Any]]
    next_key: TimelineKey | None


def event_id(natural_key: str) -> str:
    """The event id of a natural key: 16 hex digits of its md5 (as the batch SQL computes)."""
    return hashlib.md5(natural_key.encode(), usedforsecurity=False).hexdigest()[:16]


# -- the batch part, at publish -----------------------------------------------------------------


def replace_events(store: ServingStore, conn: Connection, events: pa.Table) -> int:
    """Replace ``timeline_event`` with a publish's events, in the caller's transaction (a
    summary column the table lacks is null), in key order: the primary key's B-tree is appended
    to rather than split at random."""
    table = serving.timeline_event
    conn.execute(table.delete())
    key = [(column.name, "ascending") for column in table.primary_key.columns]
    store.dialect.bulk_insert(conn, table, _rows(table, events.sort_by(key)))
    return int(events.num_rows)


def _rows(table: Table, events: pa.Table) -> Iterator[tuple[Any, ...]]:
    """The rows of ``events`` in ``table``'s column order, times as naive UTC datetimes."""
    for batch in events.to_batches(max_chunksize=_INSERT_CHUNK):
        columns: list[list[Any]] = []
        for column in table.columns:
            if column.name not in batch.schema.names:
                columns.append([None] * batch.num_rows)
                continue
            values = batch.column(column.name)
            if pa.types.is_timestamp(values.type) and values.type.tz is not None:
                values = values.cast(pa.timestamp(values.type.unit))
            columns.append(values.to_pylist())
        yield from zip(*columns, strict=True)


# -- reading ------------------------------------------------------------------------------------

_PERSON = """
SELECT person_id FROM person WHERE person_id = :p
UNION ALL
SELECT r.person_id FROM person_redirect r JOIN person p ON p.person_id = r.person_id
WHERE r.retired_id = :p
"""

_CUTOFF = "SELECT cutoff_at FROM batch_publish ORDER BY id DESC LIMIT 1"

# The identifiers of one person: the identity map's, and the cookies linked since the batch to
# one of the person's customer ids. Listed first, so that each table is read by its key (an OR
# of IN-subqueries made PostgreSQL scan the whole table: 250 ms a page on 120k persons).
_IDS = """
SELECT id_type, id_value FROM identity_map WHERE person_id = :person_id
UNION
SELECT 'anonymous_id', s.anonymous_id FROM identity_stitch s
JOIN identity_map m ON m.id_type = 'customer_id' AND m.id_value = s.customer_id
WHERE m.person_id = :person_id
"""

# The batch's events of one person, resolved as real-time state is (a cookie's link first).
_BATCH = f"""
WITH ids AS ({_IDS})
SELECT t.* FROM ids
JOIN timeline_event t ON t.id_type = ids.id_type AND t.id_value = ids.id_value
LEFT JOIN identity_stitch link ON t.id_type = 'anonymous_id' AND link.anonymous_id = t.id_value
LEFT JOIN identity_map by_link
       ON by_link.id_type = 'customer_id' AND by_link.id_value = link.customer_id
LEFT JOIN identity_map by_id ON by_id.id_type = t.id_type AND by_id.id_value = t.id_value
WHERE COALESCE(by_link.person_id, by_id.person_id) = :person_id
  AND t.occurred_at >= :since {{before}} {{kinds}}
ORDER BY t.occurred_at DESC, t.event_id DESC
LIMIT :fetch
"""

# The person's real-time state rows (resolved when written: c360.stores.resolution).
_STATES = """
SELECT person_id AS owner, id_type, id_value, session_start, session_last_event_at,
       current_session_page_views, current_session_product_views, cart_id, cart_items,
       cart_value, cart_updated_at, recent_sessions
FROM realtime_state WHERE person_id = :person_id
"""

# Orders the speed layer saw since the cutoff, of the person: few (the batch takes them over at
# the next publish), so all of them, up to the page's key.
_ORDERS = """
SELECT order_id, order_at, revenue FROM realtime_order
WHERE person_id = :person_id AND order_at >= :cutoff AND order_at >= :since {before}
"""

# The person's Zendesk users' recent ticket events.
_TICKETS = """
SELECT recent_ticket_events FROM realtime_support
WHERE person_id = :person_id AND recent_ticket_events IS NOT NULL
"""

_TIMES = ("since", "cutoff", "before_at")
_RESULT_TYPES = {
    "occurred_at": DateTime,
    "ended_at": DateTime,
    "order_at": DateTime,
    "session_start": DateTime,
    "session_last_event_at": DateTime,
    "cart_updated_at": DateTime,
    "amount": Float,
    "revenue": Float,
    "cart_value": Float,
    "quantity": BigInteger,
    "page_views": Integer,
    "product_views": Integer,
    "current_session_page_views": Integer,
    "current_session_product_views": Integer,
    "cart_items": Integer,
    "recent_sessions": Text,
    "event_id": String,
    "cutoff_at": DateTime,
}


def _query(sql: str, params: Mapping[str, Any], results: Collection[str] = ()) -> TextualSelect:
    """``sql`` with its time parameters bound as the store's datetimes and its time columns read
    back as datetimes (SQLite holds them as text)."""
    clause = text(sql).bindparams(
        *(bindparam(name, type_=DateTime) for name in _TIMES if f":{name}" in sql)
    )
    return clause.columns(**{name: _RESULT_TYPES[name] for name in results})


def _fetch(
    conn: Connection, sql: str, params: Mapping[str, Any], results: Collection[str] = ()
) -> list[dict[str, Any]]:
    query = _query(sql, params, results)
    return [dict(row._mapping) for row in conn.execute(query, dict(params))]


def _before_sql(at: str, ident: str, key: TimelineKey | None) -> str:
    if key is None:
        return ""
    return f"AND ({at} < :before_at OR ({at} = :before_at AND {ident} < :before_id))"


def read(
    conn: Connection,
    person_id: str,
    *,
    now: dt.datetime,
    days: int,
    limit: int,
    before: TimelineKey | None = None,
    kinds: Collection[str] = KINDS,
) -> TimelinePage | None:
    """A page of a person's timeline (see the module docstring); None for an unknown person."""
    found = _fetch(conn, _PERSON, {"p": person_id})
    if not found:
        return None
    person = str(found[0]["person_id"])
    redirected_from = person_id if person != person_id else None
    cutoff_rows = _fetch(conn, _CUTOFF, {}, ("cutoff_at",))
    cutoff = _as_datetime(cutoff_rows[0]["cutoff_at"]) if cutoff_rows else dt.datetime(1970, 1, 1)
    since = naive_utc(now) - dt.timedelta(days=days)
    params: dict[str, Any] = {
        "person_id": person,
        "since": since,
        "cutoff": cutoff,
        "fetch": limit + 1,
    }
    if before is not None:
        params["before_at"], params["before_id"] = before.at, before.event_id
    wanted = [k for k in KINDS if k in kinds]
    kinds_sql = ""
    if len(wanted) < len(KINDS):  # the kinds are our own constants
        kinds_sql = "AND t.kind IN (" + ", ".join(f"'{kind}'" for kind in wanted) + ")"

    realtime: list[dict[str, Any]] = []
    live_sessions: set[tuple[str, int]] = set()
    if "web" in wanted:
        for state in _fetch(conn, _STATES, params, _RESULT_TYPES.keys() & _STATE_COLUMNS):
            realtime += _web_events(state, cutoff, live_sessions)
    if "ticket" in wanted:
        for row in _fetch(conn, _TICKETS, params):
            realtime += _ticket_events(row["recent_ticket_events"], cutoff)
    if "order" in wanted:
        sql = _ORDERS.format(before="AND order_at <= :before_at" if before else "")
        for row in _fetch(conn, sql, params, ("order_at", "revenue")):
            realtime.append(_order_event(row))
    batch = []
    if wanted:
        sql = _BATCH.format(
            before=_before_sql("t.occurred_at", "t.event_id", before), kinds=kinds_sql
        )
        batch = _fetch(conn, sql, params, _RESULT_TYPES.keys() & _EVENT_COLUMNS)
    events = [_batch_event(row) for row in batch if not _replaced(row, live_sessions)]
    events += [e for e in realtime if e["at"] >= since and _is_before(e, before)]
    events.sort(key=_order_key, reverse=True)
    page = events[:limit]
    next_key = TimelineKey(page[-1]["at"], page[-1]["id"]) if len(events) > limit else None
    return TimelinePage(person, redirected_from, page, next_key)


_STATE_COLUMNS = {
    "session_start",
    "session_last_event_at",
    "current_session_page_views",
    "current_session_product_views",
    "cart_items",
    "cart_value",
    "cart_updated_at",
    "recent_sessions",
}
_EVENT_COLUMNS = {c.name for c in serving.timeline_event.columns}


def _as_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return naive_utc(value)
    return dt.datetime.fromisoformat(str(value))


def _order_key(event: Mapping[str, Any]) -> tuple[dt.datetime, str]:
    return event["at"], event["id"]


def _is_before(event: Mapping[str, Any], key: TimelineKey | None) -> bool:
    return key is None or _order_key(event) < (key.at, key.event_id)


def _replaced(row: Mapping[str, Any], live_sessions: set[tuple[str, int]]) -> bool:
    """Whether a batch session is shown from the speed layer instead (same cookie and start)."""
    if row["type"] != "session" or row["id_type"] != "anonymous_id":
        return False
    return (row["id_value"], epoch_ms(row["occurred_at"])) in live_sessions


def _event(
    kind: str, source: str, type_: str, at: dt.datetime, natural_key: str, **summary: Any
) -> dict[str, Any]:
    fields = {name: summary.get(name) for name in SUMMARY_FIELDS}
    event = {
        "id": event_id(natural_key),
        "at": at,
        "kind": kind,
        "source": source,
        "type": type_,
        **fields,
    }
    event["summary"] = describe(event)
    return event


SUMMARY_FIELDS = (
    "reference",
    "status",
    "amount",
    "currency",
    "quantity",
    "title",
    "ended_at",
    "page_views",
    "product_views",
)


def _batch_event(row: Mapping[str, Any]) -> dict[str, Any]:
    event = {
        "id": row["event_id"],
        "at": _as_datetime(row["occurred_at"]),
        "kind": row["kind"],
        "source": row["source"],
        "type": row["type"],
        **{name: row[name] for name in SUMMARY_FIELDS},
    }
    if event["ended_at"] is not None:
        event["ended_at"] = _as_datetime(event["ended_at"])
    event["summary"] = describe(event)
    return event


def _web_events(
    state: Mapping[str, Any], cutoff: dt.datetime, live: set[tuple[str, int]]
) -> list[dict[str, Any]]:
    """The ended sessions, the current session and the cart of one state row, as events."""
    cookie = str(state["id_value"])
    sessions: list[tuple[int, int, int, int]] = [
        (int(s), int(e), int(p), int(v))
        for s, e, p, v in orjson.loads(state["recent_sessions"] or "[]")
    ]
    start, last = state["session_start"], state["session_last_event_at"]
    if start is not None and last is not None:
        sessions.append(
            (
                epoch_ms(start),
                epoch_ms(last),
                int(state["current_session_page_views"] or 0),
                int(state["current_session_product_views"] or 0),
            )
        )
    events = []
    cutoff_ms = epoch_ms(cutoff)
    for start_ms, last_ms, pages, products in sessions:
        if last_ms < cutoff_ms:
            continue  # the batch has it
        live.add((cookie, start_ms))
        events.append(
            _event(
                "web",
                "clickstream",
                "session",
                naive_from_epoch_us(start_ms * 1000),
                f"session:{cookie}:{start_ms}",
                ended_at=naive_from_epoch_us(last_ms * 1000),
                page_views=pages,
                product_views=products,
            )
        )
    updated = state["cart_updated_at"]
    if int(state["cart_items"] or 0) > 0 and updated is not None:
        events.append(
            _event(
                "web",
                "clickstream",
                "cart",
                _as_datetime(updated),
                f"cart:{cookie}",
                amount=float(state["cart_value"] or 0.0),
                quantity=int(state["cart_items"]),
            )
        )
    return events


def _ticket_events(stored: str, cutoff: dt.datetime) -> list[dict[str, Any]]:
    cutoff_ms = epoch_ms(cutoff)
    events = []
    for at_ms, zendesk_event, kind, ticket, status in orjson.loads(stored):
        if at_ms < cutoff_ms:
            continue  # the batch has it
        events.append(
            _event(
                "ticket",
                "zendesk",
                str(kind),
                naive_from_epoch_us(int(at_ms) * 1000),
                f"ticket:{zendesk_event}",
                reference=ticket,
                status=status,
            )
        )
    return events


def _order_event(row: Mapping[str, Any]) -> dict[str, Any]:
    return _event(
        "order",
        "clickstream",
        "order",
        _as_datetime(row["order_at"]),
        f"order:{row['order_id']}",
        reference=str(row["order_id"]),
        amount=row["revenue"],
    )


def describe(event: Mapping[str, Any]) -> str:
    """One line for people: what happened, with the few facts an agent needs."""
    kind, reference = event["kind"], event["reference"]
    if kind == "order":
        parts = [f"Order {reference}"]
        details = []
        if event["quantity"]:
            items = event["quantity"]
            details.append(f"{items} item{'s' if items != 1 else ''}")
        if event["title"]:
            details.append(str(event["title"]) + (" …" if (event["quantity"] or 0) > 1 else ""))
        if event["amount"] is not None:
            currency = f" {event['currency']}" if event["currency"] else ""
            details.append(f"{event['amount']:.2f}{currency}")
        text_ = parts[0] + (": " + ", ".join(details) if details else "")
        return text_ + (f" ({event['status']})" if event["status"] else "")
    if kind == "ticket":
        action = str(event["type"]).removeprefix("ticket.").replace("_", " ")
        status = f" ({event['status']})" if event["status"] else ""
        return f"Ticket {reference}: {action}{status}"
    if kind == "email":
        action = {"open": "opened", "click": "clicked", "bounce": "bounced"}.get(
            str(event["type"]), str(event["type"])
        )
        target = f" {event['title']}" if event["title"] else ""
        return f"Email campaign {reference}: {action}{target}"
    if event["type"] == "cart":
        items = event["quantity"]
        return f"Cart: {items} item{'s' if items != 1 else ''}, {event['amount']:.2f}"
    pages, products = event["page_views"] or 0, event["product_views"] or 0
    visit = f"Visit: {pages} page view{'s' if pages != 1 else ''}"
    visit += f", {products} product view{'s' if products != 1 else ''}"
    if event["quantity"]:
        visit += f", {event['quantity']} added to cart"
    ended = event["ended_at"]
    if ended is not None:
        minutes = max(0, round((ended - event["at"]).total_seconds() / 60))
        visit += f", {minutes} min"
    return visit
