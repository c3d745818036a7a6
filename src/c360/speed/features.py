"""Pure real-time feature updates for the clickstream: ``update(state, event) -> state``.

No I/O, no clock. :func:`update` never changes its input: it returns the very same object for
a dropped duplicate and a new one otherwise (a shallow copy, so the state can be a plain typed
dict, cheap to copy; nested values are tuples or mappings that are replaced, never mutated).
:func:`fold` applies a sequence of one identifier's events at once — the worker's path, one
copy per identifier and micro-batch — and always ends where :func:`update` applied event by
event ends (a unit test holds the two together). Times are integer epoch microseconds, in
events and states alike: the decoder parses each timestamp once
(:mod:`c360.speed.events`), the serving store holds datetimes (:mod:`c360.stores.realtime`).

State is kept per *source identifier* (:func:`state_key`): the message's ``anonymousId``, else
its ``userId`` for messages without a cookie. The person is resolved at read time through the
identity map (:mod:`c360.stores.views`), so identity merges need no state migration.

**Sessions** use event time (the message ``timestamp``) with a :data:`SESSION_GAP` inactivity
gap. The state holds one session, the current one, ``[session_start, session_last_event_at]``.
For an event at time ``t``:

1. no session yet: a session ``[t, t]`` starts;
2. ``t > session_last_event_at + GAP``: a new session starts at ``t`` (its counters restart);
3. ``session_start - GAP <= t <= session_last_event_at + GAP``: the event belongs to the current
   session, which widens to include it: a late event up to 30 minutes before the start extends
   the session backward;
4. ``t < session_start - GAP``: a late event of an earlier session. It counts in
   ``events_total`` (and in ``user_id`` if it is the newest identity) but leaves the current
   session, ``last_event_at`` and ``last_event_type`` alone: old events never reset a session.

A session counts ``page`` messages (``current_session_page_views``) and ``Product Viewed`` track
events (``current_session_product_views``).

Known approximation: only the current session is kept, so a late event that bridges the current
session and the one before it (both within 30 minutes) cannot merge them; the current session is
extended back to the late event but misses the earlier session's counts. In event-time order
the result is exact.

**Latest values** follow event time, not arrival: ``last_event_at`` is the greatest event time,
``last_event_type`` the label of that event (the track event name, else the message type; NUL
characters dropped, 64 characters at most), and
``user_id`` the ``userId`` of the newest message that carries one (identify, alias, or any other;
``user_id_at`` remembers its time). Ties go to the later arrival.

**Events in the last hour.** ``recent_event_times`` holds the event times (epoch milliseconds,
sorted) of this identifier's events in the hour ending at its newest event time ``N``: every
``t`` with ``N - 1 h < t <= N``, at most :data:`MAX_RECENT_EVENTS` (the newest ones). A late
event older than ``N - 1 h`` is not added. At read time the serving layer counts the stored
times with ``t > now - 1 h`` (:func:`events_in_last_hour`; an event stamped after ``now`` by a
fast client clock counts): since ``now >= N`` in practice, the stored window holds every event
that can count. The count is exact up to :data:`MAX_RECENT_EVENTS` per identifier and saturates
there (a busier identifier reads as at least that many).

**Cart** (Segment e-commerce spec v2: ``Product Added``, ``Product Removed``, ``Order
Completed``). The state holds one cart per identifier: product lines (``product_id``, else
``sku``, else ``name``) with a quantity (``properties.quantity``, a whole number >= 1, default 1)
(at most :data:`MAX_QUANTITY`) and a unit price (``properties.price``, a number >= 0, default
0; the latest add sets it).
``cart_items`` is the sum of the quantities, ``cart_value`` the sum of quantity x price,
rounded to cents. For a cart event at time ``t``:

- ``Order Completed`` empties the cart (lines, ``cart_id``) and sets ``cart_since = t`` — unless
  it is older than ``cart_since`` (a late order of a cart already replaced);
- ``Product Added`` / ``Product Removed`` whose ``properties.cart_id`` is the current cart's
  apply at any time; otherwise an event older than ``cart_since`` is ignored (it belongs to a
  cart already ordered or replaced), and a new ``cart_id`` starts a new, empty cart at ``t``
  (an abandoned cart stays the identifier's cart until an order or the next cart). Events
  without a ``cart_id`` apply to the current cart;
- an add increases the product's line; a remove decreases it (never below zero; a product not
  in the cart is a no-op). Within one cart, adds and removes apply in arrival order.

At most :data:`MAX_CART_LINES` distinct products are kept; adds of further products are
ignored. ``cart_updated_at`` is the greatest event time of an applied cart event.

**Orders** for the Lambda merge: :func:`order_of` turns an ``Order Completed`` with an
``order_id`` into a ``realtime_order`` row (amount: ``properties.total``, else ``revenue``, else
0 — ``total`` first because the batch's lifetime spend sums order totals).

**Money is plausible here**: the decoders refuse (dead-letter) an ``Order Completed`` whose
``total`` or ``revenue``, or a cart event whose ``price``, is not an amount from 0 to
:data:`~c360.contracts.money.MAX_AMOUNT` (:func:`~c360.contracts.segment.money_problem`), so no
such amount reaches a cart value or a ``realtime_order`` row. Duplicate order ids
are the store's business (one row per order id, first write wins).

**Ended sessions for the timeline.** ``recent_sessions`` holds the identifier's last
:data:`MAX_RECENT_SESSIONS` ended sessions, oldest first, each ``(start, last event, page views,
product views)`` with times in epoch milliseconds: when rule 2 starts a new session, the one it
ends is appended (the current session is the state's own columns). Nothing is done per event,
so the list costs the speed layer next to nothing. Single page views and product events are
not listed: a list of every event made the rows several times larger (past SQLite's 4 KB
page; the worker ran ~40 % slower), and even a list of the last 16 product events alone cost
about a tenth of the worker's time in Python; the batch publish gives the timeline its
per-session detail instead (:mod:`c360.batch.timeline`).

**Duplicates**: a message whose ``messageId`` is among the identifier's last
:data:`DEDUP_WINDOW` ids is dropped: :func:`update` returns the very same state object. Segment
clients retry whole batches soon after a failure, so a short per-identifier window catches them;
a duplicate arriving more than :data:`DEDUP_WINDOW` messages later is counted again.
"""

from __future__ import annotations

import datetime as dt
import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple, TypedDict

from c360.contracts.segment import (
    ORDER_COMPLETED,
    PRODUCT_ADDED,
    PRODUCT_REMOVED,
    PRODUCT_VIEWED,
)
from c360.contracts.times import from_epoch_us
from c360.speed.events import ClickEvent

MINUTE_US = 60_000_000
SESSION_GAP = 30 * MINUTE_US  # epoch microseconds
HOUR_MS = 3_600_000
DEDUP_WINDOW = 32
MAX_RECENT_EVENTS = 256
MAX_CART_LINES = 100
MAX_QUANTITY = 10_000  # per cart line
MAX_PRODUCT_KEY = 128
MAX_EVENT_TYPE = 64  # realtime_state.last_event_type
MAX_CART_ID = 64  # realtime_state.cart_id
MAX_ORDER_ID = 64  # realtime_order.order_id
MAX_RECENT_SESSIONS = 8  # realtime_state.recent_sessions
ANONYMOUS_ID = "anonymous_id"
USER_ID = "user_id"

_CART_EVENTS = frozenset({PRODUCT_ADDED, PRODUCT_REMOVED, ORDER_COMPLETED})

StateKey = tuple[str, str]  # (id_type, id_value), the realtime_state primary key
CartLine = tuple[int, float]  # (quantity, unit price)
# An ended session for the timeline: (start, last event in epoch ms, page views, product views).
Session = tuple[int, int, int, int]
NO_LINES: Mapping[str, CartLine] = MappingProxyType({})


class RealtimeState(TypedDict):
    """One ``realtime_state`` row; times are epoch microseconds (``recent_event_times``: ms)."""

    id_type: str
    id_value: str
    user_id: str | None
    user_id_at: int | None
    session_start: int | None
    session_last_event_at: int | None
    current_session_page_views: int
    current_session_product_views: int
    last_event_at: int | None
    last_event_type: str | None
    events_total: int
    recent_message_ids: tuple[str, ...]
    recent_event_times: tuple[int, ...]
    cart_id: str | None
    cart_lines: Mapping[str, CartLine]
    cart_items: int
    cart_value: float
    cart_since: int | None
    cart_updated_at: int | None
    recent_sessions: tuple[Session, ...]


# The columns of RealtimeState that hold epoch microseconds (datetimes in the serving store).
TIME_FIELDS = (
    "user_id_at",
    "session_start",
    "session_last_event_at",
    "last_event_at",
    "cart_since",
    "cart_updated_at",
)


class Order(NamedTuple):
    """One ``realtime_order`` row."""

    order_id: str
    id_type: str
    id_value: str
    user_id: str | None
    order_at: dt.datetime  # the event time, aware UTC
    revenue: float


class Folded(NamedTuple):
    """What :func:`fold` made of one identifier's events."""

    state: RealtimeState  # the input state itself when every event was a duplicate
    applied: int  # events applied; the others were duplicates
    orders: list[Order]  # of the applied Order Completed events with an order id, in order


def state_key(event: ClickEvent) -> StateKey:
    """Whose state an event updates: its anonymousId, else its userId."""
    if event.anonymous_id is not None:
        return ANONYMOUS_ID, event.anonymous_id
    if event.user_id is None:  # the decoders guarantee one of the two
        raise ValueError(f"message {event.message_id!r} has neither anonymousId nor userId")
    return USER_ID, event.user_id


def empty_state(key: StateKey) -> RealtimeState:
    return {
        "id_type": key[0],
        "id_value": key[1],
        "user_id": None,
        "user_id_at": None,
        "session_start": None,
        "session_last_event_at": None,
        "current_session_page_views": 0,
        "current_session_product_views": 0,
        "last_event_at": None,
        "last_event_type": None,
        "events_total": 0,
        "recent_message_ids": (),
        "recent_event_times": (),
        "cart_id": None,
        "cart_lines": NO_LINES,
        "cart_items": 0,
        "cart_value": 0.0,
        "cart_since": None,
        "cart_updated_at": None,
        "recent_sessions": (),
    }


def update(state: RealtimeState, event: ClickEvent) -> RealtimeState:
    """The state after ``event`` (see the module docstring for the rules)."""
    return fold(state, (event,)).state


def fold(state: RealtimeState, events: Iterable[ClickEvent]) -> Folded:
    """The state after ``events`` of its identifier, applied in order, and their orders.

    The same as :func:`update` event by event, with one copy of the state instead of one per
    event: the hot fields live in local variables until the end.
    """
    new = state.copy()
    window = list(state["recent_message_ids"])  # the ids applied, oldest first
    oldest = max(0, len(window) - DEDUP_WINDOW)  # window[oldest:] is the dedup window
    seen = set(window[oldest:])
    times = list(state["recent_event_times"])
    ordered = True
    sessions: list[Session] | None = None  # copied from the state when a session ends
    start, last = state["session_start"], state["session_last_event_at"]
    pages, products = state["current_session_page_views"], state["current_session_product_views"]
    last_at, label_at_last = state["last_event_at"], state["last_event_type"]
    user_id, user_id_at = state["user_id"], state["user_id_at"]
    applied = 0
    orders: list[Order] = []
    for event in events:
        message_id = event.message_id
        if message_id in seen:
            continue
        window.append(message_id)
        seen.add(message_id)
        if len(window) - oldest > DEDUP_WINDOW:
            seen.discard(window[oldest])  # ids in the window are distinct
            oldest += 1
        applied += 1
        t, kind, label = event.at, event.type, event.label
        # The session: rules 1-4 of the module docstring.
        if start is None or last is None or t > last + SESSION_GAP:  # rules 1 and 2
            if start is not None and last is not None:  # rule 2: the session ends
                if sessions is None:
                    sessions = list(state["recent_sessions"])
                sessions.append((start // 1000, last // 1000, pages, products))
            start = last = t
            pages = 1 if kind == "page" else 0
            products = 1 if kind == "track" and label == PRODUCT_VIEWED else 0
        elif t >= start - SESSION_GAP:  # rule 3
            if t < start:
                start = t
            elif t > last:
                last = t
            if kind == "page":
                pages += 1
            elif kind == "track" and label == PRODUCT_VIEWED:
                products += 1
        # else rule 4: an event of an earlier session leaves the current one alone
        if last_at is None or t >= last_at:
            last_at, label_at_last = t, label
        if event.user_id is not None and (user_id_at is None or t >= user_id_at):
            user_id, user_id_at = event.user_id, t
        t_ms = t // 1000
        if times and t_ms < times[-1]:
            ordered = False
        times.append(t_ms)
        if kind == "track" and label in _CART_EVENTS:
            _cart(new, event)
            if label == ORDER_COMPLETED:
                order = order_of(event, (state["id_type"], state["id_value"]), user_id)
                if order is not None:
                    orders.append(order)
    if not applied:
        return Folded(state, 0, orders)
    if label_at_last is not None and label_at_last is not state["last_event_type"]:
        if "\x00" in label_at_last:  # PostgreSQL text cannot hold NUL
            label_at_last = label_at_last.replace("\x00", "")
        label_at_last = label_at_last[:MAX_EVENT_TYPE]
    new["events_total"] = state["events_total"] + applied
    new["recent_message_ids"] = tuple(window[-DEDUP_WINDOW:])
    new["session_start"], new["session_last_event_at"] = start, last
    new["current_session_page_views"] = pages
    new["current_session_product_views"] = products
    new["last_event_at"], new["last_event_type"] = last_at, label_at_last
    new["user_id"], new["user_id_at"] = user_id, user_id_at
    new["recent_event_times"] = _last_hour(times, ordered)
    if sessions is not None:
        new["recent_sessions"] = tuple(sessions[-MAX_RECENT_SESSIONS:])
    return Folded(new, applied, orders)


def _last_hour(times: list[int], ordered: bool) -> tuple[int, ...]:
    """The times of the hour ending at the newest one, sorted, at most MAX_RECENT_EVENTS.

    Applied to all times at once, this is what pruning after every event gives: the newest
    time only grows, a time pruned (or never added) by an earlier newest is pruned by a later
    one too, and keeping the newest ones commutes with both.
    """
    if not ordered:
        times.sort()
    kept = times[bisect_right(times, times[-1] - HOUR_MS) :]
    return tuple(kept[-MAX_RECENT_EVENTS:])


def events_in_last_hour(times: tuple[int, ...] | list[int], now_ms: int) -> int:
    """How many of the stored event times fall after ``now - 1 h`` (read time)."""
    return len(times) - bisect_right(times, now_ms - HOUR_MS)


# -- cart ------------------------------------------------------------------------------------


def _number(value: object) -> float | None:
    """A finite number >= 0 from a JSON number or numeric string, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _quantity(value: object) -> int:
    number = _number(value)
    if number is None or number < 1 or number != int(number):
        return 1
    return min(int(number), MAX_QUANTITY)


def _text(value: object) -> str | None:
    """A non-empty string or integer id as text; None for anything else (or one with a NUL,
    which PostgreSQL text cannot hold)."""
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        return None
    text = str(value)
    return None if "\x00" in text else text


def _product(properties: Mapping[str, Any]) -> str:
    for field in ("product_id", "sku", "name"):
        value = _text(properties.get(field))
        if value is not None:
            return value[:MAX_PRODUCT_KEY]
    return ""


def _cart(new: RealtimeState, event: ClickEvent) -> None:
    t = event.at
    since = new["cart_since"]
    if event.label == ORDER_COMPLETED:
        if since is None or t >= since:
            _empty_cart(new, None, t)
        return
    properties = event.properties
    cart_id = _text(properties.get("cart_id"))
    if cart_id is not None:
        cart_id = cart_id[:MAX_CART_ID]
    if cart_id is None or cart_id != new["cart_id"]:
        if since is not None and t < since:  # an event of a cart ordered or replaced since
            return
        if cart_id is not None:  # a new cart starts, empty
            _empty_cart(new, cart_id, t)
    lines = _changed_lines(new["cart_lines"], event.label == PRODUCT_ADDED, properties)
    if lines is not None:
        new["cart_lines"] = lines
        new["cart_items"] = sum(quantity for quantity, _ in lines.values())
        new["cart_value"] = round(sum(quantity * price for quantity, price in lines.values()), 2)
        _touched(new, t)


def _empty_cart(new: RealtimeState, cart_id: str | None, since: int) -> None:
    new["cart_id"] = cart_id
    new["cart_lines"] = NO_LINES
    new["cart_items"] = 0
    new["cart_value"] = 0.0
    new["cart_since"] = since
    _touched(new, since)


def _touched(new: RealtimeState, t: int) -> None:
    updated = new["cart_updated_at"]
    if updated is None or t > updated:
        new["cart_updated_at"] = t


def _changed_lines(
    lines: Mapping[str, CartLine], added: bool, properties: Mapping[str, Any]
) -> dict[str, CartLine] | None:
    """The cart's lines after an add or a remove; None when nothing changes."""
    product = _product(properties)
    quantity = _quantity(properties.get("quantity"))
    line = lines.get(product)
    if added:
        if line is None and len(lines) >= MAX_CART_LINES:
            return None
        price = _number(properties.get("price"))
        if price is None:
            price = line[1] if line is not None else 0.0
        changed = dict(lines)
        changed[product] = ((line[0] if line is not None else 0) + quantity, price)
        return changed
    if line is None:
        return None
    changed = dict(lines)
    if line[0] > quantity:
        changed[product] = (line[0] - quantity, line[1])
    else:
        del changed[product]
    return changed


# -- orders ----------------------------------------------------------------------------------


def order_of(event: ClickEvent, key: StateKey, user_id: str | None) -> Order | None:
    """The ``realtime_order`` row of an ``Order Completed`` with an ``order_id``, else None.

    ``user_id`` is the customer the identifier is known as (the event's own ``userId`` or the
    state's after the event), so the order resolves to the customer even on a new cookie.
    """
    if event.type != "track" or event.label != ORDER_COMPLETED:
        return None
    properties = event.properties
    order_id = _text(properties.get("order_id"))
    if order_id is None or len(order_id) > MAX_ORDER_ID:
        return None
    amount = _number(properties.get("total"))
    if amount is None:
        amount = _number(properties.get("revenue"))
    return Order(
        order_id,
        key[0],
        key[1],
        event.user_id or user_id,
        from_epoch_us(event.at),
        amount if amount is not None else 0.0,
    )
