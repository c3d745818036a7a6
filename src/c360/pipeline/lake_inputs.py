"""The lake tables a batch run for date D reads, as engine inputs.

Three shapes, one rule each: a *snapshot* table is read from its latest partition on or before
D; an *event* table from every partition up to D; a *versioned* table (incremental extracts and
re-read windows overlap) from every partition up to D, keeping each key's latest version.
Every input view carries ``dt``, its partition date.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from c360.contracts.compute import LakeInput
from c360.contracts.lake import (
    ARCHIVE_SCHEMA,
    CUSTOMERS_SCHEMA,
    MAILCHIMP_ACTIVITY_SCHEMA,
    MAILCHIMP_MEMBERS_SCHEMA,
    ORDER_ITEMS_SCHEMA,
    ORDERS_SCHEMA,
    PRODUCTS_SCHEMA,
    ZENDESK_EVENT_SCHEMA,
)
from c360.lake import Lake


def _view_name(source: str, table: str) -> str:
    return table if source in ("shop", "identity", "profile") else f"{source}_{table}"


def _files(lake: Lake, source: str, table: str, day: dt.date, zone: str) -> str:
    return lake.url(f"{lake.partition_path(source, table, day, zone)}/*.parquet")


def snapshot(
    lake: Lake, source: str, table: str, day: dt.date, schema: pa.Schema, zone: str = "raw"
) -> LakeInput:
    """The latest full snapshot of a table on or before ``day``."""
    days = [d for d in lake.partitions(source, table, zone) if d <= day]
    urls = (_files(lake, source, table, days[-1], zone),) if days else ()
    return LakeInput(_view_name(source, table), urls, schema)


def partition(
    lake: Lake, name: str, source: str, table: str, day: dt.date, schema: pa.Schema, zone: str
) -> LakeInput:
    """One partition of a table, as the view ``name`` (the partition must exist)."""
    return LakeInput(name, (_files(lake, source, table, day, zone),), schema)


def latest_before(
    lake: Lake, name: str, source: str, table: str, day: dt.date, schema: pa.Schema, zone: str
) -> LakeInput:
    """The latest partition of a table strictly before ``day`` (empty if none), as ``name``."""
    days = [d for d in lake.partitions(source, table, zone) if d < day]
    urls = (_files(lake, source, table, days[-1], zone),) if days else ()
    return LakeInput(name, urls, schema)


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


def raw_inputs(lake: Lake, day: dt.date) -> list[LakeInput]:
    """The raw zone as of D: what identity and features are computed from."""
    return [
        snapshot(lake, "shop", "customers", day, CUSTOMERS_SCHEMA),
        snapshot(lake, "shop", "products", day, PRODUCTS_SCHEMA),
        versions(lake, "shop", "orders", day, ORDERS_SCHEMA),
        versions(lake, "shop", "order_items", day, ORDER_ITEMS_SCHEMA),
        snapshot(lake, "mailchimp", "members", day, MAILCHIMP_MEMBERS_SCHEMA),
        versions(lake, "mailchimp", "email_activity", day, MAILCHIMP_ACTIVITY_SCHEMA),
        events(lake, "zendesk", "events", day, ZENDESK_EVENT_SCHEMA),
        events(lake, "events", "clickstream", day, ARCHIVE_SCHEMA),
    ]
