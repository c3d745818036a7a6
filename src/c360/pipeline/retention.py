"""Retention: raw events older than the configured period leave the lake and the event log.

The daily batch's last step (``retention``, after ``gold``, recorded in the run log like the
others) and ``c360 retention --date D`` run :func:`enforce` for date D:

- **the lake** (``retention.raw_event_days`` = N): the partitions of the raw events —
  ``raw/events/clickstream``, ``raw/events/support`` (the archived log) and ``raw/zendesk/events``
  (Zendesk's files), and the same tables' quarantine — dated before D - N + 1 are removed whole.
  A partition holds the events of its date only, so a partition is wholly older than the period
  or kept. *What the batch still needs* is never removed: the configuration refuses an N below
  :func:`c360.config.raw_events_needed_days` (the longest feature window over events, 90 days;
  ``timeline.days``; and the churn model's oldest snapshot's window), and no partition on or
  after D - N + 1 is touched. The orders DB's and Mailchimp's extracts are not raw events (the
  lifetime features are computed from them) and are kept, as are the batch's own outputs.
  *Consequence:* lifetime facts computed from events (``support_ticket_count``,
  ``first_seen_at`` from the web) count only the events kept.
- **the event log** (``retention.log_days``): records older than the period that the archive
  has copied; on the local log, whole segments (see :func:`trim_log`).

Removing a partition is one recursive delete of its folder (a reader listing the table sees it
or not: the batch's inputs are listed when a step starts); a crash midway leaves a partition
wholly present or absent, and a re-run removes what is left. Idempotent.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from c360.config import Settings
from c360.ingest.archive import SOURCE as ARCHIVE_SOURCE
from c360.ingest.archive import TOPICS
from c360.lake import Lake
from c360.logs import open_configured
from c360.logs.base import Truncatable

log = logging.getLogger(__name__)

RAW_EVENT_TABLES = (
    *((ARCHIVE_SOURCE, topic) for topic in TOPICS),
    ("zendesk", "events"),
)
ZONES = ("raw", "quarantine")


@dataclass(frozen=True)
class Removed:
    zone: str
    source: str
    table: str
    day: dt.date

    def __str__(self) -> str:
        return f"{self.zone}/{self.source}/{self.table}/dt={self.day.isoformat()}"


@dataclass
class RetentionReport:
    day: dt.date
    keep_from: dt.date | None  # the oldest event date kept in the lake; None: all kept
    partitions: list[Removed] = field(default_factory=list)
    log_records: int = 0
    log_detail: str = "the event log is kept (retention.log_days is not set)"

    def detail(self) -> str:
        lake = (
            "the lake keeps every raw event (retention.raw_event_days is not set)"
            if self.keep_from is None
            else f"{len(self.partitions)} raw event partitions before {self.keep_from} removed"
        )
        return f"{lake}; {self.log_detail}"

    def as_dict(self) -> dict[str, object]:
        return {
            "date": self.day.isoformat(),
            "keep_from": self.keep_from.isoformat() if self.keep_from else None,
            "partitions_removed": [str(p) for p in self.partitions],
            "log_records_removed": self.log_records,
            "detail": self.detail(),
        }


def expired(lake: Lake, day: dt.date, days: int) -> tuple[dt.date, list[Removed]]:
    """The first date kept, and the raw event partitions dated before it."""
    keep_from = day - dt.timedelta(days=days - 1)
    found = [
        Removed(zone, source, table, d)
        for source, table in RAW_EVENT_TABLES
        for zone in ZONES
        for d in lake.partitions(source, table, zone)
        if d < keep_from
    ]
    return keep_from, found


def enforce(
    settings: Settings, lake: Lake, day: dt.date, *, dry_run: bool = False
) -> RetentionReport:
    """Remove the raw events older than the configured periods, as of date ``day``."""
    report = RetentionReport(day, None)
    days = settings.retention.raw_event_days
    if days is not None:
        report.keep_from, report.partitions = expired(lake, day, days)
        for partition in [] if dry_run else report.partitions:
            lake.drop_partition(partition.source, partition.table, partition.day, partition.zone)
            log.info("retention: removed %s", partition)
    if settings.retention.log_days is not None:
        report.log_records, report.log_detail = trim_log(settings, lake, day, dry_run=dry_run)
    return report


def trim_log(
    settings: Settings, lake: Lake, day: dt.date, *, dry_run: bool = False
) -> tuple[int, str]:
    """Remove the event log's records appended before the period (``retention.log_days``,
    counted back from the end of ``day``) that the archive has copied to the lake: a record
    the archive has not read yet is kept, whatever its age, so the lake never misses one.

    Only a log that can drop a partition's oldest records (:class:`~c360.logs.base.Truncatable`)
    is trimmed: Kafka through its DeleteRecords API (the broker then deletes whole segments
    below the new start); the local log deletes its own segments wholly below that offset —
    those whose newest record is older than the period and already archived — never the
    active segment (``log.segment_bytes``, ``log.segment_hours`` bound how much more than the
    period it keeps). A consumer whose stored offset was in a deleted segment resumes at the
    log start (see :mod:`c360.logs.local`). Another log says it cannot.
    """
    days = settings.retention.log_days
    assert days is not None
    before_ms = _end_of(day - dt.timedelta(days=days))
    with open_configured(settings.log) as event_log:
        if not isinstance(event_log, Truncatable):
            return 0, f"the event log ({type(event_log).__name__}) cannot drop old records"
        removed = 0
        for topic in TOPICS:
            archived = _archived_offsets(lake, topic)
            for partition in range(event_log.partitions(topic)):
                offset = min(
                    event_log.offset_at(topic, partition, before_ms),
                    archived.get(partition, 0),
                )
                if not dry_run:
                    removed += event_log.drop_before(topic, partition, offset)
    return removed, f"{removed} event log records older than {days} days removed"


def _end_of(day: dt.date) -> int:
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
    return int(end.timestamp() * 1000)


def _archived_offsets(lake: Lake, topic: str) -> dict[int, int]:
    """Per partition, the offset the archive's latest run started from (a re-run of that day
    reads from there again), else 0: nothing before it may be dropped."""
    state = lake.read_state(f"archive/{topic}.json") or {}
    runs = state.get("runs") or {}
    offsets = runs[max(runs)] if runs else {}
    return {int(p): int(o) for p, o in offsets.items()}
