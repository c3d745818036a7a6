"""A hand-made ShopSmart world with hand-computed expectations (see test_batch_skeleton)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

from sqlalchemy import create_engine, insert

from c360.config import Settings, load_config
from c360.contracts import shop_db
from c360.logs import open_log

DAY = dt.date(2025, 1, 10)
T = dt.datetime


def _customers() -> list[dict[str, object]]:
    base = {
        "phone": None,
        "birth_date": None,
        "address_line": None,
        "postcode": None,
        "city": "Leeds",
        "country": "GB",
        "marketing_opt_in": True,
        "created_at": T(2025, 1, 1),
        "updated_at": T(2025, 1, 1),
    }
    return [
        {
            **base,
            "customer_id": 1,
            "email": "Alice@X.com",
            "first_name": "Alice",
            "last_name": "A",
            "birth_date": dt.date(1990, 1, 11),  # 35 tomorrow: 34 at D
        },
        {**base, "customer_id": 2, "email": "bob@y.com", "first_name": "Bob", "last_name": "B"},
        {**base, "customer_id": 3, "email": "carol@z.com", "first_name": "Carol", "last_name": "C"},
    ]


def _order(
    order_id: int,
    customer_id: int | None,
    email: str,
    status: str,
    total: str,
    created: dt.datetime,
) -> dict[str, object]:
    return {
        "order_id": order_id,
        "customer_id": customer_id,
        "email": email,
        "status": status,
        "currency": "GBP",
        "subtotal": Decimal(total),
        "shipping": Decimal("0.00"),
        "total": Decimal(total),
        "shipping_name": None,
        "shipping_address_line": None,
        "shipping_postcode": None,
        "shipping_city": None,
        "shipping_country": None,
        "phone": None,
        "created_at": created,
        "updated_at": created,
    }


ORDERS = [
    _order(1, 1, "alice@x.com", "delivered", "100.00", T(2025, 1, 2, 9)),
    _order(2, 1, "alice@x.com", "cancelled", "50.00", T(2025, 1, 3, 9)),
    _order(3, 1, "alice@x.com", "refunded", "30.00", T(2025, 1, 4, 9)),
    _order(5, 1, "alice.work@x.com", "delivered", "20.00", T(2025, 1, 5, 9)),
    # A guest checkout under Alice's work address: linked through order 5.
    _order(4, None, " ALICE.WORK@x.com ", "shipped", "40.00", T(2025, 1, 6, 9)),
    _order(6, None, "dave@g.com", "delivered", "15.00", T(2025, 1, 7, 9)),
    # Exactly at the cutoff (midnight UTC after D): belongs to the next day's batch.
    _order(7, 2, "bob@y.com", "delivered", "70.00", T(2025, 1, 11, 0, 0, 0)),
    _order(8, 2, "bob@y.com", "delivered", "10.00", T(2025, 1, 10, 23, 59, 59)),
]

# Address: the ADDRESS merge field as Mailchimp exports it, its filled parts joined by two
# spaces (addr1, addr2, city, state, zip, country): four parts, all six, and none.
MEMBERS_CSV = (
    '"Email Address","First Name","Last Name","Address","EUID","LEID","STATUS"\n'
    '"alice@x.com","Alice","A","1 Park Row  Leeds  LS1 5AB  GB","a1","1","subscribed"\n'
    '"bob@y.com","Bob","B","2 Mill Lane  Flat 3  York  North Yorkshire   YO1 7HH  GB","b1","2",'
    '"unsubscribed"\n'
    '"eve@n.com","Eve","E","","e1","3","subscribed"\n'
)


def _activity(campaign: str, email: str, opened: bool) -> dict[str, object]:
    actions = [{"action": "open", "timestamp": "2025-01-05T10:00:00+00:00", "ip": "10.0.0.1"}]
    return {
        "campaign_id": campaign,
        "list_id": "L1",
        "email_id": email,
        "email_address": email,
        "activity": actions if opened else [],
    }


CLICK = {
    "action": "click",
    "timestamp": "2025-01-05T10:01:00+00:00",
    "url": "https://x",
    "ip": "10.0.0.1",
}

ACTIVITY = [
    {
        **_activity("c1", "alice@x.com", True),
        "activity": [*_activity("c1", "a", True)["activity"], CLICK],
    },
    _activity("c2", "alice@x.com", False),
    _activity("c1", "bob@y.com", False),
    _activity("c1", "eve@n.com", True),
]


def _zendesk(
    kind: str, event_id: str, time: str, detail: dict[str, object], event: object = None
) -> dict[str, object]:
    return {
        "type": f"zen:event-type:{kind}",
        "account_id": 1,
        "id": event_id,
        "time": time,
        "zendesk_event_version": "2022-11-06",
        "subject": "zen:x",
        "detail": detail,
        "event": event or {},
    }


ZENDESK = [
    _zendesk(
        "user.created",
        "e1",
        "2025-01-02T08:00:00Z",
        {"id": "10", "email": "alice@x.com", "name": "Alice A", "phone": "+44 113 496 0000"},
    ),
    _zendesk(
        "ticket.created",
        "e2",
        "2025-01-02T08:01:00Z",
        {"id": "100", "requester_id": "10", "status": "NEW"},
    ),
    _zendesk(
        "ticket.created",
        "e3",
        "2025-01-03T08:01:00Z",
        {"id": "101", "requester_id": "10", "status": "NEW"},
    ),
    _zendesk(
        "ticket.status_changed",
        "e4",
        "2025-01-04T08:01:00Z",
        {"id": "101", "requester_id": "10"},
        {"current": "SOLVED", "previous": "NEW"},
    ),
    _zendesk(
        "ticket.comment_added",
        "e4b",
        "2025-01-04T09:00:00Z",
        {"id": "101", "requester_id": "10", "status": "SOLVED"},
        {"comment": {"body": "Satisfaction rating: 4/5. Quick and helpful.", "public": True}},
    ),
    _zendesk("user.created", "e5", "2025-01-09T08:00:00Z", {"id": "11", "email": "bob@y.com"}),
    # After the cutoff: not in D's batch.
    _zendesk("ticket.created", "e6", "2025-01-11T00:00:00Z", {"id": "102", "requester_id": "11"}),
]


PRODUCTS = [
    {
        "product_id": 1,
        "sku": "MUG",
        "name": "Mug",
        "category": "home",
        "price": Decimal("5.00"),
        "created_at": T(2024, 12, 1),
        "updated_at": T(2024, 12, 1),
    },
    {
        "product_id": 2,
        "sku": "TEE",
        "name": "Tee",
        "category": "fashion",
        "price": Decimal("10.00"),
        "created_at": T(2024, 12, 1),
        "updated_at": T(2024, 12, 1),
    },
]


def _item(item_id: int, order_id: int, product_id: int, quantity: int) -> dict[str, object]:
    return {
        "order_item_id": item_id,
        "order_id": order_id,
        "product_id": product_id,
        "quantity": quantity,
        "unit_price": Decimal("5.00"),
        "updated_at": T(2025, 1, 2),
    }


# Alice: 3 mugs (home) against 2 tees (fashion) in orders that count; the cancelled order's
# 10 tees do not count.
ORDER_ITEMS = [_item(1, 1, 1, 3), _item(2, 5, 2, 1), _item(3, 4, 2, 1), _item(4, 2, 2, 10)]


def _message(
    kind: str, message_id: str, cookie: str, at: str, **fields: object
) -> dict[str, object]:
    return {"type": kind, "messageId": message_id, "anonymousId": cookie, "timestamp": at, **fields}


# Alice's cookie: logs in, views, adds, buys; a second session an hour later; then an event
# after the cutoff. A stranger's cookie never identifies: no person.
CLICKSTREAM = [
    _message("identify", "m1", "c-a", "2025-01-09T10:00:00Z", userId="1"),
    _message("page", "m2", "c-a", "2025-01-09T10:05:00Z", userId="1"),
    _message("track", "m3", "c-a", "2025-01-09T10:06:00Z", userId="1", event="Product Viewed"),
    _message("track", "m4", "c-a", "2025-01-09T10:07:00Z", userId="1", event="Product Added"),
    _message("track", "m5", "c-a", "2025-01-09T10:08:00Z", userId="1", event="Order Completed"),
    _message("page", "m6", "c-a", "2025-01-09T11:00:00Z", userId="1"),
    _message("page", "m7", "c-a", "2025-01-11T01:00:00Z", userId="1"),
    _message("page", "m8", "c-z", "2025-01-09T12:00:00Z"),
]


def build(tmp_path: Path, extra_env: dict[str, str] | None = None) -> Settings:
    db = tmp_path / "shop.db"
    engine = create_engine(f"sqlite:///{db}")
    shop_db.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(shop_db.customers), _customers())
        conn.execute(insert(shop_db.orders), ORDERS)
        conn.execute(insert(shop_db.products), PRODUCTS)
        conn.execute(insert(shop_db.order_items), ORDER_ITEMS)
    engine.dispose()
    with open_log(f"local://{tmp_path / 'log'}", 2) as log:
        log.append("clickstream", [(m["anonymousId"], json.dumps(m).encode()) for m in CLICKSTREAM])
    mailchimp = tmp_path / "mailchimp"
    mailchimp.mkdir()
    (mailchimp / "members_export.csv").write_text(MEMBERS_CSV)
    (mailchimp / "email_activity.jsonl").write_text("\n".join(json.dumps(a) for a in ACTIVITY))
    zendesk = tmp_path / "zendesk.jsonl"
    lines = [json.dumps(z) for z in ZENDESK] + ["{not json"]
    zendesk.write_text("\n".join(lines) + "\n")
    env = {
        "C360_LAKE_URL": str(tmp_path / "lake"),
        "C360_SERVING_URL": f"sqlite:///{tmp_path / 'serving.db'}",
        "C360_SOURCES_MYSQL_URL": f"sqlite:///{db}",
        "C360_SOURCES_MAILCHIMP_DIR": str(mailchimp),
        "C360_SOURCES_ZENDESK_PATH": str(zendesk),
        "C360_LOG_URL": f"local://{tmp_path / 'log'}",
        "C360_LOG_PARTITIONS": "2",
    }
    return load_config(environ={**env, **(extra_env or {})}).settings
