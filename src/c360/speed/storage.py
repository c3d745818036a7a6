"""How the speed layer reads and writes the serving store: state rows, orders, offsets, dead
letters.

All functions take the :class:`~sqlalchemy.Connection` of the caller's transaction; the commit
order and why it gives exactly-once is in :mod:`c360.speed.worker`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from sqlalchemy import Connection, Table, insert, select, update
from sqlalchemy.exc import IntegrityError

from c360.contracts.serving import (
    dead_letter,
    realtime_order,
    realtime_state,
    realtime_support,
    stream_offsets,
)
from c360.errors import TransientError
from c360.logs import Record, TopicPartition
from c360.speed.features import NO_LINES, Order, RealtimeState, StateKey
from c360.speed.support import SupportState, empty_support_state
from c360.stores import ServingStore

_IN_CHUNK = 500
_STATE_TIMES = (
    "user_id_at",
    "session_start",
    "session_last_event_at",
    "last_event_at",
    "cart_since",
    "cart_updated_at",
)

S = TypeVar("S")


class OffsetConflict(TransientError):
    """Another consumer moved a partition's committed offset: this batch must not commit."""

    def __init__(self, group: str, tp: TopicPartition, expected: int, found: int | None) -> None:
        self.partition = tp
        super().__init__(
            f"consumer group {group!r}: {tp.topic}/{tp.partition} was expected at offset "
            f"{expected} but is at {found}; another worker consumed it (rebalance or a second "
            "worker): re-reading from the stored offset"
        )


def _naive_utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is not dt.UTC:  # the decoders give UTC; anything else is converted
        value = value.astimezone(dt.UTC)
    return value.replace(tzinfo=None)


def _aware_utc(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else value.replace(tzinfo=dt.UTC)


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


def state_row(state: RealtimeState) -> dict[str, Any]:
    """The ``realtime_state`` row of a state (naive UTC times and JSON, as the table stores)."""
    row: dict[str, Any] = dict(state)
    for name in _STATE_TIMES:
        row[name] = _naive_utc(row[name])
    row["recent_message_ids"] = _json(state["recent_message_ids"])
    row["recent_event_times"] = _json(state["recent_event_times"])
    lines = state["cart_lines"]
    row["cart_lines"] = _json(dict(lines)) if lines else None
    return row


def state_from_row(row: Mapping[str, Any]) -> RealtimeState:
    recent, times, lines = row["recent_message_ids"], row["recent_event_times"], row["cart_lines"]
    return {
        "id_type": row["id_type"],
        "id_value": row["id_value"],
        "user_id": row["user_id"],
        "user_id_at": _aware_utc(row["user_id_at"]),
        "session_start": _aware_utc(row["session_start"]),
        "session_last_event_at": _aware_utc(row["session_last_event_at"]),
        "current_session_page_views": int(row["current_session_page_views"] or 0),
        "current_session_product_views": int(row["current_session_product_views"] or 0),
        "last_event_at": _aware_utc(row["last_event_at"]),
        "last_event_type": row["last_event_type"],
        "events_total": int(row["events_total"] or 0),
        "recent_message_ids": tuple(orjson.loads(recent)) if recent else (),
        "recent_event_times": tuple(orjson.loads(times)) if times else (),
        "cart_id": row["cart_id"],
        "cart_lines": (
            {k: (int(q), float(p)) for k, (q, p) in orjson.loads(lines).items()}
            if lines
            else NO_LINES
        ),
        "cart_items": int(row["cart_items"] or 0),
        "cart_value": float(row["cart_value"] or 0.0),
        "cart_since": _aware_utc(row["cart_since"]),
        "cart_updated_at": _aware_utc(row["cart_updated_at"]),
    }


def support_row(state: SupportState) -> dict[str, Any]:
    """The ``realtime_support`` row of a support state."""
    row: dict[str, Any] = dict(state)
    row["last_event_at"] = _naive_utc(state["last_event_at"])
    row["tickets"] = _json(dict(state["tickets"]))
    row["recent_event_ids"] = _json(state["recent_event_ids"])
    return row


def support_from_row(row: Mapping[str, Any]) -> SupportState:
    state = empty_support_state((row["id_type"], row["id_value"]))
    state["open_ticket_count"] = int(row["open_ticket_count"] or 0)
    state["events_total"] = int(row["events_total"] or 0)
    state["last_event_at"] = _aware_utc(row["last_event_at"])
    tickets, recent = row["tickets"], row["recent_event_ids"]
    if tickets:
        state["tickets"] = {k: (str(s), int(at)) for k, (s, at) in orjson.loads(tickets).items()}
    state["recent_event_ids"] = tuple(orjson.loads(recent)) if recent else ()
    return state


def load_rows(
    conn: Connection, table: Table, keys: Iterable[StateKey], from_row: Callable[[Any], S]
) -> dict[StateKey, S]:
    """The stored states of ``keys`` in ``table`` (absent keys have none yet)."""
    by_type: dict[str, list[str]] = {}
    for id_type, id_value in set(keys):
        by_type.setdefault(id_type, []).append(id_value)
    states: dict[StateKey, S] = {}
    for id_type, values in by_type.items():
        for i in range(0, len(values), _IN_CHUNK):
            query = select(table).where(
                table.c.id_type == id_type, table.c.id_value.in_(values[i : i + _IN_CHUNK])
            )
            for row in conn.execute(query):
                mapping = row._mapping
                states[mapping["id_type"], mapping["id_value"]] = from_row(mapping)
    return states


def load_states(conn: Connection, keys: Iterable[StateKey]) -> dict[StateKey, RealtimeState]:
    """The stored clickstream states of ``keys``."""
    return load_rows(conn, realtime_state, keys, state_from_row)


def load_support_states(conn: Connection, keys: Iterable[StateKey]) -> dict[StateKey, SupportState]:
    """The stored support states of ``keys``."""
    return load_rows(conn, realtime_support, keys, support_from_row)


@dataclass(frozen=True)
class _Statement:
    """An INSERT compiled once for a dialect, with the column order and bind processors."""

    sql: str
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    positional: bool

    def params(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        pairs = list(zip(self.names, self.processors, strict=True))
        if self.positional:
            return [tuple([row[n] if p is None else p(row[n]) for n, p in pairs]) for row in rows]
        return [{n: row[n] if p is None else p(row[n]) for n, p in pairs} for row in rows]


_STATEMENTS: dict[tuple[str, str, bool], _Statement] = {}


def _statement(store: ServingStore, conn: Connection, table: Table, replace: bool) -> _Statement:
    """``INSERT … ON CONFLICT (key) DO UPDATE`` (replace) or ``DO NOTHING``, compiled once."""
    dialect = conn.dialect
    cache_key = (dialect.name, table.name, replace)
    found = _STATEMENTS.get(cache_key)
    if found is not None:
        return found
    keys = [column.name for column in table.primary_key.columns]
    insert_ = store.dialect_insert(table)
    if replace:
        updates = {c.name: insert_.excluded[c.name] for c in table.columns if c.name not in keys}
        statement = insert_.on_conflict_do_update(index_elements=keys, set_=updates)
    else:
        statement = insert_.on_conflict_do_nothing(index_elements=keys)
    compiled = statement.compile(dialect=dialect)
    positional = bool(compiled.positional)
    names = (
        tuple(compiled.positiontup or ()) if positional else tuple(c.name for c in table.columns)
    )
    processors = tuple(
        table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
    )
    found = _STATEMENTS[cache_key] = _Statement(compiled.string, names, processors, positional)
    return found


def write_rows(
    store: ServingStore,
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    replace: bool = True,
) -> None:
    """Upsert complete rows of ``table`` by its primary key (``replace=False``: keep the stored
    row). One ``executemany`` of the statement SQLAlchemy compiles for the connection's dialect,
    with the columns' own bind processors, without the per-row work of a Core ``execute``."""
    if not rows:
        return
    statement = _statement(store, conn, table, replace)
    conn.exec_driver_sql(statement.sql, statement.params(rows))


def insert_orders(store: ServingStore, conn: Connection, orders: Sequence[Order]) -> int:
    """Insert the ``realtime_order`` rows of orders not stored yet; return how many.

    An order id already stored keeps its first row (the conflict clause guards a concurrent
    insert too).
    """
    ids = [order.order_id for order in orders]
    stored: set[str] = set()
    for i in range(0, len(ids), _IN_CHUNK):
        query = select(realtime_order.c.order_id).where(
            realtime_order.c.order_id.in_(ids[i : i + _IN_CHUNK])
        )
        stored.update(conn.execute(query).scalars())
    rows = [
        order._asdict() | {"order_at": _naive_utc(order.order_at)}
        for order in orders
        if order.order_id not in stored
    ]
    write_rows(store, conn, realtime_order, rows, replace=False)
    return len(rows)


def claim_offsets(
    conn: Connection, group: str, moves: Mapping[TopicPartition, tuple[int, int]]
) -> None:
    """Move each partition's committed offset from ``start`` to ``next`` — only if it is still
    at ``start`` (compare-and-set), else raise :class:`OffsetConflict`.

    Run first in the batch's transaction: the row lock (PostgreSQL) or write lock (SQLite)
    then fences any other worker on these partitions until the commit. Partitions are claimed
    in sorted order so two workers never deadlock.
    """
    o = stream_offsets
    for tp, (start, next_offset) in sorted(moves.items()):
        where = (o.c.consumer_group == group, o.c.topic == tp.topic, o.c.partition == tp.partition)
        moved = conn.execute(
            update(o).where(*where, o.c.next_offset == start).values(next_offset=next_offset)
        )
        if moved.rowcount == 1:
            continue
        found = conn.execute(select(o.c.next_offset).where(*where)).scalar_one_or_none()
        if found is not None or start != 0:
            raise OffsetConflict(group, tp, start, found)
        try:
            conn.execute(
                insert(o).values(
                    consumer_group=group,
                    topic=tp.topic,
                    partition=tp.partition,
                    next_offset=next_offset,
                )
            )
        except IntegrityError:  # another worker inserted it first
            raise OffsetConflict(group, tp, start, None) from None


def _storable(text: str) -> str:
    return text.replace("\x00", "\\x00")  # PostgreSQL text cannot hold NUL characters


def _text(payload: bytes) -> str:
    return _storable(payload.decode("utf-8", "backslashreplace"))  # undecodable bytes stay visible


def dead_letter_row(record: Record, reason: str, received_at: dt.datetime) -> dict[str, Any]:
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "reason": _storable(reason),
        "payload": _text(record.value),
        "received_at": _naive_utc(received_at),
    }


def insert_dead_letters(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        conn.execute(insert(dead_letter), list(rows))
