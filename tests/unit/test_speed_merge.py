"""The Lambda merge's rules, one by one, by hand (c360.speed.merge)."""

from __future__ import annotations

import datetime as dt

import pytest

from c360.speed.merge import RULES, Rule, merge, provenance

TODAY = dt.date(2025, 6, 20)
CUTOFF = dt.datetime(2025, 6, 11)
NOW = dt.datetime(2025, 6, 20, 9, 30)
BATCH = {
    "total_lifetime_spend": 300.0,
    "number_of_orders": 4,  # one of them refunded
    "avg_order_value": 100.0,  # 300 over the 3 orders neither cancelled nor refunded
    "refund_rate": 0.25,
    "orders_30d": 1,
    "spend_30d": 100.0,
    "first_purchase_date": dt.date(2024, 1, 5),
    "last_purchase_date": dt.date(2025, 6, 1),
    "days_since_last_purchase": 9,
    "last_visit_at": dt.datetime(2025, 6, 10, 20, 0),
    "open_support_tickets": 1,
    "support_ticket_count": 2,
    "rfm_recency": 3,
}
NO_FACTS: dict[str, object] = {"has_support_state": False}


def test_without_facts_the_batch_stands_but_the_days_are_counted_to_today() -> None:
    merged = merge(BATCH, NO_FACTS, TODAY)
    assert merged == {**BATCH, "days_since_last_purchase": 19}


def test_orders_since_the_cutoff_complete_every_transaction_feature() -> None:
    facts = {
        "orders_since_cutoff": 2,
        "spend_since_cutoff": 50.0,
        "first_order_at": dt.datetime(2025, 6, 12, 8, 0),
        "last_order_at": dt.datetime(2025, 6, 18, 23, 59),
        "has_support_state": False,
    }
    merged = merge(BATCH, facts, TODAY)
    assert merged["total_lifetime_spend"] == 350.0
    assert merged["number_of_orders"] == 6
    assert (merged["orders_30d"], merged["spend_30d"]) == (3, 150.0)
    assert merged["avg_order_value"] == pytest.approx(350.0 / 5)  # 3 + 2 non-refunded orders
    assert merged["refund_rate"] == pytest.approx(1 / 6)  # the refunded one of 6
    assert merged["first_purchase_date"] == dt.date(2024, 1, 5)  # the batch's is earlier
    assert merged["last_purchase_date"] == dt.date(2025, 6, 18)
    assert merged["days_since_last_purchase"] == 2
    assert merged["rfm_recency"] == 3  # a rank among buyers: the batch's


def test_a_first_order_after_the_cutoff_makes_a_consistent_buyer() -> None:
    """The issue's example: 1 order and 205.98 spent, yet no average and no first date."""
    batch = {"total_lifetime_spend": 0.0, "number_of_orders": 0, "avg_order_value": None,
             "first_purchase_date": None, "last_purchase_date": None,
             "refund_rate": None}  # fmt: skip
    at = dt.datetime(2025, 6, 19, 14, 0)
    facts = {"orders_since_cutoff": 1, "spend_since_cutoff": 205.98, "first_order_at": at,
             "last_order_at": at, "has_support_state": False}  # fmt: skip
    merged = merge(batch, facts, TODAY)
    assert merged["number_of_orders"] == 1
    assert merged["total_lifetime_spend"] == pytest.approx(205.98)
    assert merged["avg_order_value"] == pytest.approx(205.98)
    assert merged["first_purchase_date"] == merged["last_purchase_date"] == at.date()
    assert merged["days_since_last_purchase"] == 1
    assert merged["refund_rate"] == 0.0


def test_live_tickets_win_and_the_ticket_count_keeps_up() -> None:
    facts = {"open_ticket_count": 4, "has_support_state": True}
    merged = merge({**BATCH, "open_support_tickets": 0}, facts, TODAY)
    assert merged["open_support_tickets"] == 4
    assert merged["support_ticket_count"] == 4  # at least the open ones
    closed = merge(BATCH, {"open_ticket_count": 0, "has_support_state": True}, TODAY)
    assert (closed["open_support_tickets"], closed["support_ticket_count"]) == (0, 2)


def test_a_newer_event_moves_the_last_visit() -> None:
    later = dt.datetime(2025, 6, 19, 8, 0)
    merged = merge(BATCH, {"last_event_at": later, "has_support_state": False}, TODAY)
    assert merged["last_visit_at"] == later
    older = merge(BATCH, {"last_event_at": dt.datetime(2025, 1, 1)}, TODAY)
    assert older["last_visit_at"] == BATCH["last_visit_at"]


def test_provenance_names_the_layer_of_each_field() -> None:
    facts = {"orders_since_cutoff": 1, "spend_since_cutoff": 10.0, "has_support_state": False}
    merged = merge(BATCH, facts, TODAY)
    merged["cart_value"] = 12.5  # a real-time feature
    layers = provenance(merged, facts, CUTOFF, NOW)
    assert layers["total_lifetime_spend"] == {"layer": "merged", "as_of": NOW}
    assert layers["rfm_recency"] == {"layer": "batch", "as_of": CUTOFF}
    assert layers["open_support_tickets"] == {"layer": "batch", "as_of": CUTOFF}
    assert layers["days_since_last_purchase"]["layer"] == "merged"
    assert layers["cart_value"] == {"layer": "realtime", "as_of": NOW}


def test_rules_read_only_features_merged_before_them() -> None:
    seen: set[str] = set()
    for rule in RULES:
        if rule.rule in (Rule.DAYS_SINCE, Rule.AT_LEAST):
            assert rule.fact in seen, f"{rule.feature} reads {rule.fact} before it is merged"
        seen.add(rule.feature)
