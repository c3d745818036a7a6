"""Every feature of the catalogue on the hand-made world, against hand-computed values."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from tiny_world import DAY

from c360.batch import catalogue
from c360.config import Settings
from c360.lake import Lake
from c360.pipeline.daily import run_batch

UTC = dt.UTC


@pytest.fixture
def profiles(tiny_world: Settings) -> tuple[pa.Table, dict[str, dict[str, Any]]]:
    run_batch(tiny_world, DAY)
    lake = Lake(tiny_world.lake.url)
    table = lake.read_partition("profile", "batch_profile", DAY, "features")
    identity = lake.read_partition("identity", "identity_map", DAY, "features").to_pylist()
    by_key = {(r["id_type"], r["id_value"]): r["person_id"] for r in identity}
    rows = {r["person_id"]: r for r in table.to_pylist()}
    named = {
        name: rows[by_key[key]]
        for name, key in {
            "alice": ("customer_id", "1"),
            "bob": ("customer_id", "2"),
            "carol": ("customer_id", "3"),
            "dave": ("email", "dave@g.com"),
            "eve": ("email", "eve@n.com"),
        }.items()
    }
    return table, named


def test_columns_and_types_are_the_catalogue(profiles: tuple[pa.Table, dict[str, Any]]) -> None:
    table, _ = profiles
    assert table.schema.names == [f.name for f in catalogue.CATALOGUE]
    for feature in catalogue.CATALOGUE:
        assert table.schema.field(feature.name).type == feature.type, feature.name


def test_transactions(profiles: tuple[pa.Table, dict[str, Any]]) -> None:
    _, p = profiles
    alice = p["alice"]
    assert alice["total_lifetime_spend"] == Decimal("160.00")  # 100 + 20 + 40 (guest)
    assert alice["number_of_orders"] == 4  # cancelled out, refunded in
    assert alice["avg_order_value"] == pytest.approx(160 / 3)  # over the 3 paid orders
    assert (alice["first_purchase_date"], alice["last_purchase_date"]) == (
        dt.date(2025, 1, 2),
        dt.date(2025, 1, 6),
    )
    assert alice["days_since_last_purchase"] == 4
    assert (alice["orders_30d"], alice["spend_30d"]) == (4, Decimal("160.00"))
    assert alice["refund_rate"] == pytest.approx(0.25)
    assert alice["favourite_category"] == "home"  # 3 mugs vs 2 tees; the cancelled 10 don't count
    assert (alice["rfm_recency"], alice["rfm_monetary"]) == (1, 3)  # 3 buyers: 1..3
    assert p["bob"]["total_lifetime_spend"] == Decimal("10.00")  # the midnight order is D+1's
    assert p["bob"]["rfm_recency"] == 3
    carol = p["carol"]
    assert (carol["number_of_orders"], carol["total_lifetime_spend"]) == (0, Decimal("0.00"))
    assert carol["avg_order_value"] is None and carol["rfm_recency"] is None
    assert p["dave"]["number_of_orders"] == 1  # a guest-only person


def test_demographics_and_identity(profiles: tuple[pa.Table, dict[str, Any]]) -> None:
    _, p = profiles
    alice = p["alice"]
    assert alice["age"] == 34  # born 1990-01-11, D = 2025-01-10
    assert alice["signup_date"] == dt.date(2025, 1, 1)
    assert alice["marketing_opt_in"] is True
    # customer_id, two emails, the Zendesk user and its phone, the Mailchimp member's id and
    # EUID, the cookie
    assert alice["identifier_count"] == 8
    assert alice["first_seen_at"] == dt.datetime(2025, 1, 1, tzinfo=UTC)
    assert p["eve"]["age"] is None and p["eve"]["signup_date"] is None
    assert all(row["batch_date"] == DAY for row in p.values())


def test_web(profiles: tuple[pa.Table, dict[str, Any]]) -> None:
    _, p = profiles
    alice = p["alice"]
    assert alice["sessions_30d"] == 2  # 10:00-10:08, then 11:00 after a 52-minute gap
    assert alice["page_views_30d"] == 2  # the page after the cutoff is D+1's
    assert (alice["product_views_30d"], alice["cart_adds_30d"]) == (1, 1)
    assert alice["conversion_rate_30d"] == pytest.approx(0.5)
    assert alice["last_visit_at"] == dt.datetime(2025, 1, 9, 11, tzinfo=UTC)
    assert p["bob"]["sessions_30d"] == 0 and p["bob"]["conversion_rate_30d"] is None


def test_email(profiles: tuple[pa.Table, dict[str, Any]]) -> None:
    _, p = profiles
    alice = p["alice"]
    assert alice["email_subscription_status"] == "subscribed"
    assert (alice["email_open_rate"], alice["email_click_rate"]) == (0.5, 0.5)
    assert alice["last_email_open_at"] == dt.datetime(2025, 1, 5, 10, tzinfo=UTC)
    assert p["bob"]["email_subscription_status"] == "unsubscribed"
    assert p["bob"]["email_open_rate"] == 0.0
    assert p["carol"]["email_subscription_status"] is None
    assert p["carol"]["email_open_rate"] is None  # never mailed: unknown, not zero


def test_support(profiles: tuple[pa.Table, dict[str, Any]]) -> None:
    _, p = profiles
    alice = p["alice"]
    assert (alice["support_ticket_count"], alice["support_tickets_90d"]) == (2, 2)
    assert alice["open_support_tickets"] == 1  # ticket 100 is still NEW
    assert alice["avg_resolution_hours"] == pytest.approx(24.0)  # ticket 101: created → SOLVED
    assert alice["csat_score"] == pytest.approx(4.0)
    bob = p["bob"]
    assert (bob["support_ticket_count"], bob["open_support_tickets"]) == (0, 0)  # after cutoff
    assert bob["csat_score"] is None
