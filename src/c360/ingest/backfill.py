"""Backfill the event archive from a file: history that never went through the event log.

``c360 ingest backfill FILE --topic clickstream`` reads a JSON-lines file (gzip or plain: a
Segment export, or the simulator's clickstream) with DuckDB — in parallel, without building a
Python object per line — and merges its events into ``raw/events/<topic>/dt=<event date>/``
exactly like the archive does (a time without a zone is taken as UTC). A line's identity is
(partition -1, its line number), so running the same file again adds nothing. Lines without a
readable event time go to quarantine.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from c360.ingest.archive import ARCHIVE_SCHEMA, EVENT_TIME_FIELD, SOURCE, merge
from c360.ingest.conform import quarantine_table
from c360.ingest.report import TableReport
from c360.lake import Lake

FILE_PARTITION = -1  # not a log partition: the record came from a file


def _lines_query(path: Path, time_field: str) -> str:
    source = str(path).replace("'", "''")
    return f"""
        SELECT line_number, line,
               CASE WHEN json_valid(line) THEN TRY_CAST(
                   json_extract_string(line, '$.{time_field}') AS TIMESTAMPTZ) END AS event_time
        FROM (
            SELECT row_number() OVER () - 1 AS line_number, column0 AS line
            FROM read_csv('{source}', columns = {{'column0': 'VARCHAR'}}, header = false,
                          delim = '\\x1f', quote = '', escape = '', auto_detect = false)
        ) lines
    """


def backfill_file(lake: Lake, path: Path, topic: str, day: dt.date) -> TableReport:
    started = time.perf_counter()
    conn = duckdb.connect()
    try:
        conn.execute("SET TimeZone = 'UTC'")
        time_field = EVENT_TIME_FIELD.get(topic, "timestamp")
        conn.execute(f"CREATE TEMP TABLE lines AS {_lines_query(path, time_field)}")
        rejected = conn.sql(
            "SELECT 'line ' || (line_number + 1) || ': no readable event time' AS reason, "
            "line AS record FROM lines WHERE event_time IS NULL"
        ).to_arrow_table()
        events = conn.sql(
            f"""
            SELECT CAST({FILE_PARTITION} AS INTEGER) AS partition, line_number AS "offset",
                   NULL AS key, event_time, CAST(now() AS TIMESTAMPTZ) AS appended_at,
                   json_extract_string(line, '$.type') AS type,
                   json_extract_string(line, '$.event') AS event,
                   coalesce(json_extract_string(line, '$.messageId'),
                            json_extract_string(line, '$.id')) AS message_id,
                   json_extract_string(line, '$.anonymousId') AS anonymous_id,
                   json_extract_string(line, '$.userId') AS user_id,
                   line AS payload,
                   CAST(event_time AS DATE) AS event_date
            FROM lines WHERE event_time IS NOT NULL ORDER BY event_time
            """
        ).to_arrow_table()
    finally:
        conn.close()
    dates = events.column("event_date")
    added = 0
    days = pc.unique(dates).to_pylist()
    for event_day in sorted(days):
        part = events.filter(pc.equal(dates, pa.scalar(event_day, pa.date32())))
        added += merge(lake, topic, event_day, part.drop(["event_date"]).cast(ARCHIVE_SCHEMA))
    lake.write_quarantine(SOURCE, f"{topic}_backfill", day, quarantine_table(rejected.to_pylist()))
    return TableReport(
        SOURCE,
        topic,
        added,
        seconds=time.perf_counter() - started,
        partitions=len(days),
        quarantined=rejected.num_rows,
    )
