"""Backfill the event archive from a file: history that never went through the event log.

``c360 ingest backfill FILE --topic clickstream`` reads a JSON-lines file (gzip or plain: a
Segment export, or the simulator's clickstream) with DuckDB (an in-process session of
:mod:`c360.engines.duckdb`, bounded by ``MEMORY_LIMIT``), without a Python object per line, as a
stream of batches in file order. Rows are buffered per event date and each day is merged
into ``raw/events/<topic>/dt=<event date>/`` exactly like the archive does (a time without a
zone is taken as UTC) once the file has moved past it: a day not seen for
``SETTLE_BATCHES`` batches, or the oldest days when more than ``MAX_BUFFERED_ROWS`` are held.
A time-ordered file (an export, the simulator's day-by-day output) therefore needs memory for
a few days, whatever its size; an unordered one stays correct, because a day that shows up
again is merged into its partition again. A line's identity is (partition -1, a 62-bit hash of
the line), so running the same file again adds nothing and an exact duplicate line is one
event. Lines without a readable event time go to quarantine.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from c360.contracts.lake import QUARANTINE_SCHEMA
from c360.engines.duckdb import DuckDBSession
from c360.ingest.archive import EVENT_TIME_FIELD, SOURCE, UNLIFTED_SCHEMA, merge
from c360.ingest.report import TableReport
from c360.lake import Lake

FILE_PARTITION = -1  # not a log partition: the record came from a file
MEMORY_LIMIT = "2GB"
BATCH_ROWS = 250_000
SETTLE_BATCHES = 8  # a day absent from this many consecutive batches is taken as complete
MAX_BUFFERED_ROWS = 3_000_000  # beyond this, the least recently seen days are merged early
UNREADABLE = "unreadable"


def _split_query(path: Path, time_field: str) -> str:
    source = str(path).replace("'", "''")
    return f"""
        SELECT CAST({FILE_PARTITION} AS INTEGER) AS partition,
               CAST(md5_number(line) % 4611686018427387903 AS BIGINT) AS "offset",
               CAST(NULL AS VARCHAR) AS key, event_time,
               CAST(now() AS TIMESTAMPTZ) AS appended_at,
               CASE WHEN event_time IS NOT NULL THEN json_extract_string(line, '$.type') END
                   AS type,
               CASE WHEN event_time IS NOT NULL THEN json_extract_string(line, '$.event') END
                   AS event,
               CASE WHEN event_time IS NOT NULL THEN coalesce(
                   json_extract_string(line, '$.messageId'), json_extract_string(line, '$.id'))
               END AS message_id,
               CASE WHEN event_time IS NOT NULL THEN json_extract_string(line, '$.anonymousId')
               END AS anonymous_id,
               CASE WHEN event_time IS NOT NULL THEN json_extract_string(line, '$.userId') END
                   AS user_id,
               line AS payload,
               coalesce(CAST(CAST(event_time AS DATE) AS VARCHAR), '{UNREADABLE}') AS event_date
        FROM (
            SELECT column0 AS line,
                   CASE WHEN json_valid(column0) THEN TRY_CAST(
                       json_extract_string(column0, '$.{time_field}') AS TIMESTAMPTZ) END
                       AS event_time
            FROM read_csv('{source}', columns = {{'column0': 'VARCHAR'}}, header = false,
                          delim = '\\x1f', quote = '', escape = '', auto_detect = false)
            WHERE trim(column0) <> ''
        ) lines
    """


@dataclass
class _Day:
    batches: list[pa.RecordBatch] = field(default_factory=list)
    rows: int = 0
    last_seen: int = 0


@dataclass
class _DayBuffers:
    """Rows held per event date until the file has moved past that date."""

    lake: Lake
    topic: str
    report_day: dt.date
    days: dict[str, _Day] = field(default_factory=dict)
    added: int = 0
    rejected: int = 0
    merged_days: set[str] = field(default_factory=set)
    unreadable: list[pa.Array] = field(default_factory=list)  # quarantined once, at the end

    def add(self, batch: pa.RecordBatch, index: int) -> None:
        dates = batch.column("event_date")
        for date in pc.unique(dates).to_pylist():
            rows = batch.filter(pc.equal(dates, date))
            if date == UNREADABLE:
                self.unreadable.append(rows.column("payload"))
                continue
            day = self.days.setdefault(date, _Day())
            day.batches.append(rows)
            day.rows += rows.num_rows
            day.last_seen = index
        self._flush(
            [d for d, held in self.days.items() if index - held.last_seen >= SETTLE_BATCHES]
        )
        held_rows = sum(held.rows for held in self.days.values())
        for date in sorted(self.days, key=lambda d: self.days[d].last_seen):
            if held_rows <= MAX_BUFFERED_ROWS:
                break
            held_rows -= self.days[date].rows
            self._flush([date])

    def finish(self) -> None:
        self._flush(list(self.days))
        if self.unreadable:
            self._quarantine(pa.chunked_array(self.unreadable, pa.string()))

    def _flush(self, dates: list[str]) -> None:
        for date in sorted(dates):
            table = pa.Table.from_batches(self.days.pop(date).batches)
            self.added += merge(
                self.lake, self.topic, dt.date.fromisoformat(date), _distinct(table)
            )
            self.merged_days.add(date)

    def _quarantine(self, lines: pa.ChunkedArray) -> None:
        self.rejected = len(lines)
        reasons = pa.array([f"{self.topic}: no readable event time"] * len(lines), pa.string())
        self.lake.write_quarantine(
            SOURCE,
            f"{self.topic}_backfill",
            self.report_day,
            pa.Table.from_arrays([reasons, lines], schema=QUARANTINE_SCHEMA),
        )


def _distinct(table: pa.Table) -> pa.Table:
    """One row per line hash: an exact duplicate line is one event."""
    table = table.select(UNLIFTED_SCHEMA.names).cast(UNLIFTED_SCHEMA).sort_by("offset")
    offsets = table.column("offset").to_numpy()
    if len(offsets) < 2:
        return table
    keep = np.concatenate(([True], offsets[1:] != offsets[:-1]))
    return table if keep.all() else table.filter(pa.array(keep))


def backfill_file(lake: Lake, path: Path, topic: str, day: dt.date) -> TableReport:
    started = time.perf_counter()
    buffers = _DayBuffers(lake, topic, day)
    with DuckDBSession(memory_limit=MEMORY_LIMIT) as session:
        query = _split_query(path, EVENT_TIME_FIELD.get(topic, "timestamp"))
        for index, batch in enumerate(session.batches(query, BATCH_ROWS)):
            buffers.add(batch, index)
        buffers.finish()
    return TableReport(
        SOURCE,
        topic,
        buffers.added,
        seconds=time.perf_counter() - started,
        partitions=len(buffers.merged_days),
        quarantined=buffers.rejected,
    )
