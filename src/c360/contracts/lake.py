"""Arrow schemas of the lake's raw zone: what ingestion writes and the batch layer reads.

The raw zone keeps each source's shape (``raw/<source>/<table>/dt=D``); these are the schemas
both sides agree on. Identity's stage outputs are in :mod:`c360.contracts.identity`, the batch
profile's columns in :mod:`c360.batch.catalogue`.
"""

from __future__ import annotations

import pyarrow as pa

from c360.contracts import shop_db
from c360.contracts.arrow_types import arrow_schema

# Rows a source sent that cannot be conformed, with the reason (``quarantine/<source>/<table>``).
QUARANTINE_SCHEMA = pa.schema([("reason", pa.string()), ("record", pa.string())])

# --- the orders database (snapshots of customers and products, incremental orders) ----------
CUSTOMERS_SCHEMA = arrow_schema(shop_db.customers)
PRODUCTS_SCHEMA = arrow_schema(shop_db.products)
ORDERS_SCHEMA = arrow_schema(shop_db.orders)
ORDER_ITEMS_SCHEMA = arrow_schema(shop_db.order_items)

# --- the event archive: the event log's records by event date (``raw/events/<topic>``) ------
# The raw payload is kept whole; the few fields every reader needs are lifted into columns so
# batch SQL stays portable (no JSON functions, which differ between engines). ``identifiers``:
# what the payload names beyond its own columns, for erasure (c360.privacy.documents.lift: its
# email addresses anywhere, an alias's previousId, phones; lower-cased, distinct, null when
# none), so an erasure reads this small column rather than every payload. Partitions archived
# before it existed lack it (erasure then searches their payloads).
ARCHIVE_SCHEMA = pa.schema(
    [
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("key", pa.string()),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("appended_at", pa.timestamp("us", tz="UTC")),
        ("type", pa.string()),
        ("event", pa.string()),
        ("message_id", pa.string()),
        ("anonymous_id", pa.string()),
        ("user_id", pa.string()),
        ("payload", pa.string()),
        ("identifiers", pa.list_(pa.string())),
    ]
)
ARCHIVE_LIFTED = "identifiers"

# --- Zendesk: webhook events (``raw/zendesk/events``) ---------------------------------------
ZENDESK_EVENT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("type", pa.string()),
        ("time", pa.timestamp("us", tz="UTC")),
        ("ticket_id", pa.string()),
        ("user_id", pa.string()),
        ("requester_id", pa.string()),
        ("status", pa.string()),
        ("email", pa.string()),
        ("name", pa.string()),
        ("payload", pa.string()),
    ]
)

# --- Mailchimp: audience members and email activity ------------------------------------------
# The CSV audience export's columns, snake-cased ("Email Address" -> email_address).
MAILCHIMP_EXPORT_COLUMNS = (
    "email_address",
    "first_name",
    "last_name",
    "address",
    "phone_number",
    "birthday",
    "member_rating",
    "optin_time",
    "optin_ip",
    "confirm_time",
    "confirm_ip",
    "latitude",
    "longitude",
    "gmtoff",
    "dstoff",
    "timezone",
    "cc",
    "region",
    "last_changed",
    "leid",
    "euid",
    "notes",
    "tags",
)

# Members as the Marketing API gives them (the export's columns plus the API's own).
MAILCHIMP_MEMBERS_API_SCHEMA = pa.schema(
    [
        *((name, pa.string()) for name in MAILCHIMP_EXPORT_COLUMNS),
        ("id", pa.string()),
        ("unique_email_id", pa.string()),
        ("status", pa.string()),
        ("list_id", pa.string()),
        ("merge_fields", pa.string()),
        ("stats_avg_open_rate", pa.float64()),
        ("stats_avg_click_rate", pa.float64()),
        ("stats_ecommerce_total_revenue", pa.float64()),
        ("stats_ecommerce_number_of_orders", pa.int64()),
        ("stats_ecommerce_currency_code", pa.string()),
    ]
)

# The members' columns the batch reads, from either shape (identity takes names, address,
# phone, birthday and country); a column an export lacks reads as NULL.
MAILCHIMP_MEMBERS_SCHEMA = pa.schema(
    [
        (name, pa.string())
        for name in (
            "email_address",
            "euid",
            "status",
            "first_name",
            "last_name",
            "address",  # the ADDRESS merge field as the export writes it (parts, two spaces)
            "phone_number",
            "birthday",
            "cc",
            "optin_time",
        )
    ]
)

MAILCHIMP_ACTIVITY_SCHEMA = pa.schema(
    [
        ("campaign_id", pa.string()),
        ("list_id", pa.string()),
        ("email_id", pa.string()),
        ("email_address", pa.string()),
        (
            "activity",
            pa.list_(
                pa.struct(
                    [
                        ("action", pa.string()),
                        ("timestamp", pa.string()),
                        ("url", pa.string()),
                        ("ip", pa.string()),
                    ]
                )
            ),
        ),
    ]
)
