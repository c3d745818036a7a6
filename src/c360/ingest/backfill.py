"""Backfill the event archive from a file: history that never went through the event log.

``c360 ingest backfill FILE --topic clickstream`` reads a JSON-lines file (gzip or plain: a
Segment export, or the simulator's clickstream) with DuckDB — in parallel, spilling to disk
under a memory limit, without a Python object per line — splits it by event date into a
scratch folder, then merges each day into ``raw/events/<topic>/dt=<event date>/`` exactly like
the archive does (a time without a zone is taken as UTC). A line's identity is (partition -1,
a 62-bit hash of the line), so running the same file again adds nothing and an exact duplicate
line is one event. Lines without a readable event time go to quarantine.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from c360.ingest.archive import ARCHIVE_SCHEMA, EVENT_TIME_FIELD, SOURCE, merge
from c360.ingest.conform import QUARANTINE_SCHEMA
from c360.ingest.report import TableReport
from c360.lake import Lake

FILE_PARTITION = -1  # not a log partition: the record came from a file
MEMORY_LIMIT = "2GB"


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
               coalesce(CAST(CAST(event_time AS DATE) AS VARCHAR), 'unreadable') AS event_date
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


def _split(path: Path, topic: str, scratch: Path) -> None:
    conn = duckdb.connect()
    try:
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        conn.execute(f"SET temp_directory = '{scratch / 'spill'}'")
        conn.execute("SET preserve_insertion_order = false")
        query = _split_query(path, EVENT_TIME_FIELD.get(topic, "timestamp"))
        conn.execute(
            f"COPY ({query}) TO '{scratch / 'days'}' "
            "(FORMAT PARQUET, COMPRESSION zstd, PARTITION_BY (event_date))"
        )
    finally:
        conn.close()


def backfill_file(lake: Lake, path: Path, topic: str, day: dt.date) -> TableReport:
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="c360-backfill-"))
    try:
        _split(path, topic, scratch)
        added = days = rejected = 0
        for folder in sorted((scratch / "days").glob("event_date=*")):
            table = pq.read_table(folder)  # one day: the partition column is in the name
            if folder.name == "event_date=unreadable":
                rejected = table.num_rows
                reasons = [f"{topic}: no readable event time"] * table.num_rows
                lake.write_quarantine(
                    SOURCE,
                    f"{topic}_backfill",
                    day,
                    pa.Table.from_pydict(
                        {"reason": reasons, "record": table.column("payload").to_pylist()},
                        schema=QUARANTINE_SCHEMA,
                    ),
                )
                continue
            event_day = dt.date.fromisoformat(folder.name.split("=", 1)[1])
            ordered = table.select(ARCHIVE_SCHEMA.names).cast(ARCHIVE_SCHEMA)
            added += merge(lake, topic, event_day, ordered.sort_by([("event_time", "ascending")]))
            days += 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return TableReport(
        SOURCE,
        topic,
        added,
        seconds=time.perf_counter() - started,
        partitions=days,
        quarantined=rejected,
    )
