"""The event log between ingestion and the speed layer: one small interface, two backends.

A topic is split into a fixed number of partitions. A record's partition is a stable hash of its
key (:func:`partition_for`), so every event of one key lands in one partition, in append order,
and per-key state stays partition-local. Within a partition, offsets are contiguous from 0.

Backends: ``local.py`` (embedded, a folder of files) and, later, ``kafka.py`` (the only module
that may import ``confluent_kafka``). Both must pass ``tests/conformance/test_event_log.py``.

Reads come back as a :class:`RecordBatch`, column by column (no object per record: the speed
layer's hot path touches only the values); :meth:`EventLog.read` gives the same records as
:class:`Record` objects for callers that want them one by one.

Consumer progress is *not* kept in the log: the speed layer stores its next offsets in the
serving store, in the same transaction as the state they produced (see
:mod:`c360.pipeline.stream_worker`).
"""

from __future__ import annotations

import re
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from c360.contracts.log import Record, RecordBatch, TopicPartition
from c360.errors import DataError, TerminalError

# Whether a record (key, value) holds an erased person's data (c360.pipeline.erasure).
RecordMatch = Callable[[bytes, bytes], bool]


@dataclass(frozen=True)
class LogErasure:
    """What erasing one topic did: records that matched, files rewritten (local log),
    tombstones produced (Kafka), and whether removal still waits on the broker (compaction
    or retention)."""

    topic: str
    records: int = 0
    files: int = 0
    tombstones: int = 0
    pending: bool = False


def is_tombstone(value: bytes) -> bool:
    """An erased record (an empty value): readers skip it, as Kafka consumers skip a
    compacted key's tombstone."""
    return not value


# Kafka's own rule for topic names; it also keeps a local topic a safe folder name.
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


def partition_for(key: str, partitions: int) -> int:
    """The partition of ``key``: CRC-32 (IEEE, as zlib) of its UTF-8 bytes modulo the count.

    Stable across processes, machines and Python versions (never the salted built-in
    ``hash()``); it is the rule of librdkafka's ``consistent`` partitioner, so a Kafka backend
    can reproduce it by setting that partitioner or by passing the partition explicitly.
    """
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    return zlib.crc32(key.encode("utf-8")) % partitions


def check_topic(topic: str) -> str:
    """Reject names Kafka would reject (and that are unsafe as folder names)."""
    if not _TOPIC_NAME.fullmatch(topic) or topic in {".", ".."}:
        raise DataError(f"invalid topic name {topic!r}: use 1-249 letters, digits, '.', '_' or '-'")
    return topic


class EventLog(ABC):
    """A partitioned, append-only, durable log of keyed records."""

    @abstractmethod
    def append(self, topic: str, records: Sequence[tuple[str, bytes]]) -> list[tuple[int, int]]:
        """Append ``(key, value)`` records; return their ``(partition, offset)`` in input order.

        The records are durable when this returns. Callers batch: one call is one sync.
        """

    @abstractmethod
    def read_batch(self, topic: str, partition: int, offset: int, max_records: int) -> RecordBatch:
        """Up to ``max_records`` records from ``offset`` on, in offset order; empty at the end.

        Never blocks waiting for new records: pollers sleep between empty reads. An
        ``offset`` before the log start (retention dropped its records): the local log reads
        from the log start, logging and counting the reset (Kafka's
        ``auto.offset.reset=earliest``); the Kafka backend raises a
        :class:`~c360.errors.TerminalError` naming the log start.
        """

    def read(self, topic: str, partition: int, offset: int, max_records: int) -> list[Record]:
        """:meth:`read_batch` as one :class:`Record` per record; ``[]`` at the end."""
        return self.read_batch(topic, partition, offset, max_records).records()

    @abstractmethod
    def partitions(self, topic: str) -> int:
        """How many partitions ``topic`` has."""

    @abstractmethod
    def end_offset(self, topic: str, partition: int) -> int:
        """The offset the next appended record of this partition will get (= records so far)."""

    @abstractmethod
    def close(self) -> None:
        """Release files, sockets and locks; the log is unusable afterwards."""

    def erase(self, topic: str, match: RecordMatch) -> LogErasure:
        """Remove the retained records ``match`` picks from ``topic`` (erasure): rewritten
        away where the backend can (the local log), tombstoned where only the broker can
        (Kafka, :class:`LogErasure.pending`). Offsets of the other records do not change."""
        raise TerminalError(f"{type(self).__name__} cannot erase records")

    def owned_partitions(self, group: str, topics: Sequence[str]) -> list[TopicPartition]:
        """The partitions of ``topics`` that this process consumes for ``group``, right now.

        The embedded log has one consumer per group, which owns every partition. A backend with
        group management (Kafka) overrides this with its current assignment, which may change
        between calls (a rebalance): consumers call it before every micro-batch.
        """
        return [TopicPartition(t, p) for t in topics for p in range(self.partitions(t))]

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@runtime_checkable
class Truncatable(Protocol):
    """A log that can drop a partition's oldest records (retention: :mod:`c360.pipeline.retention`).

    A capability, not part of :class:`EventLog`: Kafka has it (DeleteRecords: the log start
    moves to the offset, the broker deletes the segments wholly below it) and so has the local
    log (it deletes its own segments wholly below the offset, never the active one: the start
    moves to the first segment kept). Either way the records before the offset may go, and
    offsets of the others never change.
    """

    def offset_at(self, topic: str, partition: int, timestamp_ms: int) -> int:
        """The first offset appended at or after ``timestamp_ms`` (the end offset if none)."""
        ...

    def drop_before(self, topic: str, partition: int, offset: int) -> int:
        """Drop records before ``offset`` (never past the end): all of them (Kafka) or the
        whole segments below it (the local log); how many went."""
        ...
