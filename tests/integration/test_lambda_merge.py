"""The Lambda merge: batch values plus the speed layer's orders after the cutoff, counted once."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from c360.contracts import serving
from c360.stores import ServingStore
from c360.stores.profiles import get_profile

D = dt.date(2025, 6, 10)
T = dt.datetime


def publish(store: ServingStore, day: dt.date, spend: float, orders: int, last: dt.date) -> None:
    store.publish_batch(
        day,
        {
            "person": pa.table({"person_id": ["p_1", "p_2"], "email": ["a@x.com", "b@x.com"]}),
            "identity_map": pa.table(
                {
                    "id_type": ["customer_id", "anonymous_id", "customer_id"],
                    "id_value": ["42", "cookie-1", "43"],
                    "person_id": ["p_1", "p_1", "p_2"],
                }
            ),
            "batch_profile": pa.table(
                {
                    "person_id": ["p_1", "p_2"],
                    "total_lifetime_spend": [spend, 5.0],
                    "number_of_orders": pa.array([orders, 1], pa.int64()),
                    "last_purchase_date": pa.array([last, dt.date(2025, 1, 1)], pa.date32()),
                }
            ),
        },
    )


def realtime_orders(store: ServingStore) -> None:
    with store.begin() as conn:
        conn.execute(
            serving.realtime_order.insert(),
            [
                # Before the cutoff of D: the batch for D already holds it.
                {
                    "order_id": "o-old",
                    "id_type": "anonymous_id",
                    "id_value": "cookie-9",
                    "user_id": "42",
                    "order_at": T(2025, 6, 10, 23, 0),
                    "revenue": 40.0,
                },
                # After it: logged in, and still anonymous on a cookie the batch stitched.
                {
                    "order_id": "o-new",
                    "id_type": "anonymous_id",
                    "id_value": "cookie-2",
                    "user_id": "42",
                    "order_at": T(2025, 6, 11, 10, 0),
                    "revenue": 25.0,
                },
                {
                    "order_id": "o-anon",
                    "id_type": "anonymous_id",
                    "id_value": "cookie-1",
                    "user_id": None,
                    "order_at": T(2025, 6, 11, 11, 0),
                    "revenue": 30.0,
                },
            ],
        )


def unified(store: ServingStore) -> tuple[dict[str, object], dict[str, object]]:
    view = store.query(
        "SELECT total_lifetime_spend, number_of_orders, last_purchase_date "
        "FROM profile WHERE person_id = 'p_1'"
    )[0]
    api = get_profile(store, "p_1")
    assert api is not None
    return view, api["profile"]


def test_orders_after_the_cutoff_count_at_once_and_once_only(store: ServingStore) -> None:
    publish(store, D, spend=100.0, orders=2, last=dt.date(2025, 6, 7))
    realtime_orders(store)
    view, api = unified(store)
    for merged in (view, api):
        assert merged["total_lifetime_spend"] == pytest.approx(155.0)
        assert merged["number_of_orders"] == 4
        assert str(merged["last_purchase_date"]) == "2025-06-11"

    # The next batch covers both orders; its cutoff (end of D+1) moves past them.
    publish(store, D + dt.timedelta(days=1), spend=155.0, orders=4, last=dt.date(2025, 6, 11))
    view, api = unified(store)
    for merged in (view, api):
        assert merged["total_lifetime_spend"] == pytest.approx(155.0)
        assert merged["number_of_orders"] == 4
        assert str(merged["last_purchase_date"]) == "2025-06-11"


def test_someone_else_is_untouched(store: ServingStore) -> None:
    publish(store, D, spend=100.0, orders=2, last=dt.date(2025, 6, 7))
    realtime_orders(store)
    other = get_profile(store, "p_2")
    assert other is not None
    assert other["profile"]["total_lifetime_spend"] == pytest.approx(5.0)
    assert other["profile"]["number_of_orders"] == 1
