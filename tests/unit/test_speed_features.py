"""The pure real-time feature updates, on hand-made events: no log, no database."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections.abc import Iterable
from typing import Any

import pytest

from c360.contracts.serving import realtime_state
from c360.sources.segment import SegmentMessage, validate
from c360.speed.features import (
    DEDUP_WINDOW,
    MAX_EVENT_TYPE,
    RealtimeState,
    state_key,
    update,
)

T0 = dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.UTC)
_ids = itertools.count()


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def ev(kind: str, minutes: float, *, mid: str | None = None, **fields: Any) -> SegmentMessage:
    """A hand-made message at T0 + minutes, for anonymousId a1 unless told otherwise."""
    message = {
        "type": kind,
        "messageId": mid or f"m{next(_ids)}",
        "timestamp": at(minutes).isoformat(),
        "anonymousId": "a1",
        **fields,
    }
    if kind == "track":
        message.setdefault("event", "Product Viewed")
    return validate({k: v for k, v in message.items() if v is not None})


def fold(events: Iterable[SegmentMessage]) -> RealtimeState:
    state = RealtimeState.empty(("anonymous_id", "a1"))
    for event in events:
        state = update(state, event)
    return state


def session(state: RealtimeState) -> tuple[Any, ...]:
    return (state.session_start, state.session_last_event_at, state.current_session_page_views)


def test_the_first_event_opens_a_session() -> None:
    state = fold([ev("page", 0)])
    assert state == RealtimeState(
        id_type="anonymous_id",
        id_value="a1",
        session_start=at(0),
        session_last_event_at=at(0),
        current_session_page_views=1,
        last_event_at=at(0),
        last_event_type="page",
        events_total=1,
        recent_message_ids=state.recent_message_ids,
    )


def test_the_input_state_is_not_changed() -> None:
    before = fold([ev("page", 0)])
    after = update(before, ev("page", 5))
    assert (before.events_total, after.events_total) == (1, 2)


def test_activity_within_30_minutes_continues_the_session() -> None:
    state = fold([ev("page", 0), ev("track", 20), ev("page", 45), ev("page", 75)])
    assert session(state) == (at(0), at(75), 3)  # page views only; gaps of 20, 25, 30 min
    assert (state.events_total, state.last_event_type) == (4, "page")


def test_more_than_30_minutes_of_inactivity_starts_a_new_session() -> None:
    state = fold([ev("page", 0), ev("page", 10), ev("track", 40.01)])
    assert session(state) == (at(40.01), at(40.01), 0)
    state = update(state, ev("page", 41))
    assert session(state) == (at(40.01), at(41), 1)
    assert state.events_total == 4


def test_a_late_event_just_before_the_start_extends_the_session_backward() -> None:
    state = fold([ev("page", 60), ev("track", 70, event="Cart Viewed"), ev("page", 35)])
    assert session(state) == (at(35), at(70), 2)
    assert (state.last_event_at, state.last_event_type) == (at(70), "Cart Viewed")


def test_a_much_older_late_event_does_not_touch_the_current_session() -> None:
    current = fold([ev("page", 120), ev("page", 125)])
    state = update(current, ev("page", 10))  # 110 minutes before the session start
    assert session(state) == session(current) == (at(120), at(125), 2)
    assert (state.last_event_at, state.last_event_type) == (at(125), "page")
    assert state.events_total == 3


def test_a_late_event_bridging_two_sessions_is_a_known_approximation() -> None:
    state = fold([ev("page", 0), ev("page", 50), ev("page", 25)])  # 25 bridges 0 and 50
    # Known approximation (documented): only the current session is kept, so the session at 0
    # is not merged back in; in event-time order the three form one session of 3 page views.
    assert session(state) == (at(25), at(50), 2)
    assert session(fold([ev("page", 0), ev("page", 25), ev("page", 50)])) == (at(0), at(50), 3)


def test_within_one_session_the_arrival_order_does_not_matter() -> None:
    events = [ev("page", 0), ev("track", 7), ev("page", 12), ev("identify", 20, userId="42")]
    events.append(ev("page", 29))
    results = {
        (session(s), s.last_event_at, s.last_event_type, s.user_id, s.events_total)
        for s in (fold(order) for order in itertools.permutations(events))
    }
    assert results == {((at(0), at(29), 3), at(29), "page", "42", 5)}


def test_last_event_type_is_the_track_name_of_the_latest_event() -> None:
    state = fold([ev("page", 0), ev("track", 5, event="Order Completed")])
    assert (state.last_event_at, state.last_event_type) == (at(5), "Order Completed")
    state = update(state, ev("track", 3, event="Product Viewed"))  # late: not the latest
    assert state.last_event_type == "Order Completed"
    state = update(state, ev("identify", 5, userId="7"))  # a tie goes to the later arrival
    assert state.last_event_type == "identify"
    long_name = fold([ev("track", 0, event="x" * 100)]).last_event_type
    assert long_name == "x" * MAX_EVENT_TYPE


@pytest.mark.parametrize(
    "identifying",
    [
        {"kind": "identify", "userId": "42"},
        {"kind": "alias", "previousId": "a1", "userId": "42"},
        {"kind": "track", "userId": "42"},
        {"kind": "page", "userId": 42},
    ],
    ids=["identify", "alias", "track", "page"],
)
def test_any_message_with_a_user_id_stitches_the_cookie(identifying: dict[str, Any]) -> None:
    fields = dict(identifying)
    state = fold([ev("page", 0), ev(fields.pop("kind"), 1, **fields), ev("page", 2)])
    assert (state.user_id, state.user_id_at) == ("42", at(1))


def test_a_late_identify_does_not_override_a_newer_one() -> None:
    state = fold([ev("identify", 10, userId="new"), ev("identify", 5, userId="old")])
    assert (state.user_id, state.user_id_at) == ("new", at(10))
    state = update(state, ev("track", 11, userId="newest"))
    assert state.user_id == "newest"


def test_a_duplicate_message_id_is_dropped() -> None:
    first = fold([ev("page", 0, mid="dup"), ev("page", 1)])
    again = update(first, ev("page", 2, mid="dup"))
    assert again is first


def test_the_duplicate_window_is_bounded() -> None:
    state = fold([ev("page", 0, mid="old")] + [ev("track", i / 10) for i in range(DEDUP_WINDOW)])
    assert len(state.recent_message_ids) == DEDUP_WINDOW
    assert "old" not in state.recent_message_ids
    assert update(state, ev("page", 4, mid="old")).events_total == DEDUP_WINDOW + 2


def test_state_key_is_the_anonymous_id_else_the_user_id() -> None:
    assert state_key(ev("page", 0, userId="42")) == ("anonymous_id", "a1")
    assert state_key(ev("page", 0, anonymousId=None, userId="42")) == ("user_id", "42")


def test_the_state_matches_the_realtime_state_table() -> None:
    fields = {f.name for f in dataclasses.fields(RealtimeState)}
    assert fields == {c.name for c in realtime_state.columns}
    assert realtime_state.c.last_event_type.type.length == MAX_EVENT_TYPE
