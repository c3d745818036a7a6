"""Zendesk webhook events into the lake, partitioned by event date, up to the cutoff of D.

Every event date up to D is rewritten (idempotent); malformed lines go to the quarantine zone
with the reason. (The speed-layer issue moves live events onto the event log, and the archive
step then copies them from there.)
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from c360.config import ZendeskSourceSettings
from c360.contracts.cutoff import cutoff
from c360.ingest.conform import quarantine_table
from c360.ingest.report import TableReport
from c360.lake import Lake
from c360.sources import zendesk
from c360.sources.files import open_bytes

SOURCE = "zendesk"


def _split_by_day(table: pa.Table, end: dt.datetime) -> Iterator[tuple[dt.date, pa.RecordBatch]]:
    table = table.filter(pc.less(table["time"], pa.scalar(end, pa.timestamp("us", tz="UTC"))))
    days = pc.cast(table["time"], pa.date32())
    for event_day in pc.unique(days).to_pylist():
        part = table.filter(pc.equal(days, pa.scalar(event_day, pa.date32())))
        yield from ((event_day, b) for b in part.to_batches())


def ingest_zendesk(settings: ZendeskSourceSettings, lake: Lake, day: dt.date) -> list[TableReport]:
    started = time.perf_counter()
    end = cutoff(day).replace(tzinfo=dt.UTC)
    by_day: dict[dt.date, list[pa.RecordBatch]] = defaultdict(list)
    rejected: list[zendesk.Rejected] = []
    with open_bytes(Path(settings.path), "sources.zendesk.path") as lines:
        for batch in zendesk.read_events(lines, rejected):
            for event_day, part in _split_by_day(pa.Table.from_batches([batch]), end):
                by_day[event_day].append(part)
    rows = size = 0
    for event_day, batches in sorted(by_day.items()):
        manifest = lake.write_partition(SOURCE, "events", event_day, pa.Table.from_batches(batches))
        rows, size = rows + manifest.rows, size + manifest.bytes
    lake.write_quarantine(
        SOURCE,
        "events",
        day,
        quarantine_table(
            [
                {"reason": f"line {r.line}: {r.reason}", "record": r.raw.decode(errors="replace")}
                for r in rejected
            ]
        ),
    )
    return [
        TableReport(
            SOURCE,
            "events",
            rows,
            size,
            time.perf_counter() - started,
            partitions=len(by_day),
            quarantined=len(rejected),
        )
    ]
