"""Daily ingest (walking skeleton): the sources into the lake's raw zone for date D.

- shop (orders DB): a full snapshot of each table into ``raw/shop/<table>/dt=D``;
- mailchimp: the CSV audience export and the email activity into ``raw/mailchimp/…/dt=D``;
- zendesk: webhook events before the cutoff, partitioned by event date (rewritten idempotently);
  malformed lines go to ``raw/zendesk/events_quarantine/dt=D`` with the reason.
"""

from __future__ import annotations

import datetime as dt
import gzip
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

import pyarrow as pa

from c360.batch.cutoff import cutoff
from c360.config import Settings
from c360.contracts import shop_db
from c360.lake import Lake
from c360.sources import mailchimp, mysql, zendesk
from c360.sources.arrow_types import arrow_schema

QUARANTINE_SCHEMA = pa.schema([("line", pa.int64()), ("reason", pa.string()), ("raw", pa.string())])


@dataclass(frozen=True)
class TableReport:
    source: str
    table: str
    partitions: int
    rows: int
    quarantined: int = 0


def _open_lines(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def ingest_shop(settings: Settings, lake: Lake, day: dt.date) -> list[TableReport]:
    engine = mysql.connect(settings.sources.mysql.url)
    reports = []
    try:
        for table in shop_db.TABLES:
            manifest = lake.write_partition(
                "shop",
                table.name,
                day,
                mysql.extract_table(engine, table),
                schema=arrow_schema(table),
            )
            reports.append(TableReport("shop", table.name, 1, manifest.rows))
    finally:
        engine.dispose()
    return reports


def ingest_mailchimp(settings: Settings, lake: Lake, day: dt.date) -> list[TableReport]:
    folder = Path(settings.sources.mailchimp.dir)
    reports = []
    for table, data in (
        ("members", mailchimp.read_members_export(folder)),
        ("email_activity", mailchimp.read_email_activity(folder)),
    ):
        manifest = lake.write_partition("mailchimp", table, day, data)
        reports.append(TableReport("mailchimp", table, 1, manifest.rows))
    return reports


def ingest_zendesk(settings: Settings, lake: Lake, day: dt.date) -> list[TableReport]:
    path = Path(settings.sources.zendesk.path)
    end = cutoff(day).replace(tzinfo=dt.UTC)
    by_day: dict[dt.date, list[pa.RecordBatch]] = defaultdict(list)
    rejected: list[zendesk.Rejected] = []
    with _open_lines(path) as lines:
        for batch in zendesk.read_events(lines, rejected):
            table = pa.Table.from_batches([batch])
            for event_day, part in _split_by_day(table, end):
                by_day[event_day].append(part)
    rows = 0
    for event_day, batches in sorted(by_day.items()):
        rows += lake.write_partition(
            "zendesk", "events", event_day, pa.Table.from_batches(batches)
        ).rows
    if rejected:
        quarantine = pa.Table.from_pylist(
            [
                {"line": r.line, "reason": r.reason, "raw": r.raw.decode(errors="replace")}
                for r in rejected
            ],
            schema=QUARANTINE_SCHEMA,
        )
        lake.write_partition("zendesk", "events_quarantine", day, quarantine)
    return [TableReport("zendesk", "events", len(by_day), rows, len(rejected))]


def _split_by_day(table: pa.Table, end: dt.datetime) -> Iterator[tuple[dt.date, pa.RecordBatch]]:
    import pyarrow.compute as pc

    table = table.filter(pc.less(table["time"], pa.scalar(end, pa.timestamp("us", tz="UTC"))))
    days = pc.cast(table["time"], pa.date32())
    for event_day in pc.unique(days).to_pylist():
        part = table.filter(pc.equal(days, pa.scalar(event_day, pa.date32())))
        yield from ((event_day, b) for b in part.to_batches())


def ingest_all(settings: Settings, day: dt.date) -> list[TableReport]:
    lake = Lake(settings.lake.url)
    return [
        *ingest_shop(settings, lake, day),
        *ingest_mailchimp(settings, lake, day),
        *ingest_zendesk(settings, lake, day),
    ]
