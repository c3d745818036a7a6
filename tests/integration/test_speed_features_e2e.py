"""Real-time features end to end: events through the log and the worker, read through the API's
``ServingStore.profile`` and the ``profile`` view, on top of a published batch (the Lambda
merge)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest

from c360.logs import EventLog
from c360.logs.local import LocalLog
from c360.pipeline.stream_worker import run
from c360.stores import ServingStore

D = dt.date(2025, 6, 10)  # its cutoff: 2025-06-11 00:00 UTC
TOPICS = ("clickstream", "support")


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EventLog]:
    with LocalLog(tmp_path / "log", 3) as opened:
        yield opened


def publish(store: ServingStore, day: dt.date, spend: float, orders: int, last: dt.date) -> None:
    store.publish_batch(
        day,
        {
            "person": pa.table({"person_id": ["p_1", "p_2"], "email": ["a@x.com", "b@x.com"]}),
            "identity_map": pa.table(
                {
                    "id_type": ["customer_id", "anonymous_id", "zendesk_user_id", "customer_id"],
                    "id_value": ["42", "cookie-1", "361", "43"],
                    "person_id": ["p_1", "p_1", "p_1", "p_2"],
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


def segment(
    kind: str, mid: str, when: dt.datetime, cookie: str = "cookie-2", **fields: Any
) -> tuple[str, bytes]:
    message = {
        "type": kind,
        "messageId": mid,
        "anonymousId": cookie,
        "timestamp": when.isoformat().replace("+00:00", "Z"),
        **fields,
    }
    return cookie, orjson.dumps(message)


def zendesk(kind: str, event_id: str, when: dt.datetime, **detail: Any) -> tuple[str, bytes]:
    change = {"current": detail.pop("current"), "previous": "NEW"} if "current" in detail else {}
    payload = {
        "type": f"zen:event-type:{kind}",
        "id": event_id,
        "time": when.isoformat().replace("+00:00", "Z"),
        "detail": {"requester_id": "361", **detail},
        "event": change,
    }
    return "361", orjson.dumps(payload)


def at(hour: int, minute: int = 0, day: int = 11) -> dt.datetime:
    return dt.datetime(2025, 6, day, hour, minute, tzinfo=dt.UTC)


def consume(log: EventLog, store: ServingStore) -> None:
    stats = run(log, store, topics=TOPICS, stop_when_caught_up=True, batch_size=4)
    assert (stats.dead_lettered, stats.conflicts) == (0, 0)


def test_a_streamed_order_shows_at_once_and_is_counted_once(
    store: ServingStore, log: EventLog
) -> None:
    publish(store, D, spend=100.0, orders=2, last=dt.date(2025, 6, 7))
    added = {"cart_id": "k1", "product_id": "p1", "price": 7.5, "quantity": 2}
    log.append(
        "clickstream",
        [
            # An order the batch of D already holds (before its cutoff): not added again.
            segment("track", "m0", at(23, day=10), userId="42", event="Order Completed",
                    properties={"order_id": "o-8", "total": 40.0}),
            segment("identify", "m1", at(10, 0), userId="42"),
            segment("page", "m2", at(10, 1)),
            segment("track", "m3", at(10, 2), event="Product Viewed", properties={"sku": "p1"}),
            segment("track", "m4", at(10, 3), event="Product Added", properties=added),
            segment("track", "m5", at(10, 5), event="Order Completed",
                    properties={"order_id": "o-9", "total": 25.0, "revenue": 22.0}),
            segment("track", "m6", at(10, 6), event="Order Completed",  # fired twice
                    properties={"order_id": "o-9", "total": 25.0}),
            segment("track", "m7", at(10, 7), event="Product Added",
                    properties={"cart_id": "k2", "product_id": "p2", "price": 3.0}),
            # The batch's own cookie, older: not the latest session.
            segment("page", "c1", at(9, 0), cookie="cookie-1"),
        ],
    )  # fmt: skip
    log.append(
        "support",
        [
            zendesk("ticket.created", "z1", at(8), id="1000", status="NEW"),
            zendesk("ticket.created", "z2", at(8, 30), id="1001", status="NEW"),
            zendesk("ticket.status_changed", "z3", at(9), id="1001", current="SOLVED"),
            zendesk("ticket.status_changed", "z4", at(9, 30), id="1000", current="OPEN"),
        ],
    )
    consume(log, store)

    profile = store.profile("p_1", now=dt.datetime(2025, 6, 11, 10, 30))
    assert profile is not None
    merged, live = profile["profile"], profile["realtime"]
    assert merged["total_lifetime_spend"] == pytest.approx(125.0)
    assert merged["number_of_orders"] == 3
    assert str(merged["last_purchase_date"]) == "2025-06-11"
    assert (live["orders_since_cutoff"], live["spend_since_cutoff"]) == (1, pytest.approx(25.0))
    assert {k: live[k] for k in LIVE} == {
        "current_session_page_views": 1,
        "current_session_product_views": 1,
        "last_event_type": "Product Added",
        "events_total": 9,
        "events_last_hour": 7,  # 09:30 < the six events of cookie-2 after 10:00 + c1 at 9:00 out
        "cart_items": 1,  # the new cart k2, after the order emptied k1
        "cart_value": 3.0,
        "open_ticket_count": 1,
        "has_open_support_ticket": True,
        "time_since_last_event_seconds": 23 * 60.0,
    }
    later = store.profile("p_1", now=dt.datetime(2025, 6, 11, 11, 4))
    assert later is not None
    assert later["realtime"]["events_last_hour"] == 3  # 10:05, 10:06 and 10:07

    view = store.query(
        "SELECT total_lifetime_spend, number_of_orders, cart_items, cart_value, "
        "current_session_product_views, open_ticket_count, has_open_support_ticket "
        "FROM profile WHERE person_id = 'p_1'"
    )[0]
    assert view["total_lifetime_spend"] == pytest.approx(125.0)
    assert (view["number_of_orders"], view["cart_items"], view["cart_value"]) == (3, 1, 3.0)
    assert (view["current_session_product_views"], view["open_ticket_count"]) == (1, 1)
    assert bool(view["has_open_support_ticket"]) is True

    # The next batch covers o-9: its cutoff moved past it, so it is counted once.
    publish(store, D + dt.timedelta(days=1), 125.0, 3, dt.date(2025, 6, 11))
    again = store.profile("p_1")
    assert again is not None
    assert again["profile"]["total_lifetime_spend"] == pytest.approx(125.0)
    assert again["profile"]["number_of_orders"] == 3

    other = store.profile("p_2")
    assert other is not None
    assert other["realtime"]["has_open_support_ticket"] is False
    assert other["realtime"]["open_ticket_count"] == 0
    assert other["profile"]["number_of_orders"] == 1


LIVE = (
    "current_session_page_views",
    "current_session_product_views",
    "last_event_type",
    "events_total",
    "events_last_hour",
    "cart_items",
    "cart_value",
    "open_ticket_count",
    "has_open_support_ticket",
    "time_since_last_event_seconds",
)


def test_the_view_counts_events_in_the_last_hour_against_the_database_clock(
    store: ServingStore, log: EventLog
) -> None:
    publish(store, D, spend=0.0, orders=0, last=dt.date(2025, 1, 1))
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    minutes = [125, 61, 50, 20, 1]  # the hour before the newest (1 min ago) keeps 61, 50, 20, 1
    log.append(
        "clickstream",
        [segment("page", f"n{m}", now - dt.timedelta(minutes=m), "cookie-1") for m in minutes],
    )
    consume(log, store)
    (row,) = store.query("SELECT events_last_hour FROM profile WHERE person_id = 'p_1'")
    assert row["events_last_hour"] == 3  # 61 minutes ago is out by now
    profile = store.profile("p_1")
    assert profile is not None
    assert profile["realtime"]["events_last_hour"] == 3
    ahead = store.profile("p_1", now=now.replace(tzinfo=None) + dt.timedelta(minutes=35))
    assert ahead is not None
    assert ahead["realtime"]["events_last_hour"] == 2


def test_an_order_at_the_cutoff_instant_counts_as_after_it(
    store: ServingStore, log: EventLog
) -> None:
    """The cutoff is inclusive for the speed layer: an order stamped exactly at midnight after D
    belongs to D+1 (times are stored in one format, so the SQL comparison is exact)."""
    publish(store, D, spend=100.0, orders=2, last=dt.date(2025, 6, 7))
    midnight = dt.datetime(2025, 6, 11, tzinfo=dt.UTC)
    log.append(
        "clickstream",
        [
            segment("track", "o1", midnight, userId="42", event="Order Completed",
                    properties={"order_id": "o-at", "total": 10.0}),
            segment("track", "o2", midnight - dt.timedelta(milliseconds=1), userId="42",
                    event="Order Completed", properties={"order_id": "o-before", "total": 7.0}),
        ],
    )  # fmt: skip
    consume(log, store)
    profile = store.profile("p_1")
    assert profile is not None
    assert profile["profile"]["total_lifetime_spend"] == pytest.approx(110.0)
    assert profile["profile"]["number_of_orders"] == 3
    (view,) = store.query("SELECT number_of_orders FROM profile WHERE person_id = 'p_1'")
    assert view["number_of_orders"] == 3


def test_a_login_links_the_cookie_to_the_customer_at_once_and_the_batch_settles_it(
    store: ServingStore, log: EventLog
) -> None:
    publish(store, D, spend=100.0, orders=2, last=dt.date(2025, 6, 7))
    log.append(
        "clickstream",
        [
            segment("page", "n1", at(10, 0), cookie="cookie-9"),
            segment("identify", "n2", at(10, 1), cookie="cookie-9", userId="43"),
            segment("page", "n3", at(10, 2), cookie="cookie-9", userId="43"),  # same customer
            segment("identify", "n4", at(11, 0), cookie="cookie-8", userId="42"),
        ],
    )
    consume(log, store)

    links = {
        row["anonymous_id"]: row
        for row in store.query("SELECT * FROM identity_stitch ORDER BY anonymous_id")
    }
    assert set(links) == {"cookie-8", "cookie-9"}
    assert (links["cookie-9"]["customer_id"], links["cookie-9"]["status"]) == ("43", "provisional")
    assert str(links["cookie-9"]["linked_at"]).startswith("2025-06-11 10:02")  # newest userId
    assert store.find_person("anonymous_id", "cookie-9") == "p_2"  # before any batch knows it

    # The next batch maps cookie-9 to p_2 itself: the provisional link is settled and dropped;
    # cookie-8's link the batch does not cover stays.
    tables = {
        "person": pa.table({"person_id": ["p_1", "p_2"], "email": ["a@x.com", "b@x.com"]}),
        "identity_map": pa.table(
            {
                "id_type": ["customer_id", "customer_id", "anonymous_id"],
                "id_value": ["42", "43", "cookie-9"],
                "person_id": ["p_1", "p_2", "p_2"],
            }
        ),
        "batch_profile": pa.table({"person_id": ["p_1", "p_2"]}),
    }
    reconciled = store.publish_batch(D + dt.timedelta(days=1), tables)
    assert reconciled.dropped == 1
    left = store.query("SELECT anonymous_id FROM identity_stitch")
    assert [row["anonymous_id"] for row in left] == ["cookie-8"]


def test_the_timeline_shows_what_the_speed_layer_saw_since_the_cutoff(
    store: ServingStore, log: EventLog
) -> None:
    publish(store, D, spend=100.0, orders=2, last=dt.date(2025, 6, 7))
    added = {"cart_id": "k1", "product_id": "p1", "price": 7.5, "quantity": 2}
    log.append(
        "clickstream",
        [
            # Before the cutoff: the batch's to show (this test publishes no timeline rows).
            segment("track", "m0", at(23, day=10), userId="42", event="Order Completed",
                    properties={"order_id": "o-8", "total": 40.0}),
            segment("identify", "m1", at(10, 0), userId="42"),
            segment("track", "m3", at(10, 2), event="Product Viewed", properties={"sku": "p1"}),
            segment("track", "m4", at(10, 3), event="Product Added", properties=added),
            segment("track", "m5", at(10, 5), event="Order Completed",
                    properties={"order_id": "o-9", "total": 25.0}),
            segment("track", "m7", at(10, 7), event="Product Added",
                    properties={"cart_id": "k2", "product_id": "p2", "price": 3.0}),
            segment("page", "m8", at(11, 0)),  # a new session
            segment("page", "m9", at(11, 1)),
            segment("page", "c1", at(9, 0), cookie="cookie-1"),
        ],
    )  # fmt: skip
    log.append(
        "support",
        [
            zendesk("ticket.created", "z1", at(23, day=10), id="1000", status="NEW"),  # before
            zendesk("ticket.status_changed", "z3", at(9), id="1000", current="SOLVED"),
        ],
    )
    consume(log, store)
    page = store.timeline("p_1", limit=50, days=30, now=dt.datetime(2025, 6, 11, 11, 30))
    assert page is not None
    seen = [(e["at"].strftime("%H:%M"), e["type"], e["summary"]) for e in page.events]
    assert seen[:4] == [
        ("11:00", "session", "Visit: 2 page views, 0 product views, 1 min"),
        ("10:07", "cart", "Cart: 1 item, 3.00"),
        ("10:05", "order", "Order o-9: 25.00"),
        ("10:00", "session", "Visit: 0 page views, 1 product view, 7 min"),  # ended at 10:07
    ]
    assert sorted(seen[4:]) == [  # a tie at 09:00, in event id order; nothing before the cutoff
        ("09:00", "session", "Visit: 1 page view, 0 product views, 0 min"),  # cookie-1
        ("09:00", "ticket.status_changed", "Ticket 1000: status changed (SOLVED)"),
    ]
    assert [e["id"] for e in page.events[4:]] == sorted(
        (e["id"] for e in page.events[4:]), reverse=True
    )
