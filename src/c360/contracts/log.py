"""What the event log holds: records of topic-partitions, read back one by one or as columns.

The interface (``EventLog``) and its backends are in :mod:`c360.logs`; the speed layer's offsets
per :class:`TopicPartition` live in the serving store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from c360.contracts.times import from_epoch_ms


@dataclass(frozen=True, slots=True)
class Record:
    """One record read back from the log."""

    topic: str
    partition: int
    offset: int
    key: str
    value: bytes
    timestamp: dt.datetime  # when the log appended it (UTC, millisecond precision)


@dataclass(frozen=True, slots=True)
class RecordBatch:
    """Records of one partition in offset order, one list per field.

    ``offsets[i]``, ``keys[i]`` (UTF-8), ``values[i]`` and ``timestamps_ms[i]`` (append time,
    epoch milliseconds) describe the ``i``-th record. Offsets ascend; they are consecutive in the
    local log (a compacted Kafka topic may skip some).
    """

    topic: str
    partition: int
    offsets: Sequence[int] = ()
    keys: Sequence[bytes] = ()
    values: Sequence[bytes] = ()
    timestamps_ms: Sequence[int] = ()

    def __len__(self) -> int:
        return len(self.values)

    @property
    def next_offset(self) -> int:
        """The offset after the last record (the consumer's next position); batch not empty."""
        return self.offsets[-1] + 1

    def record(self, i: int) -> Record:
        return Record(
            topic=self.topic,
            partition=self.partition,
            offset=self.offsets[i],
            key=self.keys[i].decode("utf-8"),
            value=self.values[i],
            timestamp=from_epoch_ms(self.timestamps_ms[i]),
        )

    def records(self) -> list[Record]:
        return [self.record(i) for i in range(len(self.values))]


@dataclass(frozen=True, slots=True, order=True)
class TopicPartition:
    topic: str
    partition: int
