"""The pure real-time feature updates, on hand-made events: no log, no database."""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
import pytest

from c360.contracts.segment import InvalidMessage, money_problem, validate
from c360.contracts.serving import realtime_order, realtime_state
from c360.contracts.times import epoch_ms, epoch_us
from c360.speed import features
from c360.speed.events import ClickEvent
from c360.speed.features import (
    DEDUP_WINDOW,
    HOUR_MS,
    MAX_CART_ID,
    MAX_CART_LINES,
    MAX_EVENT_TYPE,
    MAX_ORDER_ID,
    MAX_RECENT_EVENTS,
    MAX_RECENT_SESSIONS,
    Order,
    RealtimeState,
    empty_state,
    events_in_last_hour,
    order_of,
    state_key,
    update,
)
from c360.stores.realtime import written_columns
from c360.stores.views import LAST_HOUR_MS

PRODUCT_VIEWED_NAME = features.PRODUCT_VIEWED

T0 = dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.UTC)
_ids = itertools.count()


def when(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def at(minutes: float) -> int:
    """T0 + minutes in epoch microseconds, as states hold times."""
    return epoch_us(when(minutes))


def ms(minutes: float) -> int:
    return epoch_ms(when(minutes))


def ev(kind: str, minutes: float, *, mid: str | None = None, **fields: Any) -> ClickEvent:
    """A hand-made message at T0 + minutes, for anonymousId a1 unless told otherwise."""
    message = {
        "type": kind,
        "messageId": mid or f"m{next(_ids)}",
        "timestamp": when(minutes).isoformat(),
        "anonymousId": "a1",
        **fields,
    }
    if kind == "track":
        message.setdefault("event", "Product Viewed")
    return ClickEvent.of(validate({k: v for k, v in message.items() if v is not None}))


def track(name: str, minutes: float, /, **properties: Any) -> ClickEvent:
    return ev("track", minutes, event=name, properties=properties)


def unchecked_track(name: str, minutes: float, /, **properties: Any) -> ClickEvent:
    """A track event as :func:`track`, but also with money the decoders refuse (asserted here):
    the updates stay lenient on their own, whatever a caller hands them."""
    if money_problem(name, properties) is not None:
        with pytest.raises(InvalidMessage, match="must be an amount from 0"):
            track(name, minutes, **properties)
    return msgspec.structs.replace(
        ev("track", minutes, event="Product Viewed", properties=properties), label=name
    )


def fold(events: Iterable[ClickEvent], state: RealtimeState | None = None) -> RealtimeState:
    state = state or empty_state(("anonymous_id", "a1"))
    for event in events:
        state = update(state, event)
    return state


def snapshot(state: RealtimeState) -> dict[str, Any]:
    """A deep copy (nested values are tuples or mappings of tuples)."""
    return {k: dict(v) if isinstance(v, Mapping) else v for k, v in state.items()}


def session(state: RealtimeState) -> tuple[Any, ...]:
    return (
        state["session_start"],
        state["session_last_event_at"],
        state["current_session_page_views"],
    )


def cart(state: RealtimeState) -> tuple[Any, ...]:
    return state["cart_id"], dict(state["cart_lines"]), state["cart_items"], state["cart_value"]


# -- sessions, latest values, identity ---------------------------------------------------------


def test_the_first_event_opens_a_session() -> None:
    state = fold([ev("page", 0)])
    assert state == empty_state(("anonymous_id", "a1")) | {
        "session_start": at(0),
        "session_last_event_at": at(0),
        "current_session_page_views": 1,
        "last_event_at": at(0),
        "last_event_type": "page",
        "events_total": 1,
        "recent_message_ids": state["recent_message_ids"],
        "recent_event_times": (ms(0),),
    }


def test_the_input_state_is_never_changed() -> None:
    rng = random.Random(7)
    names = ["Product Viewed", "Product Added", "Product Removed", "Order Completed"]
    events = [ev("page", rng.uniform(0, 300)) for _ in range(30)]
    events += [
        track(rng.choice(names), rng.uniform(0, 300), product_id=str(rng.randint(1, 4)), price=2)
        for _ in range(60)
    ]
    rng.shuffle(events)
    state = empty_state(("anonymous_id", "a1"))
    for event in events:
        before = snapshot(state)
        after = update(state, event)
        assert snapshot(state) == before
        assert after is not state
        state = after


def _random_events(rng: random.Random, count: int) -> list[ClickEvent]:
    """A messy stream of one identifier: late events, retries, identities, carts, orders."""
    names = ["Product Viewed", "Product Added", "Product Removed", "Order Completed", "Search"]
    events: list[ClickEvent] = []
    for _ in range(count):
        minutes = rng.uniform(0, 400)
        roll = rng.random()
        if events and roll < 0.1:  # a retry of an earlier message
            events.append(rng.choice(events))
        elif roll < 0.4:
            events.append(ev("page", minutes))
        elif roll < 0.5:
            events.append(ev("identify", minutes, userId=rng.choice(["u1", "u2", "u3"])))
        else:
            properties = {
                "cart_id": rng.choice([None, "c1", "c2"]),
                "product_id": str(rng.randint(1, 4)),
                "price": rng.choice([1, 2.5, None]),
                "quantity": rng.randint(1, 3),
                "order_id": rng.choice(["o1", "o2", str(rng.randint(3, 9))]),
                "total": 12.5,
            }
            name = rng.choice(names)
            events.append(track(name, minutes, **{k: v for k, v in properties.items() if v}))
    return events


def _one_by_one(state: RealtimeState, events: list[ClickEvent]) -> tuple[Any, ...]:
    """What update and order_of give event by event: the reference for fold."""
    applied, orders = 0, []
    for event in events:
        new = update(state, event)
        if new is not state:
            applied += 1
            order = order_of(event, ("anonymous_id", "a1"), new["user_id"])
            if order is not None:
                orders.append(order)
        state = new
    return snapshot(state), applied, orders


@pytest.mark.parametrize("seed", range(40))
def test_folding_a_batch_ends_where_updating_event_by_event_ends(seed: int) -> None:
    rng = random.Random(seed)
    events = _random_events(rng, rng.randint(1, 120))
    state = fold(_random_events(rng, rng.randint(0, 40)))  # some history before the batch
    before = snapshot(state)
    folded = features.fold(state, events)
    assert (snapshot(folded.state), folded.applied, folded.orders) == _one_by_one(state, events)
    assert snapshot(state) == before  # the input is never changed
    # Any split into micro-batches ends in the same state.
    cut = rng.randint(0, len(events))
    first = features.fold(state, events[:cut]).state
    assert snapshot(features.fold(first, events[cut:]).state) == snapshot(folded.state)


def test_a_batch_of_duplicates_gives_back_the_very_same_state() -> None:
    state = fold([ev("page", 0, mid="x"), ev("page", 1, mid="y")])
    folded = features.fold(state, [ev("page", 2, mid="x"), ev("page", 3, mid="y")])
    assert folded.state is state
    assert (folded.applied, folded.orders) == (0, [])
    assert features.fold(state, []).state is state


def test_activity_within_30_minutes_continues_the_session() -> None:
    state = fold([ev("page", 0), ev("track", 20), ev("page", 45), ev("page", 75)])
    assert session(state) == (at(0), at(75), 3)  # page views only; gaps of 20, 25, 30 min
    assert (state["events_total"], state["last_event_type"]) == (4, "page")


def test_more_than_30_minutes_of_inactivity_starts_a_new_session() -> None:
    state = fold([ev("page", 0), ev("page", 10), ev("track", 40.01)])
    assert session(state) == (at(40.01), at(40.01), 0)
    assert state["current_session_product_views"] == 1
    state = update(state, ev("page", 41))
    assert session(state) == (at(40.01), at(41), 1)
    assert state["events_total"] == 4


def test_product_views_count_per_session() -> None:
    state = fold(
        [
            track("Product Viewed", 0),
            ev("page", 1),
            track("Product Viewed", 2),
            track("Product Added", 3),
            ev("screen", 4),
        ]
    )
    assert (state["current_session_product_views"], state["current_session_page_views"]) == (2, 1)
    state = update(state, track("Product Viewed", 100))  # a new session
    assert (state["current_session_product_views"], state["current_session_page_views"]) == (1, 0)
    state = update(state, track("Product Viewed", 10))  # late, an earlier session: not counted
    assert state["current_session_product_views"] == 1


def test_a_late_event_just_before_the_start_extends_the_session_backward() -> None:
    state = fold([ev("page", 60), ev("track", 70, event="Cart Viewed"), ev("page", 35)])
    assert session(state) == (at(35), at(70), 2)
    assert (state["last_event_at"], state["last_event_type"]) == (at(70), "Cart Viewed")


def test_a_much_older_late_event_does_not_touch_the_current_session() -> None:
    current = fold([ev("page", 120), ev("page", 125)])
    state = update(current, ev("page", 10))  # 110 minutes before the session start
    assert session(state) == session(current) == (at(120), at(125), 2)
    assert (state["last_event_at"], state["last_event_type"]) == (at(125), "page")
    assert state["events_total"] == 3


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
        (
            session(s),
            s["current_session_product_views"],
            s["last_event_at"],
            s["last_event_type"],
            s["user_id"],
            s["events_total"],
            s["recent_event_times"],
        )
        for s in (fold(order) for order in itertools.permutations(events))
    }
    times = tuple(ms(m) for m in (0, 7, 12, 20, 29))
    assert results == {((at(0), at(29), 3), 1, at(29), "page", "42", 5, times)}


def test_last_event_type_is_the_track_name_of_the_latest_event() -> None:
    state = fold([ev("page", 0), ev("track", 5, event="Order Completed")])
    assert (state["last_event_at"], state["last_event_type"]) == (at(5), "Order Completed")
    state = update(state, ev("track", 3, event="Product Viewed"))  # late: not the latest
    assert state["last_event_type"] == "Order Completed"
    state = update(state, ev("identify", 5, userId="7"))  # a tie goes to the later arrival
    assert state["last_event_type"] == "identify"
    long_name = fold([ev("track", 0, event="x" * 100)])["last_event_type"]
    assert long_name == "x" * MAX_EVENT_TYPE
    assert fold([ev("track", 0, event="a\x00b")])["last_event_type"] == "ab"


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
    assert (state["user_id"], state["user_id_at"]) == ("42", at(1))


def test_a_late_identify_does_not_override_a_newer_one() -> None:
    state = fold([ev("identify", 10, userId="new"), ev("identify", 5, userId="old")])
    assert (state["user_id"], state["user_id_at"]) == ("new", at(10))
    state = update(state, ev("track", 11, userId="newest"))
    assert state["user_id"] == "newest"


def test_a_duplicate_message_id_is_dropped() -> None:
    first = fold([ev("page", 0, mid="dup"), ev("page", 1)])
    again = update(first, ev("page", 2, mid="dup"))
    assert again is first


def test_the_duplicate_window_is_bounded() -> None:
    state = fold([ev("page", 0, mid="old")] + [ev("track", i / 10) for i in range(DEDUP_WINDOW)])
    assert len(state["recent_message_ids"]) == DEDUP_WINDOW
    assert "old" not in state["recent_message_ids"]
    assert update(state, ev("page", 4, mid="old"))["events_total"] == DEDUP_WINDOW + 2


def test_state_key_is_the_anonymous_id_else_the_user_id() -> None:
    assert state_key(ev("page", 0, userId="42")) == ("anonymous_id", "a1")
    assert state_key(ev("page", 0, anonymousId=None, userId="42")) == ("user_id", "42")


def test_the_state_matches_the_realtime_state_table() -> None:
    assert set(RealtimeState.__annotations__) == {c.name for c in written_columns(realtime_state)}
    assert realtime_state.c.last_event_type.type.length == MAX_EVENT_TYPE
    assert realtime_state.c.cart_id.type.length == MAX_CART_ID
    assert set(Order._fields) == {c.name for c in written_columns(realtime_order)}
    assert realtime_order.c.order_id.type.length == MAX_ORDER_ID
    assert LAST_HOUR_MS == HOUR_MS


# -- ended sessions, for the timeline ----------------------------------------------------------


def test_a_session_ends_into_the_recent_sessions_when_the_next_one_starts() -> None:
    state = fold([ev("page", 0), track(PRODUCT_VIEWED_NAME, 2), ev("page", 10), ev("page", 50)])
    assert state["recent_sessions"] == ((ms(0), ms(10), 2, 1),)
    assert session(state) == (at(50), at(50), 1)  # the current one stays in the columns
    late = fold([ev("page", 45)], state)  # a late event of the current session: nothing ends
    assert late["recent_sessions"] == state["recent_sessions"]
    older = fold([ev("page", -60)], state)  # rule 4: an earlier session's event ends nothing
    assert older["recent_sessions"] == state["recent_sessions"]


def test_the_recent_sessions_are_bounded_and_oldest_first() -> None:
    state = fold([ev("page", 40 * i) for i in range(MAX_RECENT_SESSIONS + 5)])
    starts = [start for start, _, _, _ in state["recent_sessions"]]
    assert len(starts) == MAX_RECENT_SESSIONS
    # 13 sessions: 12 ended, the newest 8 of them kept (the 13th is the current one)
    assert starts == [ms(40 * i) for i in range(4, MAX_RECENT_SESSIONS + 4)]
    assert state["recent_sessions"][-1] == (ms(40 * (MAX_RECENT_SESSIONS + 3)),) * 2 + (1, 0)


# -- events in the last hour -------------------------------------------------------------------


def test_recent_event_times_keep_the_hour_up_to_the_newest_event() -> None:
    state = fold([ev("page", m) for m in (0, 10, 59, 61, 70)])
    # 0 and 10 are not after 70 - 60 = 10; 59, 61 and 70 are.
    assert state["recent_event_times"] == (ms(59), ms(61), ms(70))


def test_late_events_are_inserted_in_order_or_dropped_when_too_old() -> None:
    state = fold([ev("page", m) for m in (100, 130)])
    state = update(state, ev("page", 80))  # late, within the hour before 130
    assert state["recent_event_times"] == (ms(80), ms(100), ms(130))
    state = update(state, ev("page", 70))  # exactly 60 minutes before the newest: out
    assert state["recent_event_times"] == (ms(80), ms(100), ms(130))
    assert state["events_total"] == 4  # it still counts in the total


def test_the_read_time_count_is_relative_to_now() -> None:
    times = fold([ev("page", m) for m in (0, 20, 40, 55)])["recent_event_times"]
    assert events_in_last_hour(times, ms(55)) == 4
    assert events_in_last_hour(times, ms(60)) == 3  # 0 is exactly an hour before: out
    assert events_in_last_hour(times, ms(60) - 1) == 4
    assert events_in_last_hour(times, ms(61)) == 3
    assert events_in_last_hour(times, ms(200)) == 0
    assert events_in_last_hour(times, ms(30)) == 4  # a reader behind the events counts them all


def test_the_recent_window_is_bounded() -> None:
    state = fold([ev("page", i / 1000) for i in range(MAX_RECENT_EVENTS + 10)])
    assert len(state["recent_event_times"]) == MAX_RECENT_EVENTS
    assert state["recent_event_times"][-1] == ms((MAX_RECENT_EVENTS + 9) / 1000)


# -- cart ----------------------------------------------------------------------------------------


def test_adds_and_removes_follow_quantities_and_prices() -> None:
    state = fold(
        [
            track("Product Added", 0, cart_id="c1", product_id="p1", price=17.99, quantity=3),
            track("Product Added", 1, cart_id="c1", product_id="p2", price="5.50"),
            track("Product Added", 2, cart_id="c1", product_id="p1", price=17.99, quantity=1),
            track("Product Removed", 3, cart_id="c1", product_id="p2", quantity=1),
            track("Product Removed", 4, cart_id="c1", product_id="p1", quantity=2),
        ]
    )
    assert cart(state) == ("c1", {"p1": (2, 17.99)}, 2, 35.98)
    assert state["cart_updated_at"] == at(4)
    state = update(state, track("Product Removed", 5, cart_id="c1", product_id="p1", quantity=9))
    assert cart(state) == ("c1", {}, 0, 0.0)  # never below zero
    state = update(state, track("Product Removed", 6, cart_id="c1", product_id="nope"))
    assert state["cart_updated_at"] == at(5)  # a no-op does not touch the cart


@pytest.mark.parametrize(
    ("properties", "line"),
    [
        ({"product_id": 7, "price": 2, "quantity": 2}, ("7", (2, 2.0))),
        ({"sku": "S-1", "price": 1.5}, ("S-1", (1, 1.5))),  # default quantity 1
        ({"name": "Mug", "quantity": "2", "price": "x"}, ("Mug", (2, 0.0))),  # unknown price 0
        ({"product_id": "p", "quantity": 0, "price": -3}, ("p", (1, 0.0))),
        ({"product_id": "p", "quantity": 2.5, "price": float("nan")}, ("p", (1, 0.0))),
        ({"product_id": "p", "quantity": True}, ("p", (1, 0.0))),
        ({"product_id": "p", "quantity": 1e300}, ("p", (10_000, 0.0))),  # MAX_QUANTITY
        ({"product_id": "p\x00", "sku": "s" * 200}, ("s" * 128, (1, 0.0))),
        ({}, ("", (1, 0.0))),
    ],
)
def test_cart_properties_are_read_leniently(properties: dict[str, Any], line: Any) -> None:
    state = fold([unchecked_track("Product Added", 0, **properties)])
    assert dict(state["cart_lines"]) == dict([line])


def test_the_latest_add_sets_the_price_and_value_is_rounded_to_cents() -> None:
    state = fold(
        [
            track("Product Added", 0, product_id="p", price=0.1, quantity=1),
            track("Product Added", 1, product_id="p", price=0.2, quantity=2),
            track("Product Added", 2, product_id="p", quantity=1),  # no price: keeps 0.2
        ]
    )
    assert cart(state) == (None, {"p": (4, 0.2)}, 4, 0.8)


def test_order_completed_empties_the_cart_and_late_adds_of_it_are_ignored() -> None:
    state = fold(
        [
            track("Product Added", 0, cart_id="c1", product_id="p1", price=10),
            track("Order Completed", 5, checkout_id="c1", order_id="o1", total=10),
        ]
    )
    assert cart(state) == (None, {}, 0, 0.0)
    assert (state["cart_since"], state["cart_updated_at"]) == (at(5), at(5))
    late = update(state, track("Product Added", 3, cart_id="c1", product_id="p2", price=4))
    assert cart(late) == cart(state)
    no_id = update(state, track("Product Added", 4, product_id="p2", price=4))
    assert cart(no_id) == cart(state)
    later = update(state, track("Product Added", 6, product_id="p2", price=4))
    assert cart(later) == (None, {"p2": (1, 4.0)}, 1, 4.0)


def test_a_late_order_does_not_empty_a_newer_cart() -> None:
    state = fold(
        [
            track("Product Added", 0, cart_id="c1", product_id="p1", price=10),
            track("Order Completed", 5, order_id="o1"),
            track("Product Added", 10, cart_id="c2", product_id="p2", price=3),
        ]
    )
    again = update(state, track("Order Completed", 2, order_id="o0"))
    assert cart(again) == ("c2", {"p2": (1, 3.0)}, 1, 3.0)


def test_a_new_cart_id_starts_a_new_cart_and_the_old_ones_late_events_are_ignored() -> None:
    state = fold(
        [
            track("Product Added", 0, cart_id="c1", product_id="p1", price=10),
            track("Product Added", 60, cart_id="c2", product_id="p2", price=3),
        ]
    )
    assert cart(state) == ("c2", {"p2": (1, 3.0)}, 1, 3.0)
    assert state["cart_since"] == at(60)
    old = update(state, track("Product Added", 1, cart_id="c1", product_id="p3", price=1))
    assert cart(old) == cart(state)
    same = update(state, track("Product Added", 59, cart_id="c2", product_id="p3", price=1))
    assert cart(same) == ("c2", {"p2": (1, 3.0), "p3": (1, 1.0)}, 2, 4.0)  # late, same cart
    removal = update(state, track("Product Removed", 70, cart_id="c3", product_id="p2"))
    assert cart(removal) == ("c3", {}, 0, 0.0)  # a new cart, empty: nothing to remove


def test_the_cart_keeps_a_bounded_number_of_lines() -> None:
    adds = [track("Product Added", i / 100, product_id=f"p{i}") for i in range(MAX_CART_LINES)]
    state = fold(adds)
    assert state["cart_items"] == MAX_CART_LINES
    state = update(state, track("Product Added", 2, product_id="one-too-many"))
    assert state["cart_items"] == MAX_CART_LINES
    state = update(state, track("Product Added", 2, product_id="p0"))  # an existing line
    assert state["cart_items"] == MAX_CART_LINES + 1


def test_cart_events_on_other_message_types_do_nothing() -> None:
    state = fold([ev("page", 0, name="Product Added", properties={"product_id": "p"})])
    assert cart(state) == (None, {}, 0, 0.0)


# -- orders ----------------------------------------------------------------------------------------


def test_an_order_completed_becomes_an_order_row() -> None:
    event = ev(
        "track",
        5,
        event="Order Completed",
        properties={"order_id": 1001, "total": 53.97, "revenue": 50.0},
    )
    assert order_of(event, ("anonymous_id", "a1"), "42") == Order(
        "1001", "anonymous_id", "a1", "42", when(5), 53.97
    )
    own = ev("track", 5, event="Order Completed", userId="7", properties={"order_id": "o"})
    assert order_of(own, ("anonymous_id", "a1"), "42") == Order(
        "o", "anonymous_id", "a1", "7", when(5), 0.0
    )


@pytest.mark.parametrize(
    ("properties", "revenue"),
    [
        ({"order_id": "o", "total": "12.50", "revenue": 10}, 12.5),
        ({"order_id": "o", "revenue": 10}, 10.0),
        ({"order_id": "o", "total": "n/a", "revenue": 10}, 10.0),
        ({"order_id": "o"}, 0.0),
    ],
)
def test_the_order_amount_is_the_total_else_the_revenue(
    properties: dict[str, Any], revenue: float
) -> None:
    event = unchecked_track("Order Completed", 0, **properties)
    order = order_of(event, ("anonymous_id", "a1"), None)
    assert order is not None
    assert order.revenue == revenue


@pytest.mark.parametrize(
    "event",
    [
        {"event": "Order Completed", "properties": {"total": 5}},
        {"event": "Order Completed", "properties": {"order_id": "x" * (MAX_ORDER_ID + 1)}},
        {"event": "Order Completed", "properties": {"order_id": ""}},
        {"event": "Checkout Started", "properties": {"order_id": "o"}},
    ],
)
def test_no_order_row_without_a_usable_order_id(event: dict[str, Any]) -> None:
    assert order_of(ev("track", 0, **event), ("anonymous_id", "a1"), None) is None
