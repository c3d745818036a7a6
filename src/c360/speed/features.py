"""Pure real-time feature updates: ``update(state, event) -> state``. No I/O, no clock.

State is kept per *source identifier* (:func:`state_key`): the message's ``anonymousId``, else
its ``userId`` for messages without a cookie. The person is resolved at read time through the
identity map (:mod:`c360.stores.views`), so identity merges need no state migration.

**Sessions** use event time (the message ``timestamp``) with a :data:`SESSION_GAP` inactivity
gap. The state holds one session, the current one, ``[session_start, session_last_event_at]``.
For an event at time ``t``:

1. no session yet: a session ``[t, t]`` starts;
2. ``t > session_last_event_at + GAP``: a new session starts at ``t`` (page views restart);
3. ``session_start - GAP <= t <= session_last_event_at + GAP``: the event belongs to the current
   session, which widens to include it: a late event up to 30 minutes before the start extends
   the session backward;
4. ``t < session_start - GAP``: a late event of an earlier session. It counts in
   ``events_total`` (and in ``user_id`` if it is the newest identity) but leaves the current
   session, ``last_event_at`` and ``last_event_type`` alone: old events never reset a session.

Known approximation: only the current session is kept, so a late event that bridges the current
session and the one before it (both within 30 minutes) cannot merge them; the current session is
extended back to the late event but misses the earlier session's page views. In event-time order
the result is exact.

**Latest values** follow event time, not arrival: ``last_event_at`` is the greatest event time,
``last_event_type`` the :attr:`~c360.sources.segment.SegmentMessage.label` of that event, and
``user_id`` the ``userId`` of the newest message that carries one (identify, alias, or any other;
``user_id_at`` remembers its time). Ties go to the later arrival.

**Duplicates**: a message whose ``messageId`` is among the identifier's last
:data:`DEDUP_WINDOW` ids is dropped: :func:`update` returns the very same state object. Segment
clients retry whole batches soon after a failure, so a short per-identifier window catches them;
a duplicate arriving more than :data:`DEDUP_WINDOW` messages later is counted again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from c360.sources.segment import SegmentMessage

SESSION_GAP = dt.timedelta(minutes=30)
DEDUP_WINDOW = 32
MAX_EVENT_TYPE = 64  # realtime_state.last_event_type
ANONYMOUS_ID = "anonymous_id"
USER_ID = "user_id"

StateKey = tuple[str, str]  # (id_type, id_value), the realtime_state primary key


def state_key(event: SegmentMessage) -> StateKey:
    """Whose state an event updates: its anonymousId, else its userId."""
    if event.anonymous_id is not None:
        return ANONYMOUS_ID, event.anonymous_id
    if event.user_id is None:  # decode() guarantees one of the two
        raise ValueError(f"message {event.message_id!r} has neither anonymousId nor userId")
    return USER_ID, event.user_id


@dataclass(frozen=True, slots=True)
class RealtimeState:
    """One ``realtime_state`` row. Times are aware UTC datetimes."""

    id_type: str
    id_value: str
    user_id: str | None = None
    user_id_at: dt.datetime | None = None
    session_start: dt.datetime | None = None
    session_last_event_at: dt.datetime | None = None
    current_session_page_views: int = 0
    last_event_at: dt.datetime | None = None
    last_event_type: str | None = None
    events_total: int = 0
    recent_message_ids: tuple[str, ...] = ()

    @classmethod
    def empty(cls, key: StateKey) -> RealtimeState:
        return cls(id_type=key[0], id_value=key[1])


def update(state: RealtimeState, event: SegmentMessage) -> RealtimeState:
    """The state after ``event`` (see the module docstring for the rules)."""
    if event.message_id in state.recent_message_ids:
        return state
    t = event.timestamp
    page = 1 if event.type == "page" else 0
    changes: dict[str, object] = {
        "events_total": state.events_total + 1,
        "recent_message_ids": (*state.recent_message_ids, event.message_id)[-DEDUP_WINDOW:],
    }

    start, last = state.session_start, state.session_last_event_at
    if start is None or last is None or t > last + SESSION_GAP:  # rules 1 and 2
        changes |= {
            "session_start": t,
            "session_last_event_at": t,
            "current_session_page_views": page,
        }
    elif t >= start - SESSION_GAP:  # rule 3
        changes |= {
            "session_start": min(start, t),
            "session_last_event_at": max(last, t),
            "current_session_page_views": state.current_session_page_views + page,
        }
    # else rule 4: an event of an earlier session leaves the current one alone

    if state.last_event_at is None or t >= state.last_event_at:
        changes |= {"last_event_at": t, "last_event_type": event.label[:MAX_EVENT_TYPE]}
    if event.user_id is not None and (state.user_id_at is None or t >= state.user_id_at):
        changes |= {"user_id": event.user_id, "user_id_at": t}
    return replace(state, **changes)  # type: ignore[arg-type]
