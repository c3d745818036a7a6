"""The lake tables a batch run for date D reads, as engine inputs.

Three shapes, one rule each: a *snapshot* table is read from its latest partition on or before
D; an *event* table from every partition up to D; a *versioned* table (incremental extracts and
re-read windows overlap) from every partition up to D, keeping each key's latest version.
Every input view carries ``dt``, its partition date.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from c360.contracts import shop_db
from c360.engines import LakeInput, Step
from c360.ingest.archive import ARCHIVE_SCHEMA
from c360.lake import Lake
from c360.sources import mailchimp, zendesk
from c360.sources.arrow_types import arrow_schema

# The export's columns the batch reads (identity takes names, phone, birthday and country).
MEMBERS_SCHEMA = pa.schema(
    [
        (name, pa.string())
        for name in (
            "email_address",
            "euid",
            "status",
            "first_name",
            "last_name",
            "phone_number",
            "birthday",
            "cc",
            "optin_time",
        )
    ]
)
ORDERS_SCHEMA = arrow_schema(shop_db.orders)
ORDER_ITEMS_SCHEMA = arrow_schema(shop_db.order_items)
CUSTOMERS_SCHEMA = arrow_schema(shop_db.customers)
PRODUCTS_SCHEMA = arrow_schema(shop_db.products)


def _view_name(source: str, table: str) -> str:
    return table if source in ("shop", "identity", "profile") else f"{source}_{table}"


def _url(lake: Lake, path: str) -> str:
    return path if lake.is_local else lake.fs.unstrip_protocol(path)


def _files(lake: Lake, source: str, table: str, day: dt.date, zone: str) -> str:
    return _url(lake, f"{lake.partition_path(source, table, day, zone)}/*.parquet")


def snapshot(
    lake: Lake, source: str, table: str, day: dt.date, schema: pa.Schema, zone: str = "raw"
) -> LakeInput:
    """The latest full snapshot of a table on or before ``day``."""
    days = [d for d in lake.partitions(source, table, zone) if d <= day]
    urls = (_files(lake, source, table, days[-1], zone),) if days else ()
    return LakeInput(_view_name(source, table), urls, schema)


def events(lake: Lake, source: str, table: str, day: dt.date, schema: pa.Schema) -> LakeInput:
    """Every partition on or before ``day``."""
    urls = tuple(
        _files(lake, source, table, d, "raw") for d in lake.partitions(source, table) if d <= day
    )
    return LakeInput(_view_name(source, table), urls, schema)


def versions(lake: Lake, source: str, table: str, day: dt.date, schema: pa.Schema) -> LakeInput:
    """Every version of every row up to ``day``, as ``<name>_versions``."""
    every = events(lake, source, table, day, schema)
    return LakeInput(f"{every.name}_versions", every.urls, schema)


def latest_versions(
    name: str, schema: pa.Schema, key: tuple[str, ...], newest: tuple[str, ...]
) -> Step:
    """Keep each key's last version of ``<name>_versions`` as ``name``."""
    columns = ", ".join(schema.names)
    order = ", ".join(f"{column} DESC" for column in newest)
    return Step(
        name,
        f"""
        SELECT {columns} FROM (
            SELECT *, row_number() OVER (PARTITION BY {", ".join(key)} ORDER BY {order})
                AS version_rank
            FROM {name}_versions
        ) WHERE version_rank = 1
        """,
    )


LATEST_ORDERS = latest_versions("orders", ORDERS_SCHEMA, ("order_id",), ("updated_at", "dt"))
LATEST_ORDER_ITEMS = latest_versions(
    "order_items", ORDER_ITEMS_SCHEMA, ("order_item_id",), ("updated_at", "dt")
)
LATEST_EMAIL_ACTIVITY = latest_versions(
    "mailchimp_email_activity", mailchimp.ACTIVITY_SCHEMA, ("campaign_id", "email_id"), ("dt",)
)


def raw_inputs(lake: Lake, day: dt.date) -> list[LakeInput]:
    """The raw zone as of D: what identity and features are computed from."""
    return [
        snapshot(lake, "shop", "customers", day, CUSTOMERS_SCHEMA),
        snapshot(lake, "shop", "products", day, PRODUCTS_SCHEMA),
        versions(lake, "shop", "orders", day, ORDERS_SCHEMA),
        versions(lake, "shop", "order_items", day, ORDER_ITEMS_SCHEMA),
        snapshot(lake, "mailchimp", "members", day, MEMBERS_SCHEMA),
        versions(lake, "mailchimp", "email_activity", day, mailchimp.ACTIVITY_SCHEMA),
        events(lake, "zendesk", "events", day, zendesk.EVENT_SCHEMA),
        events(lake, "events", "clickstream", day, ARCHIVE_SCHEMA),
    ]
