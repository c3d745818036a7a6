"""How the speed layer reads and writes the serving store: state rows, offsets, dead letters.

All functions take the :class:`~sqlalchemy.Connection` of the caller's transaction; the commit
order and why it gives exactly-once is in :mod:`c360.speed.worker`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from c360.contracts.serving import dead_letter, realtime_state, stream_offsets
from c360.errors import TransientError
from c360.logs import Record, TopicPartition
from c360.speed.features import RealtimeState, StateKey

STATE_KEYS = ("id_type", "id_value")
_IN_CHUNK = 500


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
    return None if value is None else value.astimezone(dt.UTC).replace(tzinfo=None)


def _aware_utc(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else value.replace(tzinfo=dt.UTC)


def state_row(state: RealtimeState) -> dict[str, Any]:
    """The ``realtime_state`` row of a state (naive UTC times, as the table stores them)."""
    return {
        "id_type": state.id_type,
        "id_value": state.id_value,
        "user_id": state.user_id,
        "user_id_at": _naive_utc(state.user_id_at),
        "session_start": _naive_utc(state.session_start),
        "session_last_event_at": _naive_utc(state.session_last_event_at),
        "current_session_page_views": state.current_session_page_views,
        "last_event_at": _naive_utc(state.last_event_at),
        "last_event_type": state.last_event_type,
        "events_total": state.events_total,
        "recent_message_ids": orjson.dumps(list(state.recent_message_ids)).decode(),
    }


def state_from_row(row: Mapping[str, Any]) -> RealtimeState:
    recent = row["recent_message_ids"]
    return RealtimeState(
        id_type=row["id_type"],
        id_value=row["id_value"],
        user_id=row["user_id"],
        user_id_at=_aware_utc(row["user_id_at"]),
        session_start=_aware_utc(row["session_start"]),
        session_last_event_at=_aware_utc(row["session_last_event_at"]),
        current_session_page_views=int(row["current_session_page_views"]),
        last_event_at=_aware_utc(row["last_event_at"]),
        last_event_type=row["last_event_type"],
        events_total=int(row["events_total"]),
        recent_message_ids=tuple(orjson.loads(recent)) if recent else (),
    )


def load_states(conn: Connection, keys: Iterable[StateKey]) -> dict[StateKey, RealtimeState]:
    """The stored states of ``keys`` (absent keys have none yet)."""
    by_type: dict[str, list[str]] = {}
    for id_type, id_value in set(keys):
        by_type.setdefault(id_type, []).append(id_value)
    states: dict[StateKey, RealtimeState] = {}
    for id_type, values in by_type.items():
        for i in range(0, len(values), _IN_CHUNK):
            query = select(realtime_state).where(
                realtime_state.c.id_type == id_type,
                realtime_state.c.id_value.in_(values[i : i + _IN_CHUNK]),
            )
            for row in conn.execute(query):
                state = state_from_row(dict(row._mapping))
                states[state.id_type, state.id_value] = state
    return states


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
