"""The stream worker: event log → pure feature updates → serving store, exactly once.

**Commit order**, for every micro-batch:

1. read up to ``batch_size`` records from each owned partition, from the worker's position (it
   loads the position from ``stream_offsets`` whenever it takes a partition: at start, after a
   rebalance, after a conflict);
2. decode and validate each record (pure); an invalid one becomes a dead-letter row, never an
   exception;
3. in **one serving-store transaction**:
   a. claim the offsets: move each partition's ``stream_offsets`` row from the batch's first
      offset to the offset after its last record, only if the row still holds the first
      (compare-and-set, :func:`~c360.speed.storage.claim_offsets`);
   b. load the ``realtime_state`` rows of the batch's identifiers;
   c. apply :func:`~c360.speed.features.update` to each event in offset order;
   d. upsert the changed state rows and insert the dead letters;
   e. commit;
4. only then advance the in-memory positions and call ``on_commit``.

**Why this is exactly-once.** A state row and the offset that produced it are committed
atomically, so for every partition the store holds "the state after records ``< n``" together
with "next offset ``n``". A crash before the commit (anywhere in 1-3) rolls everything back; the
restart reads from ``n`` again and, ``update`` being a pure function of (state, event) with no
clock and no randomness, recomputes the very same rows. A crash after the commit leaves both
advanced; the restart reads on from there. Nothing is lost (the log keeps every record), nothing
is counted twice (no record's effect is ever committed without its offset). The compare-and-set
fences a second worker on the same partition (a rebalance, a zombie, two ``stream run``): the
first to commit wins, the other rolls back and re-reads from the stored offset. Dead letters ride
in the same transaction, so they too are written once. The log's own consumer offsets (Kafka's)
play no part in correctness.

That is exactly-once *processing of each log record*. The same message appended twice (a client
retry, a file published twice) is two records; ``update`` drops the second by its ``messageId``
(a per-identifier window, see :mod:`c360.speed.features`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

from c360.contracts.serving import realtime_state
from c360.logs import EventLog, Record, TopicPartition
from c360.sources.segment import InvalidMessage, SegmentMessage, decode
from c360.speed.features import RealtimeState, StateKey, state_key, update
from c360.speed.storage import (
    STATE_KEYS,
    OffsetConflict,
    claim_offsets,
    dead_letter_row,
    insert_dead_letters,
    load_states,
    state_row,
)
from c360.stores import ServingStore

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500
DEFAULT_POLL_INTERVAL = 0.5


@dataclass(frozen=True)
class BatchResult:
    """What one committed micro-batch did."""

    next_offsets: Mapping[TopicPartition, int]
    records: int
    events: int  # valid events applied
    duplicates: int  # valid events dropped as already seen
    dead_lettered: int
    state_rows: int  # realtime_state rows written


@dataclass
class WorkerStats:
    """Totals of one :func:`run`."""

    records: int = 0
    events: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    batches: int = 0
    conflicts: int = 0  # batches rolled back because another worker had moved the offsets

    def add(self, batch: BatchResult) -> None:
        self.records += batch.records
        self.events += batch.events
        self.duplicates += batch.duplicates
        self.dead_lettered += batch.dead_lettered
        self.batches += 1

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def run(
    log: EventLog,
    store: ServingStore,
    group: str = "speed",
    topics: Sequence[str] = ("clickstream",),
    *,
    stop_when_caught_up: bool,
    batch_size: int = DEFAULT_BATCH_SIZE,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    should_stop: Callable[[], bool] | None = None,
    on_commit: Callable[[BatchResult], None] | None = None,
) -> WorkerStats:
    """Consume ``topics`` for consumer ``group`` into the serving store (see the module docs).

    ``batch_size`` bounds the records read per partition per micro-batch. With
    ``stop_when_caught_up`` it returns once every owned partition is read to its end; otherwise
    it polls every ``poll_interval`` seconds while idle, until ``should_stop()`` is true (checked
    between micro-batches, e.g. ``threading.Event().is_set``). ``on_commit`` is called after
    each commit (tests inject crashes there). The store must be migrated.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    stats = WorkerStats()
    positions: dict[TopicPartition, int] = {}
    while should_stop is None or not should_stop():
        positions = _owned_positions(log, store, group, topics, positions)
        batch: dict[TopicPartition, list[Record]] = {}
        for tp, position in sorted(positions.items()):
            records = log.read(tp.topic, tp.partition, position, batch_size)
            if records:
                batch[tp] = records
        if not batch:
            if stop_when_caught_up and _caught_up(log, positions):
                break
            time.sleep(poll_interval)
            continue
        try:
            result = _commit_batch(store, group, positions, batch)
        except OffsetConflict as exc:
            logger.warning("%s", exc)
            stats.conflicts += 1
            for tp in batch:  # re-read these partitions from their stored offsets
                del positions[tp]
            continue
        positions.update(result.next_offsets)
        stats.add(result)
        if on_commit is not None:
            on_commit(result)
    return stats


def _owned_positions(
    log: EventLog,
    store: ServingStore,
    group: str,
    topics: Sequence[str],
    positions: Mapping[TopicPartition, int],
) -> dict[TopicPartition, int]:
    """Positions of the partitions owned now; newly owned ones resume from the stored offsets."""
    owned = log.owned_partitions(group, topics)
    stored: dict[str, dict[int, int]] = {}
    current: dict[TopicPartition, int] = {}
    for tp in owned:
        if tp in positions:
            current[tp] = positions[tp]
            continue
        if tp.topic not in stored:
            stored[tp.topic] = store.offsets(group, tp.topic)
        current[tp] = stored[tp.topic].get(tp.partition, 0)
    return current


def _caught_up(log: EventLog, positions: Mapping[TopicPartition, int]) -> bool:
    return all(pos >= log.end_offset(tp.topic, tp.partition) for tp, pos in positions.items())


def _decode(
    batch: Mapping[TopicPartition, Sequence[Record]],
) -> tuple[list[SegmentMessage], list[tuple[Record, str]]]:
    events: list[SegmentMessage] = []
    invalid: list[tuple[Record, str]] = []
    for records in batch.values():
        for record in records:
            try:
                events.append(decode(record.value))
            except InvalidMessage as exc:
                invalid.append((record, exc.reason))
    return events, invalid


def _commit_batch(
    store: ServingStore,
    group: str,
    positions: Mapping[TopicPartition, int],
    batch: Mapping[TopicPartition, Sequence[Record]],
) -> BatchResult:
    events, invalid = _decode(batch)
    moves = {tp: (positions[tp], records[-1].offset + 1) for tp, records in batch.items()}
    received_at = dt.datetime.now(dt.UTC)
    with store.begin() as conn:
        claim_offsets(conn, group, moves)
        states = load_states(conn, (state_key(event) for event in events))
        changed: set[StateKey] = set()
        duplicates = 0
        for event in events:
            key = state_key(event)
            current = states.get(key)
            if current is None:
                current = RealtimeState.empty(key)
            new = update(current, event)
            if new is current:
                duplicates += 1
                continue
            states[key] = new
            changed.add(key)
        rows = [state_row(states[key]) for key in sorted(changed)]
        store.upsert(conn, realtime_state, rows, STATE_KEYS)
        insert_dead_letters(conn, [dead_letter_row(r, why, received_at) for r, why in invalid])
    result = BatchResult(
        next_offsets={tp: next_offset for tp, (_, next_offset) in moves.items()},
        records=sum(len(records) for records in batch.values()),
        events=len(events) - duplicates,
        duplicates=duplicates,
        dead_lettered=len(invalid),
        state_rows=len(rows),
    )
    logger.debug("committed %s", result)
    return result
