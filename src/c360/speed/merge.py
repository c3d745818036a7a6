"""The Lambda merge, defined once: how the speed layer's facts complete the batch profile.

The batch profile is exact as of its cutoff (the end of day D, UTC). The speed layer knows what
happened since: the orders it saw at or after the serving batch's cutoff, the newest event, the
tickets' current status. The unified profile is the batch profile completed by these *facts*
under the rules of :data:`RULES`, plus the real-time features of :data:`REALTIME_FEATURES`.
Both readers derive from this table: the Profile API's read (:func:`merge`) and the serving
store's ``profile`` view (``c360.stores.views`` writes each rule as SQL); a conformance test holds
the two equal.

Facts, per person (from the serving store):

- ``orders_since_cutoff``, ``spend_since_cutoff``, ``first_order_at``, ``last_order_at``: the
  orders the speed layer saw at or after the cutoff;
- ``last_event_at``: the person's newest event;
- ``open_ticket_count`` and ``has_support_state``: open tickets, from the support state, when
  the speed layer has seen any of the person's Zendesk users.

Rules (the window features — ``orders_30d`` and the like — count a post-cutoff order in every
window: the windows then end now rather than at the cutoff, a day at most):

========================  =======================================================================
``add``                   batch value + the fact (counts and sums)
``earliest``/``latest``   the earlier/later of the batch date and the fact's date
``latest_time``           the later of two times
``average``               spend over non-refunded orders, recomputed with the new orders
``share``                 refunded orders over orders, recomputed with the new orders
``days_since``            days from the merged ``last_purchase_date`` to today
``live``                  the real-time value when the speed layer has one (open tickets)
``at_least``              the batch value, raised to the merged value of another feature
                          (tickets in all ≥ open tickets)
========================  =======================================================================

Without facts the merged value is the batch value, except ``days_since`` (counted to today).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pyarrow as pa


class Rule(StrEnum):
    ADD = "add"
    EARLIEST = "earliest"
    LATEST = "latest"
    LATEST_TIME = "latest_time"
    AVERAGE = "average"
    SHARE = "share"
    DAYS_SINCE = "days_since"
    LIVE = "live"
    AT_LEAST = "at_least"


@dataclass(frozen=True)
class Merge:
    """How one batch feature is completed: its rule and the fact (or feature) it takes."""

    feature: str
    rule: Rule
    fact: str


RULES: tuple[Merge, ...] = (
    Merge("total_lifetime_spend", Rule.ADD, "spend_since_cutoff"),
    Merge("number_of_orders", Rule.ADD, "orders_since_cutoff"),
    Merge("orders_30d", Rule.ADD, "orders_since_cutoff"),
    Merge("orders_90d", Rule.ADD, "orders_since_cutoff"),
    Merge("orders_365d", Rule.ADD, "orders_since_cutoff"),
    Merge("spend_30d", Rule.ADD, "spend_since_cutoff"),
    Merge("spend_90d", Rule.ADD, "spend_since_cutoff"),
    Merge("spend_365d", Rule.ADD, "spend_since_cutoff"),
    Merge("first_purchase_date", Rule.EARLIEST, "first_order_at"),
    Merge("last_purchase_date", Rule.LATEST, "last_order_at"),
    Merge("days_since_last_purchase", Rule.DAYS_SINCE, "last_purchase_date"),
    Merge("avg_order_value", Rule.AVERAGE, "orders_since_cutoff"),
    Merge("refund_rate", Rule.SHARE, "orders_since_cutoff"),
    Merge("last_visit_at", Rule.LATEST_TIME, "last_event_at"),
    Merge("open_support_tickets", Rule.LIVE, "open_ticket_count"),
    Merge("support_ticket_count", Rule.AT_LEAST, "open_support_tickets"),
)
BY_FEATURE = {merge.feature: merge for merge in RULES}
# The facts a rule reads beside its own fact.
SPEND, ORDERS = "total_lifetime_spend", "number_of_orders"


@dataclass(frozen=True)
class RealtimeFeature:
    name: str
    type: pa.DataType
    description: str


# The unified profile's real-time features (beside the merged batch features).
REALTIME_FEATURES: tuple[RealtimeFeature, ...] = (
    RealtimeFeature("current_session_page_views", pa.int64(), "Page calls in the current session."),
    RealtimeFeature(
        "current_session_product_views",
        pa.int64(),
        "Product Viewed events in the current session.",
    ),
    RealtimeFeature(
        "current_session_start", pa.timestamp("us"), "Start of the current session (UTC)."
    ),
    RealtimeFeature("last_event_at", pa.timestamp("us"), "Time of the newest event (UTC)."),
    RealtimeFeature("last_event_type", pa.string(), "Type or name of the newest event."),
    RealtimeFeature(
        "time_since_last_event_seconds",
        pa.float64(),
        "Seconds from the newest event to the time of the read.",
    ),
    RealtimeFeature(
        "events_last_hour", pa.int64(), "Events in the hour before the time of the read."
    ),
    RealtimeFeature("cart_items", pa.int64(), "Items in the open cart."),
    RealtimeFeature("cart_value", pa.float64(), "Value of the open cart."),
    RealtimeFeature(
        "has_open_support_ticket", pa.bool_(), "Whether open_support_tickets is above zero."
    ),
    RealtimeFeature(
        "orders_since_cutoff",
        pa.int64(),
        "Orders the speed layer saw since the serving batch's cutoff.",
    ),
    RealtimeFeature(
        "spend_since_cutoff",
        pa.float64(),
        "Spend of those orders (already in the merged transaction features).",
    ),
)
REALTIME_NAMES = tuple(feature.name for feature in REALTIME_FEATURES)


def _date(value: Any) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _number(value: Any) -> float:
    return float(value) if value is not None else 0.0


def _non_refunded_orders(batch: Mapping[str, Any]) -> int:
    """The batch's orders neither cancelled nor refunded: spend / average order value."""
    average = batch.get("avg_order_value")
    return round(_number(batch.get(SPEND)) / average) if average else 0


def _merged_value(
    merge: Merge, batch: Mapping[str, Any], facts: Mapping[str, Any], merged: Mapping[str, Any]
) -> Any:
    value = batch.get(merge.feature)
    fact = facts.get(merge.fact)
    new_orders = int(facts.get("orders_since_cutoff") or 0)
    match merge.rule:
        case Rule.ADD:
            return value if not fact else (value or 0) + fact
        case Rule.EARLIEST | Rule.LATEST:
            dates = [d for d in (_date(value), _date(fact)) if d is not None]
            pick = min if merge.rule is Rule.EARLIEST else max
            return pick(dates) if dates else None
        case Rule.LATEST_TIME:
            times = [t for t in (value, fact) if t is not None]
            return max(times) if times else None
        case Rule.AVERAGE:
            if not new_orders:
                return value
            orders = _non_refunded_orders(batch) + new_orders
            return _number(merged[SPEND]) / orders
        case Rule.SHARE:
            orders = int(batch.get(ORDERS) or 0)
            if not new_orders:
                return value
            refunded = round(_number(value) * orders)
            return refunded / (orders + new_orders)
        case Rule.LIVE:
            return fact if facts.get("has_support_state") else value
        case Rule.AT_LEAST:
            floor = merged.get(merge.fact)
            return value if floor is None or (value is not None and value >= floor) else floor
        case Rule.DAYS_SINCE:
            raise AssertionError("computed with the read time, in merge()")
    raise AssertionError(f"unknown rule {merge.rule}")


def touched(rule: Merge, facts: Mapping[str, Any]) -> bool:
    """Whether real-time facts change ``rule``'s feature (always, for a count to today)."""
    if rule.rule is Rule.DAYS_SINCE:
        return True
    if rule.rule in (Rule.LIVE, Rule.AT_LEAST):
        return bool(facts.get("has_support_state"))
    return bool(facts.get(rule.fact))


def merge(batch: Mapping[str, Any], facts: Mapping[str, Any], today: dt.date) -> dict[str, Any]:
    """The batch features completed by the facts (see the module docstring); ``today`` is the
    date of the read, for ``days_since``. Rules run in :data:`RULES` order: a rule may read
    the merged value of a feature before it."""
    merged = dict(batch)
    for rule in RULES:
        if rule.rule is Rule.DAYS_SINCE:
            last = _date(merged.get(rule.fact))
            merged[rule.feature] = (today - last).days if last is not None else None
        elif touched(rule, facts):  # else the batch value stands
            merged[rule.feature] = _merged_value(rule, batch, facts, merged)
    return merged


def provenance(
    features: Mapping[str, Any],
    facts: Mapping[str, Any],
    cutoff: dt.datetime | None,
    now: dt.datetime,
) -> dict[str, dict[str, Any]]:
    """Which layer served each field of a unified profile (``features``), and as of when:
    ``batch`` (as of the batch cutoff), ``merged`` (the batch completed by real-time facts, as
    of the read) or ``realtime`` (the speed layer's state, as of the read)."""
    out: dict[str, dict[str, Any]] = {}
    for name in features:
        rule = BY_FEATURE.get(name)
        if name in REALTIME_NAMES:
            out[name] = {"layer": "realtime", "as_of": now}
        elif rule is not None and touched(rule, facts):
            out[name] = {"layer": "merged", "as_of": now}
        else:
            out[name] = {"layer": "batch", "as_of": cutoff}
    return out
