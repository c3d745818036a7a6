"""The event archive: the event log's records into the lake, partitioned by event date.

The log is the speed layer's input; the archive makes the same events part of the master
dataset, so the batch layer sees the full history. ``c360 ingest archive --date D`` reads every
record appended since the previous run (per topic-partition offsets kept in
``_state/archive/<topic>.json``) up to the log's end, and merges each record into
``raw/events/<topic>/dt=<event date>/``. Records are identified by (partition, offset), so a
re-run or a crash between the partition commits and the state commit never archives a record
twice; a record whose payload has no readable event time goes to the quarantine zone, and so
does one whose event time is later than the record's append time plus
``events.max_clock_skew_seconds`` (the speed layer dead-letters the same records, judged by the
same append time: ``2999-01-01`` never becomes a partition of the lake).

Commit order: partitions first (each atomic), then the state file (written aside, renamed).
Re-running D starts again from the offsets D started from.

Each row carries ``identifiers``, what its payload names beyond its own columns
(:func:`c360.privacy.documents.lift`), which erasure reads instead of the payload. A partition
archived before that column existed gets it when a record is next merged into it, or from
:func:`upgrade` (``c360 ingest upgrade-archive``).
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from c360.config import Settings
from c360.contracts.lake import ARCHIVE_LIFTED, ARCHIVE_SCHEMA
from c360.contracts.segment import future_reason
from c360.contracts.times import EPOCH
from c360.ingest.conform import quarantine_table
from c360.ingest.report import TableReport
from c360.lake import Lake
from c360.logs import EventLog, Record, is_tombstone, open_configured
from c360.privacy.documents import lift

SOURCE = "events"
TOPICS = ("clickstream", "support")
READ_CHUNK = 10_000
# Where each topic's payload carries its event time (Segment: timestamp; Zendesk: time).
EVENT_TIME_FIELD = {"clickstream": "timestamp", "support": "time"}
# The archive's columns but the one lifted from the payload (merge() adds it).
UNLIFTED_SCHEMA = pa.schema([f for f in ARCHIVE_SCHEMA if f.name != ARCHIVE_LIFTED])


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _event_fields(topic: str, value: bytes) -> dict[str, Any]:
    """Event time and the lifted columns of one payload (raises when it has no event time)."""
    payload = orjson.loads(value)
    raw = payload[EVENT_TIME_FIELD.get(topic, "timestamp")]
    parsed = dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"event time {raw!r} has no time zone")
    return {
        "event_time": parsed.astimezone(dt.UTC),
        "type": _text(payload.get("type")),
        "event": _text(payload.get("event")),
        "message_id": _text(payload.get("messageId") or payload.get("id")),
        "anonymous_id": _text(payload.get("anonymousId")),
        "user_id": _text(payload.get("userId")),
    }


class _State:
    """Per-topic archive progress: next offsets, and where each run started."""

    def __init__(self, lake: Lake, topic: str) -> None:
        self.lake, self.name = lake, f"archive/{topic}.json"
        self.data: dict[str, Any] = lake.read_state(self.name) or {"next": {}, "runs": {}}

    def start_for(self, day: dt.date) -> dict[int, int]:
        started = self.data["runs"].get(day.isoformat())
        offsets = started if started is not None else self.data["next"]
        return {int(p): int(o) for p, o in offsets.items()}

    def commit(self, day: dt.date, start: dict[int, int], end: dict[int, int]) -> None:
        self.data["runs"][day.isoformat()] = {str(p): o for p, o in start.items()}
        self.data["next"] = {str(p): o for p, o in end.items()}
        self.lake.write_state(self.name, self.data)


def _records(log: EventLog, topic: str, partition: int, start: int, end: int) -> Iterator[Record]:
    offset = start
    while offset < end:
        chunk = log.read(topic, partition, offset, min(READ_CHUNK, end - offset))
        if not chunk:
            return
        yield from chunk
        offset = chunk[-1].offset + 1


def with_lifted(rows: pa.Table) -> pa.Table:
    """Archive rows in the archive's schema, ``identifiers`` lifted from the payload when the
    rows lack it (new rows, or a partition archived before the column existed)."""
    if ARCHIVE_LIFTED not in rows.column_names:
        rows = rows.append_column(ARCHIVE_LIFTED, lift(rows["payload"]))
    return rows.select(ARCHIVE_SCHEMA.names).cast(ARCHIVE_SCHEMA)


def merge(lake: Lake, topic: str, day: dt.date, new: pa.Table) -> int:
    """Add rows to the event-date partition; rows already there (same offset) are skipped."""
    new = with_lifted(new)
    merged = new
    if day in lake.partitions(SOURCE, topic):
        old = with_lifted(lake.read_partition(SOURCE, topic, day))
        new = new.filter(pc.invert(pc.is_in(_record_ids(new), value_set=_record_ids(old))))
        if not new.num_rows:
            return 0
        merged = pa.concat_tables([old, new])
    lake.write_partition(SOURCE, topic, day, merged.sort_by([("event_time", "ascending")]))
    return int(new.num_rows)


def _record_ids(table: pa.Table) -> pa.ChunkedArray:
    """ "partition:offset": a record's identity in the log (or, partition -1, in a file)."""
    return pc.binary_join_element_wise(
        pc.cast(table["partition"], pa.string()), pc.cast(table["offset"], pa.string()), ":"
    )


def archive_topic(
    log: EventLog, lake: Lake, topic: str, day: dt.date, max_clock_skew: dt.timedelta
) -> TableReport:
    started = time.perf_counter()
    state = _State(lake, topic)
    start = state.start_for(day)
    end = {p: log.end_offset(topic, p) for p in range(log.partitions(topic))}
    by_day: dict[dt.date, list[dict[str, Any]]] = defaultdict(list)
    rejected: list[dict[str, str]] = []
    for partition, stop in end.items():
        for record in _records(log, topic, partition, start.get(partition, 0), stop):
            if is_tombstone(record.value):
                continue  # erased (c360.pipeline.erasure)
            try:
                fields = _event_fields(topic, record.value)
            except (
                orjson.JSONDecodeError,
                KeyError,
                TypeError,
                ValueError,
                AttributeError,
                OverflowError,  # an offset that takes the time outside the calendar in UTC
            ) as exc:
                reason = f"{topic}/{partition}@{record.offset}: {type(exc).__name__}: {exc}"
                rejected.append({"reason": reason, "record": record.value.decode(errors="replace")})
                continue
            latest = record.timestamp + max_clock_skew
            if record.timestamp > EPOCH and fields["event_time"] > latest:  # EPOCH: not stamped
                why = future_reason("event time", fields["event_time"], latest)
                reason = f"{topic}/{partition}@{record.offset}: {why}"
                rejected.append({"reason": reason, "record": record.value.decode(errors="replace")})
                continue
            by_day[fields["event_time"].date()].append(
                {
                    "partition": partition,
                    "offset": record.offset,
                    "key": record.key,
                    "appended_at": record.timestamp,
                    "payload": record.value.decode(),
                    **fields,
                }
            )
    archived = sum(
        merge(lake, topic, event_day, pa.Table.from_pylist(rows, schema=UNLIFTED_SCHEMA))
        for event_day, rows in sorted(by_day.items())
    )
    lake.write_quarantine(SOURCE, topic, day, quarantine_table(rejected))
    state.commit(day, start, end)
    return TableReport(
        SOURCE,
        topic,
        archived,
        seconds=time.perf_counter() - started,
        partitions=len(by_day),
        quarantined=len(rejected),
    )


def archive(
    settings: Settings, day: dt.date, topics: tuple[str, ...] = TOPICS, lake: Lake | None = None
) -> list[TableReport]:
    lake = lake or Lake(settings.lake.url)
    with open_configured(settings.log) as log:
        skew = dt.timedelta(seconds=settings.events.max_clock_skew_seconds)
        return [archive_topic(log, lake, topic, day, skew) for topic in topics]


def upgrade(lake: Lake, topics: tuple[str, ...] = TOPICS) -> dict[str, int]:
    """Give every archive partition written before ``identifiers`` existed that column, each
    rewritten through the lake's commit protocol (a reader sees the old partition or the new
    one); partitions that have it are not read. The partitions upgraded, per topic. Run it
    while no archive runs (``c360 ingest upgrade-archive`` holds the batch lock)."""
    done: dict[str, int] = {}
    for topic in topics:
        done[topic] = 0
        for day in reversed(lake.partitions(SOURCE, topic)):  # the latest first: no drift warnings
            if ARCHIVE_LIFTED in lake.manifest(SOURCE, topic, day)["schema"]:
                continue
            lake.write_partition(
                SOURCE, topic, day, with_lifted(lake.read_partition(SOURCE, topic, day))
            )
            done[topic] += 1
    return done
