"""The daily batch run (walking skeleton): ingest → identity + features → snapshot → publish."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

import pyarrow as pa

from c360.batch import features
from c360.batch.cutoff import cutoff
from c360.config import Settings
from c360.contracts import shop_db
from c360.engines import LakeInput, Step, open_engine
from c360.ingest.report import TableReport
from c360.ingest.run import ingest
from c360.lake import Lake
from c360.sources import mailchimp, zendesk
from c360.sources.arrow_types import arrow_schema
from c360.stores import open_store

MEMBERS_SCHEMA = pa.schema([("email_address", pa.string()), ("euid", pa.string())])


@dataclass(frozen=True)
class BatchResult:
    batch_date: dt.date
    ingested: list[TableReport]
    persons: int
    identifiers: int
    seconds: float


def _snapshot(lake: Lake, source: str, table: str, day: dt.date, schema: pa.Schema) -> LakeInput:
    """The latest full snapshot of a table on or before ``day``."""
    name = table if source == "shop" else f"{source}_{table}"
    days = [d for d in lake.partitions(source, table) if d <= day]
    if not days:
        return LakeInput(name, (), schema)
    path = f"{lake.partition_path(source, table, days[-1])}/*.parquet"
    return LakeInput(name, (_url(lake, path),), schema)


def _url(lake: Lake, path: str) -> str:
    return path if lake.is_local else lake.fs.unstrip_protocol(path)


def _events(lake: Lake, source: str, table: str, day: dt.date, schema: pa.Schema) -> LakeInput:
    """Every event partition on or before ``day``."""
    paths = tuple(
        _url(lake, f"{lake.partition_path(source, table, d)}/*.parquet")
        for d in lake.partitions(source, table)
        if d <= day
    )
    return LakeInput(f"{source}_{table}", paths, schema)


def _versions(lake: Lake, source: str, table: str, day: dt.date, schema: pa.Schema) -> LakeInput:
    """Every version of every row up to ``day``, as ``<name>_versions``."""
    every = _events(lake, source, table, day, schema)
    name = table if source == "shop" else f"{source}_{table}"
    return LakeInput(f"{name}_versions", every.urls, schema)


def _latest_versions(
    name: str, schema: pa.Schema, key: tuple[str, ...], newest: tuple[str, ...]
) -> Step:
    """Incremental extracts overlap (look-back, re-read windows): keep each key's last version."""
    columns = ", ".join(schema.names)
    return Step(
        name,
        f"""
        SELECT {columns} FROM (
            SELECT *, row_number() OVER (
                PARTITION BY {", ".join(key)} ORDER BY {" DESC, ".join(newest)} DESC
            ) AS version_rank
            FROM {name}_versions
        ) WHERE version_rank = 1
        """,
    )


ORDERS_SCHEMA = arrow_schema(shop_db.orders)
VERSIONED = (
    _latest_versions("orders", ORDERS_SCHEMA, ("order_id",), ("updated_at", "dt")),
    _latest_versions(
        "mailchimp_email_activity", mailchimp.ACTIVITY_SCHEMA, ("campaign_id", "email_id"), ("dt",)
    ),
)


def inputs(lake: Lake, day: dt.date) -> list[LakeInput]:
    return [
        _snapshot(lake, "shop", "customers", day, arrow_schema(shop_db.customers)),
        _versions(lake, "shop", "orders", day, ORDERS_SCHEMA),
        _snapshot(lake, "mailchimp", "members", day, MEMBERS_SCHEMA),
        _versions(lake, "mailchimp", "email_activity", day, mailchimp.ACTIVITY_SCHEMA),
        _events(lake, "zendesk", "events", day, zendesk.EVENT_SCHEMA),
    ]


def run_batch(settings: Settings, day: dt.date, *, run_ingest: bool = True) -> BatchResult:
    started = time.perf_counter()
    ingested = ingest(settings, day) if run_ingest else []
    lake = Lake(settings.lake.url)
    engine = open_engine(settings.compute)
    try:
        steps = [*VERSIONED, *features.steps(day, cutoff(day))]
        tables = engine.run(inputs(lake, day), steps, features.OUTPUTS)
    finally:
        engine.close()
    lake.write_partition("profile", "batch_profile", day, tables["batch_profile"], zone="features")
    store = open_store(settings.serving.url)
    try:
        store.migrate()
        store.publish_batch(day, tables)
    finally:
        store.dispose()
    return BatchResult(
        batch_date=day,
        ingested=ingested,
        persons=tables["person"].num_rows,
        identifiers=tables["identity_map"].num_rows,
        seconds=time.perf_counter() - started,
    )
