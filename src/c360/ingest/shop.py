"""The orders database into the lake: dimension snapshots and incremental fact extracts.

- ``customers`` and ``products``: a full snapshot per run into ``raw/shop/<table>/dt=D``.
- ``orders`` and ``order_items``: the rows with ``updated_at`` in
  [high-water mark - look-back, cutoff(D)). The high-water mark is the one recorded in the
  manifest of the table's latest partition before D, so a failed run leaves it where it was and
  re-running D repeats the same extract. The look-back re-reads rows whose transaction
  committed late; readers keep the last version of each primary key
  (:func:`c360.lake.current_version_sql`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from c360.config import MySQLSourceSettings
from c360.contracts.cutoff import cutoff
from c360.ingest.conform import Rule, above_ceiling, conform, negative, quarantine_table
from c360.ingest.report import TableReport
from c360.lake import Lake
from c360.sources import mysql

log = logging.getLogger(__name__)
SOURCE = "shop"


@dataclass(frozen=True)
class ShopTable:
    name: str
    incremental_on: str | None = None  # None: full snapshot
    rules: tuple[Rule, ...] = ()


def _amount(column: str) -> tuple[Rule, Rule]:
    """A plausible amount (:mod:`c360.contracts.money`): from 0 to the ceiling."""
    return negative(column), above_ceiling(column)


TABLES = (
    ShopTable("customers"),
    ShopTable("products", rules=_amount("price")),
    ShopTable("orders", "updated_at", (*_amount("subtotal"), *_amount("total"))),
    ShopTable("order_items", "updated_at", (negative("quantity"), *_amount("unit_price"))),
)


def _previous_hwm(lake: Lake, table: str, day: dt.date) -> dt.datetime | None:
    earlier = [d for d in lake.partitions(SOURCE, table) if d < day]
    if not earlier:
        return None
    mark = lake.manifest(SOURCE, table, earlier[-1]).get("high_water_mark")
    return dt.datetime.fromisoformat(mark) if mark else None


def _window(lake: Lake, spec: ShopTable, day: dt.date, lookback: dt.timedelta) -> mysql.Window:
    end = cutoff(day)
    if spec.incremental_on is None:
        return mysql.Window("updated_at", None, None)
    mark = _previous_hwm(lake, spec.name, day)
    return mysql.Window(spec.incremental_on, None if mark is None else mark - lookback, end)


class _Extract:
    """Conformed batches of one table, keeping the rejects and the high-water mark aside."""

    def __init__(
        self,
        raw: Iterator[pa.RecordBatch],
        schema: pa.Schema,
        spec: ShopTable,
        primary_key: Sequence[str],
    ) -> None:
        self.raw, self.schema, self.spec, self.primary_key = raw, schema, spec, primary_key
        self.rejected: list[dict[str, str]] = []
        self.high_water_mark: dt.datetime | None = None

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        for raw in self.raw:
            result = conform(raw, self.schema, self.primary_key, self.spec.rules)
            self.rejected.extend(result.rejected)
            if self.spec.incremental_on and result.batch.num_rows:
                latest = pc.max(result.batch.column(self.spec.incremental_on)).as_py()
                if latest is not None:
                    latest = latest.replace(tzinfo=None)
                    self.high_water_mark = max(filter(None, (self.high_water_mark, latest)))
            yield result.batch


def ingest_table(
    settings: MySQLSourceSettings, lake: Lake, spec: ShopTable, day: dt.date
) -> TableReport:
    started = time.perf_counter()
    engine = mysql.connect(settings.url)
    try:
        schema, primary_key = mysql.reflect_schema(engine, spec.name)
    finally:
        engine.dispose()
    window = _window(lake, spec, day, dt.timedelta(hours=settings.lookback_hours))
    bounded = window if spec.incremental_on else None
    extract = _Extract(
        mysql.extract(settings.url, spec.name, schema, bounded), schema, spec, primary_key
    )
    previous = _previous_hwm(lake, spec.name, day) if spec.incremental_on else None
    # Written into the manifest after the data: the mark covers exactly what was committed.
    manifest = lake.write_partition(
        SOURCE,
        spec.name,
        day,
        extract,
        schema=schema,
        high_water_mark=lambda: _iso(extract.high_water_mark or previous),
    )
    lake.write_quarantine(SOURCE, spec.name, day, quarantine_table(extract.rejected))
    return TableReport(
        source=SOURCE,
        table=spec.name,
        rows=manifest.rows,
        bytes=manifest.bytes,
        seconds=time.perf_counter() - started,
        quarantined=len(extract.rejected),
        added_columns=manifest.added_columns,
        high_water_mark=manifest.high_water_mark,
    )


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def ingest_shop(
    settings: MySQLSourceSettings, lake: Lake, day: dt.date, tables: Sequence[str] | None = None
) -> list[TableReport]:
    chosen = [t for t in TABLES if tables is None or t.name in tables]
    return [ingest_table(settings, lake, spec, day) for spec in chosen]
