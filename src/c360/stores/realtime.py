"""The speed layer in the serving store: state rows, orders, links, dead letters and offsets.

A micro-batch (:class:`MicroBatch`: the changed states, the orders and links it found, its
dead letters and the offset moves of its partitions) is bound outside any transaction
(:func:`prepare`, on the worker's thread while the previous batch commits) and committed in
**one transaction** (:func:`commit`): claim the offsets (compare-and-set), upsert the states,
insert the orders (an order id already stored keeps its row), upsert the identity links
(newest wins), insert the dead letters. Why that order gives exactly-once is written in
:mod:`c360.pipeline.stream_worker`.

Rows go in multi-row ``INSERT … ON CONFLICT`` statements built once per dialect, table, conflict
rule and row count (:func:`upserts`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import orjson
from sqlalchemy import Column, Connection, DateTime, Dialect, Table, insert, select, update
from sqlalchemy.dialects.postgresql import Insert as PostgresInsert
from sqlalchemy.dialects.sqlite import Insert as SQLiteInsert
from sqlalchemy.exc import IntegrityError

from c360.contracts import reasons
from c360.contracts.log import TopicPartition
from c360.contracts.serving import (
    RESOLVED,
    dead_letter,
    identity_stitch,
    realtime_order,
    realtime_state,
    realtime_support,
    stream_offsets,
)
from c360.contracts.times import NAIVE_EPOCH, epoch_us, naive_utc, naive_utc_now, utc
from c360.errors import TransientError
from c360.identity.stitching import StitchLink
from c360.speed.features import NO_LINES, Order, RealtimeState, StateKey
from c360.speed.support import SupportState, empty_support_state
from c360.stores import erasure, resolution
from c360.stores.stitching import link_row, newest_link_wins

if TYPE_CHECKING:
    from c360.stores.base import ServingStore, StoreDialect

_IN_CHUNK = 500

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


class SuppressionChanged(TransientError):
    """The suppression list grew (an erasure) after this micro-batch was computed: it may hold
    an erased person's events, so it must not commit; recompute it against the new list."""

    def __init__(self, expected: int, found: int) -> None:
        super().__init__(
            f"the suppression list changed since this micro-batch was computed (generation "
            f"{expected}, now {found}: an erasure): recomputing it against the new list"
        )


def _optional_naive(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else naive_utc(value)


def _optional_epoch_us(value: dt.datetime | None) -> int | None:
    """Epoch microseconds of a stored (naive UTC) datetime."""
    return None if value is None else epoch_us(value)


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


def state_row(state: RealtimeState) -> dict[str, Any]:
    """The ``realtime_state`` row of a state for :func:`write_rows`: the nested values as JSON,
    the times as they are (epoch microseconds)."""
    row: dict[str, Any] = dict(state)
    row["recent_message_ids"] = _json(state["recent_message_ids"])
    row["recent_event_times"] = _json(state["recent_event_times"])
    row["recent_sessions"] = _json(state["recent_sessions"])
    lines = state["cart_lines"]
    row["cart_lines"] = _json(dict(lines)) if lines else None
    return row


def state_from_row(row: Mapping[str, Any]) -> RealtimeState:
    recent, times, lines = row["recent_message_ids"], row["recent_event_times"], row["cart_lines"]
    sessions = row["recent_sessions"]
    return {
        "id_type": row["id_type"],
        "id_value": row["id_value"],
        "user_id": row["user_id"],
        "user_id_at": _optional_epoch_us(row["user_id_at"]),
        "session_start": _optional_epoch_us(row["session_start"]),
        "session_last_event_at": _optional_epoch_us(row["session_last_event_at"]),
        "current_session_page_views": int(row["current_session_page_views"] or 0),
        "current_session_product_views": int(row["current_session_product_views"] or 0),
        "last_event_at": _optional_epoch_us(row["last_event_at"]),
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
        "cart_since": _optional_epoch_us(row["cart_since"]),
        "cart_updated_at": _optional_epoch_us(row["cart_updated_at"]),
        "recent_sessions": tuple(map(tuple, orjson.loads(sessions))) if sessions else (),
    }


def support_row(state: SupportState) -> dict[str, Any]:
    """The ``realtime_support`` row of a support state."""
    row: dict[str, Any] = dict(state)
    row["last_event_at"] = _optional_naive(state["last_event_at"])
    row["tickets"] = _json(dict(state["tickets"]))
    row["recent_event_ids"] = _json(state["recent_event_ids"])
    row["recent_ticket_events"] = _json(state["recent_ticket_events"])
    return row


def support_from_row(row: Mapping[str, Any]) -> SupportState:
    state = empty_support_state((row["id_type"], row["id_value"]))
    state["open_ticket_count"] = int(row["open_ticket_count"] or 0)
    state["events_total"] = int(row["events_total"] or 0)
    last = row["last_event_at"]
    state["last_event_at"] = None if last is None else utc(last)
    tickets, recent = row["tickets"], row["recent_event_ids"]
    if tickets:
        state["tickets"] = {k: (str(s), int(at)) for k, (s, at) in orjson.loads(tickets).items()}
    state["recent_event_ids"] = tuple(orjson.loads(recent)) if recent else ()
    events = row["recent_ticket_events"]
    state["recent_ticket_events"] = tuple(map(tuple, orjson.loads(events))) if events else ()
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


MAX_ROWS_PER_STATEMENT = 512  # 512 x 20 columns: far below SQLite's 32,766 parameters


@dataclass(frozen=True)
class Write:
    """One multi-row INSERT ready to run: its SQL and flat, converted parameters.

    Built outside the transaction (the worker builds them while the previous batch commits);
    :func:`execute` runs them.
    """

    sql: str
    params: tuple[Any, ...]
    rows: int


@dataclass(frozen=True)
class _Template:
    """``INSERT … VALUES (…), (…), … ON CONFLICT …`` compiled for a dialect, with the column order
    of one row and each column's conversion (see :func:`_conversion`)."""

    sql: str
    names: tuple[str, ...]
    conversions: tuple[tuple[int, Callable[[Any], Any]], ...]  # (position in a row, conversion)


# What an upsert does with a row whose key is stored: replace its other columns, keep the stored
# row, or (identity links) replace it only with a newer link.
REPLACE, KEEP, NEWEST_LINK = "replace", "keep", "newest link"

_TEMPLATES: dict[tuple[str, str, str, int], _Template] = {}
_TIME_PROBES = (
    dt.datetime(2025, 3, 1, 10, 0, 0, 250_000),
    dt.datetime(2025, 12, 31, 23, 59, 59),
    dt.datetime(1970, 1, 1),
    dt.datetime(1, 1, 1),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999_999),
)
_TEXTS: dict[int, str] = {}  # epoch microseconds -> SQLite datetime text, recently converted
_MAX_TEXTS = 1 << 16


def _iso_text(value: dt.datetime) -> str:
    return value.isoformat(" ", "microseconds")


def _datetime(value: dt.datetime | int | None) -> dt.datetime | None:
    """A stored time: a naive UTC datetime as is, epoch microseconds converted."""
    if isinstance(value, int):
        return NAIVE_EPOCH + dt.timedelta(0, 0, value)
    return value


def _time_text(value: dt.datetime | int | None) -> str | None:
    """A stored time as the text SQLite holds (see :func:`_conversion`)."""
    if isinstance(value, int):
        text = _TEXTS.get(value)
        if text is None:
            if len(_TEXTS) >= _MAX_TEXTS:
                _TEXTS.clear()
            text = _TEXTS[value] = _iso_text(NAIVE_EPOCH + dt.timedelta(0, 0, value))
        return text
    return None if value is None else _iso_text(value)


def _conversion(type_: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    """How a value of a column is bound: the type's bind processor for ``dialect``.

    A datetime column takes naive UTC datetimes or epoch microseconds (ints, as the speed
    layer's states hold times). Where the dialect stores datetimes as text (SQLite), the text
    comes from ``isoformat`` in C — if it is the very text the type's own processor writes
    (checked on sample times) — and each distinct time is converted once.
    """
    processor: Callable[[Any], Any] | None = type_.dialect_impl(dialect).bind_processor(dialect)
    if not isinstance(type_, DateTime):
        return processor
    if processor is None:
        return _datetime
    if processor(None) is None and all(processor(t) == _iso_text(t) for t in _TIME_PROBES):
        return _time_text
    return lambda value: processor(_datetime(value))


def _positional(dialect: Dialect) -> Dialect:
    """``dialect``, or a copy that binds positionally (``%s``) when it binds by name: one flat
    tuple of parameters per statement, whatever its row count."""
    if dialect.positional:
        return dialect
    clone: Dialect = type(dialect)(paramstyle="format")  # type: ignore[call-arg]
    return clone


def _template(store: ServingStore, table: Table, rule: str, rows: int) -> _Template:
    """The upsert of ``rows`` rows under a conflict ``rule``, built once.

    SQLAlchemy compiles the one-row statement; ``rows`` rows repeat its VALUES group (compiling
    a 512-row statement costs 0.2 s, a sizeable share of a worker's first minute).
    """
    cache_key = (store.engine.dialect.name, table.name, rule, rows)
    found = _TEMPLATES.get(cache_key)
    if found is None:
        single = _single_row_template(store, table, rule)
        head, group, tail = _values_group(single.sql, len(single.names))
        sql = f"{head}{', '.join([group] * rows)}{tail}"
        found = _TEMPLATES[cache_key] = _Template(sql, single.names, single.conversions)
    return found


def written_columns(table: Table) -> list[Column[Any]]:
    """The columns a writer sets: all but the person a row is resolved to
    (:mod:`c360.stores.resolution` sets that)."""
    return [column for column in table.columns if not column.info.get(RESOLVED)]


def _upsert(
    store: ServingStore, table: Table, rule: str, rows: int = 1
) -> PostgresInsert | SQLiteInsert:
    """The upsert of ``rows`` rows of ``table`` (every written column bound once per row, in
    column order) under ``rule``."""
    names = [column.name for column in written_columns(table)]
    keys = [column.name for column in table.primary_key.columns]
    values = dict.fromkeys(names)
    insert_ = store.dialect.insert(table).values([values] * rows if rows > 1 else values)
    if rule == REPLACE:
        updates = {name: insert_.excluded[name] for name in names if name not in keys}
        return insert_.on_conflict_do_update(index_elements=keys, set_=updates)
    if rule == KEEP:
        return insert_.on_conflict_do_nothing(index_elements=keys)
    if rule == NEWEST_LINK and table is identity_stitch:
        return newest_link_wins(insert_)
    raise ValueError(f"no upsert rule {rule!r} for {table.name}")


def _single_row_template(store: ServingStore, table: Table, rule: str) -> _Template:
    dialect = store.engine.dialect
    names = tuple(column.name for column in written_columns(table))
    compiled = _upsert(store, table, rule).compile(dialect=_positional(dialect))
    if list(compiled.positiontup or ()) != list(names):  # the parameters follow column order
        raise RuntimeError(f"unexpected parameter order compiling the upsert of {table.name}")
    conversions = tuple(
        (i, convert)
        for i, name in enumerate(names)
        if (convert := _conversion(table.c[name].type, dialect)) is not None
    )
    return _Template(compiled.string, names, conversions)


def _values_group(sql: str, columns: int) -> tuple[str, str, str]:
    """``sql`` split around its one ``VALUES (…)`` group: ``columns`` placeholders, each maybe
    with a cast (PostgreSQL's ``%s::NUMERIC(12, 2)``), so the group ends at its matching
    parenthesis."""
    marker = " VALUES ("
    start = sql.index(marker) + len(marker) - 1
    depth, end = 0, start
    for end in range(start, len(sql)):
        depth += {"(": 1, ")": -1}.get(sql[end], 0)
        if depth == 0:
            break
    group = sql[start : end + 1]
    placeholders = group.count("?") + group.count("%s")
    if sql.count(marker) != 1 or depth != 0 or placeholders != columns:
        raise RuntimeError(f"unexpected VALUES clause in {sql[:200]!r}")
    return sql[:start], group, sql[end + 1 :]


def upserts(
    store: ServingStore, table: Table, rows: Sequence[Mapping[str, Any]], *, rule: str = REPLACE
) -> list[Write]:
    """The statements that upsert complete ``rows`` of ``table`` by its primary key under a
    conflict ``rule`` (:data:`REPLACE`, :data:`KEEP`, :data:`NEWEST_LINK`), at most
    :data:`MAX_ROWS_PER_STATEMENT` rows each.

    Statement sizes are powers of two, so few distinct statements are compiled and cached.
    Values are converted with the columns' own bind processors (datetime columns take naive
    UTC datetimes or epoch microseconds). The keys of ``rows`` must be distinct.
    """
    writes: list[Write] = []
    start = 0
    while start < len(rows):
        size = min(MAX_ROWS_PER_STATEMENT, 1 << ((len(rows) - start).bit_length() - 1))
        template = _template(store, table, rule, size)
        values_of = itemgetter(*template.names)
        conversions = template.conversions
        params: list[Any] = []
        for row in rows[start : start + size]:
            values = list(values_of(row))
            for i, convert in conversions:
                values[i] = convert(values[i])
            params += values
        writes.append(Write(template.sql, tuple(params), size))
        start += size
    return writes


def execute(conn: Connection, writes: Iterable[Write]) -> int:
    """Run ``writes`` in the caller's transaction; how many rows they inserted or updated."""
    return sum(conn.exec_driver_sql(write.sql, write.params).rowcount for write in writes)


class DeadLetter(NamedTuple):
    """A log record that could not be used, and why: the reason's text and its code
    (:data:`c360.contracts.reasons.CODES`)."""

    topic: str
    partition: int
    offset: int
    payload: bytes
    reason: str
    code: str = reasons.OTHER


@dataclass(frozen=True)
class MicroBatch:
    """What one speed-layer micro-batch changed, to commit in one transaction.

    ``moves`` holds each read partition's (first offset, next offset); ``states`` and
    ``support`` the changed states (keys distinct); ``orders`` the orders seen (ids distinct);
    ``links`` the identity links made (one per cookie). ``unresolved`` names the states whose
    person may have changed other than through a link — new rows, a changed ``user_id`` —
    when the writer knows them (None: all of ``states`` are resolved again).
    """

    moves: Mapping[TopicPartition, tuple[int, int]]
    states: Sequence[RealtimeState] = ()
    support: Sequence[SupportState] = ()
    orders: Sequence[Order] = ()
    links: Sequence[StitchLink] = ()
    dead_letters: Sequence[DeadLetter] = ()
    unresolved: Sequence[StateKey] | None = None
    suppression: int | None = None  # the suppression list's generation it was computed with


@dataclass(frozen=True)
class PreparedBatch:
    """A :class:`MicroBatch` bound into statements (see :func:`prepare`)."""

    moves: Mapping[TopicPartition, tuple[int, int]]
    state_writes: list[Write]
    order_writes: list[Write]
    link_writes: list[Write]
    dead_letters: Sequence[DeadLetter]
    keys: tuple[StateKey, ...] = ()  # the clickstream identifiers whose state changed
    unresolved: tuple[StateKey, ...] = ()  # those whose person may have changed
    support_keys: tuple[StateKey, ...] = ()  # the Zendesk users whose state changed
    order_ids: tuple[str, ...] = ()
    cookies: tuple[str, ...] = ()  # the cookies linked
    suppression: int | None = None  # the suppression list's generation; None: not checked


def prepare(store: ServingStore, batch: MicroBatch) -> PreparedBatch:
    """Bind ``batch``'s rows into multi-row statements, outside any transaction."""
    state_rows = [state_row(state) for state in batch.states]
    support_rows = [support_row(state) for state in batch.support]
    orders = [order._asdict() | {"order_at": naive_utc(order.order_at)} for order in batch.orders]
    keys = tuple((state["id_type"], state["id_value"]) for state in batch.states)
    return PreparedBatch(
        moves=batch.moves,
        state_writes=[
            *upserts(store, realtime_state, state_rows),
            *upserts(store, realtime_support, support_rows),
        ],
        order_writes=upserts(store, realtime_order, orders, rule=KEEP),
        link_writes=upserts(
            store, identity_stitch, [link_row(link) for link in batch.links], rule=NEWEST_LINK
        ),
        dead_letters=batch.dead_letters,
        keys=keys,
        unresolved=keys if batch.unresolved is None else tuple(batch.unresolved),
        support_keys=tuple((state["id_type"], state["id_value"]) for state in batch.support),
        order_ids=tuple(order["order_id"] for order in orders),
        cookies=tuple(dict.fromkeys(link.anonymous_id for link in batch.links)),
        suppression=batch.suppression,
    )


def commit(conn: Connection, dialect: StoreDialect, group: str, prepared: PreparedBatch) -> int:
    """Write a prepared batch in the caller's transaction, offsets first, then resolve the
    rows it wrote to their persons (:mod:`c360.stores.resolution`); the number of orders
    inserted (order ids not stored before). Raises :class:`OffsetConflict` when another
    consumer moved one of the partitions."""
    claim_offsets(conn, group, prepared.moves)
    if prepared.suppression is not None:
        check_suppression(conn, prepared.suppression)
    execute(conn, prepared.state_writes)
    orders = execute(conn, prepared.order_writes)
    execute(conn, prepared.link_writes)
    resolution.resolve_batch(
        conn,
        dialect,
        states=prepared.unresolved,
        support=prepared.support_keys,
        orders=prepared.order_ids,
        cookies=prepared.cookies,
    )
    insert_dead_letters(conn, prepared.dead_letters)
    return orders


def check_suppression(conn: Connection, expected: int) -> None:
    """Raise :class:`SuppressionChanged` unless the suppression list is still at the
    generation the batch was computed with. Read inside the batch's transaction after the
    offsets' claim (SQLite: under the write lock) and the publish fence (PostgreSQL), which the
    erasure's deletes take exclusively: a batch that read an older list either commits before
    those deletes (which then remove what it wrote) or sees the newer generation here."""
    found = erasure.generation(conn)
    if found != expected:
        raise SuppressionChanged(expected, found)


def insert_dead_letters(conn: Connection, letters: Sequence[DeadLetter]) -> None:
    if letters:
        received_at = naive_utc_now()
        conn.execute(
            insert(dead_letter), [dead_letter_row(letter, received_at) for letter in letters]
        )


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


def dead_letter_row(letter: DeadLetter, received_at: dt.datetime) -> dict[str, Any]:
    """The ``dead_letter`` row of a record (its topic, partition, offset, payload and reason)."""
    return {
        "topic": letter.topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "reason": _storable(letter.reason),
        "reason_code": letter.code,
        "payload": _text(letter.payload),
        "received_at": naive_utc(received_at),
    }
