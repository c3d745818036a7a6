"""The speed layer's Prometheus metrics: what a stream worker consumed, how far behind it is.

Per consumer ``group`` (labels: group, and topic/partition for the lag — a handful of
partitions, never a key or a value):

- ``c360_stream_records_total``, ``_events_total`` (applied), ``_duplicates_total``,
  ``_state_rows_total`` (real-time rows written), ``_batches_total``; events per second is
  ``rate(c360_stream_events_total[1m])``;
- ``c360_stream_dead_letters_total{group, topic, reason}``: records dead-lettered, by topic and
  reason code (:data:`c360.contracts.reasons.CODES`);
- ``c360_stream_batch_duration_seconds``: from reading a micro-batch to its commit;
- ``c360_stream_commit_conflicts_total`` (another worker had moved the offsets) and
  ``c360_stream_retries_total`` (transient failures waited out);
- ``c360_stream_lag_records{topic, partition}``: records appended and not yet committed, and
  ``c360_stream_lag_seconds``: while any are, how long ago the newest committed record was
  appended (0 when caught up; for a producer appending steadily, how far behind in time the
  worker is) — measured by the worker itself after its commits, at most every
  :data:`LAG_EVERY_S` seconds (the event log's clients are not thread-safe, so a scrape never
  reads the log).

``c360 stream run --metrics-port P`` serves them (``prometheus_client``'s own HTTP server).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable, Mapping

from prometheus_client import Counter, Gauge, Histogram

from c360.contracts.log import TopicPartition
from c360.logs import EventLog
from c360.stores import DeadLetter

LAG_EVERY_S = 5.0
_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

_COUNTS = {
    name: Counter(f"c360_stream_{name}", help_text, ["group"])
    for name, help_text in (
        ("records", "Event log records consumed"),
        ("events", "Valid events applied to real-time state"),
        ("duplicates", "Valid events dropped as already seen"),
        ("state_rows", "Real-time state rows written"),
        ("batches", "Micro-batches committed"),
        ("commit_conflicts", "Micro-batches rolled back: another worker had moved the offsets"),
        ("retries", "Transient failures (event log, store) waited out"),
    )
}
_DEAD_LETTERS = Counter(
    "c360_stream_dead_letters", "Records dead-lettered (malformed or implausible), by reason code",
    ["group", "topic", "reason"],
)  # fmt: skip
_DURATION = Histogram(
    "c360_stream_batch_duration_seconds", "From reading a micro-batch to its commit",
    ["group"], buckets=_BUCKETS,
)  # fmt: skip
_LAG_RECORDS = Gauge(
    "c360_stream_lag_records", "Records appended and not yet committed",
    ["group", "topic", "partition"],
)  # fmt: skip
_LAG_SECONDS = Gauge(
    "c360_stream_lag_seconds", "Age of the oldest record not yet committed (0 when caught up)",
    ["group", "topic", "partition"],
)  # fmt: skip


class StreamMetrics:
    """The metrics of one worker's consumer group."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._next_lag = 0.0
        # Append time (epoch ms) of each partition's newest committed record.
        self._committed_ms: dict[TopicPartition, int] = {}

    def count(self, name: str, amount: int = 1) -> None:
        if amount:
            _COUNTS[name].labels(self.group).inc(amount)

    def committed(
        self, counts: Mapping[str, int], seconds: float, appended_ms: Mapping[TopicPartition, int]
    ) -> None:
        """A micro-batch committed: its counts, its duration, and the append time of each
        partition's last record in it."""
        for name, amount in counts.items():
            self.count(name, amount)
        self.count("batches")
        _DURATION.labels(self.group).observe(seconds)
        self._committed_ms.update(appended_ms)

    def dead_lettered(self, letters: Iterable[DeadLetter]) -> None:
        counted = collections.Counter((letter.topic, letter.code) for letter in letters)
        for (topic, reason), count in counted.items():
            _DEAD_LETTERS.labels(self.group, topic, reason).inc(count)

    def lag(self, log: EventLog, committed: Mapping[TopicPartition, int]) -> None:
        """Measure each partition's lag behind its end (at most every :data:`LAG_EVERY_S`)."""
        now = time.monotonic()
        if now < self._next_lag:
            return
        self._next_lag = now + LAG_EVERY_S
        wall_ms = time.time() * 1000
        for tp, offset in committed.items():
            behind = max(0, log.end_offset(tp.topic, tp.partition) - offset)
            labels = (self.group, tp.topic, str(tp.partition))
            _LAG_RECORDS.labels(*labels).set(behind)
            newest = self._committed_ms.get(tp)
            if not behind:
                _LAG_SECONDS.labels(*labels).set(0.0)
            elif newest:  # unknown until the worker commits one of the partition's records
                _LAG_SECONDS.labels(*labels).set(max(0.0, (wall_ms - newest) / 1000))
