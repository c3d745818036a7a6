"""The stream worker: event log → pure feature updates → serving store, exactly once.

**Topics.** Each topic is decoded by its source's decoder (:func:`source_of`): ``support`` (or a
topic named ``support-…`` / ``support.…``) carries Zendesk event-webhook payloads
(:func:`~c360.sources.zendesk.decode_support` → :mod:`c360.speed.support`, state in
``realtime_support``); every other topic carries Segment messages
(:func:`~c360.sources.segment.decode_event` → :mod:`c360.speed.features`, state in
``realtime_state``, orders in ``realtime_order``). ``run(sources=…)`` overrides the rule.

**Commit order**, for every micro-batch:

1. read up to ``batch_size`` records from each owned partition, from the worker's position (it
   loads the position from ``stream_offsets`` whenever it takes a partition: at start, after a
   rebalance, after a conflict);
2. decode and validate each record with its topic's decoder (pure); an invalid one becomes a
   dead-letter row, never an exception;
3. take the states of the batch's identifiers from the worker's cache, loading the others from
   the store (a plain read, outside the write transaction; step 5a validates it);
4. apply the pure ``update`` functions to each event in offset order, in memory;
5. in **one serving-store transaction**:

   a. claim the offsets: move each partition's ``stream_offsets`` row from the batch's first
      offset to the offset after its last record, only if the row still holds the first
      (compare-and-set, :func:`~c360.speed.storage.claim_offsets`);
   b. upsert the changed ``realtime_state`` and ``realtime_support`` rows;
   c. insert the batch's ``realtime_order`` rows (one per order id; an id already stored keeps
      its row);
   d. insert the dead letters;
   e. commit;
6. only then put the loaded and new states in the cache, advance the in-memory positions and
   call ``on_commit``.

**Why this is exactly-once.** A state row and the offset that produced it are committed
atomically, so for every partition the store holds "the state after records ``< n``" together
with "next offset ``n``" (orders and dead letters ride in the same transaction). A crash before
the commit (anywhere in 1-5) rolls everything back; the restart reads from ``n`` again and,
``update`` being a pure function of (state, event) with no clock and no randomness, recomputes
the very same rows. A crash after the commit leaves both advanced; the restart reads on from
there. Nothing is lost (the log keeps every record), nothing is counted twice (no record's
effect is ever committed without its offset). The compare-and-set fences a second worker on the
same partition (a rebalance, a zombie, two ``stream run``): the first to commit wins, the other
rolls back and re-reads from the stored offset. The log's own consumer offsets (Kafka's) play no
part in correctness.

**The state cache.** Every change to an identifier's state is committed together with an offset
move of its partition (all events of an identifier are in one partition), and a claim from
offset ``n`` succeeds only if nobody moved the partition since this worker left it at ``n``. So
the states this worker last wrote or read for a partition are still the stored ones whenever its
next claim succeeds — including states read in step 3 outside the transaction — and a failed
claim rolls the batch back. The worker therefore keeps committed states in memory
(:class:`~c360.speed.cache.StateCache`: bounded, least recently written evicted first) and drops
the whole cache whenever its set of owned partitions changes (a rebalance) and on every offset
conflict.

**Throughput** (``bench/bench_stream.py``, ``docs/benchmarks.md``): besides the cache, rows are
written with one ``executemany`` per table (:func:`~c360.speed.storage.write_rows`), Segment
messages are decoded by a msgspec fast path, and Python's cyclic garbage collector is paused
while a micro-batch is processed (:func:`_collector_paused`).

That is exactly-once *processing of each log record*. The same message appended twice (a client
retry, a file published twice) is two records; ``update`` drops the second by its ``messageId``
(a per-identifier window, see :mod:`c360.speed.features`), and an order id is stored once.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Literal, TypeVar

from c360.contracts.serving import realtime_state, realtime_support
from c360.logs import EventLog, Record, TopicPartition
from c360.sources.segment import InvalidMessage, SegmentEvent, decode_event
from c360.sources.zendesk import InvalidSupportEvent, SupportEvent, decode_support
from c360.speed.cache import StateCache
from c360.speed.features import (
    ANONYMOUS_ID,
    ORDER_COMPLETED,
    USER_ID,
    Order,
    RealtimeState,
    StateKey,
    empty_state,
    order_of,
    update,
)
from c360.speed.storage import (
    OffsetConflict,
    claim_offsets,
    dead_letter_row,
    insert_dead_letters,
    insert_orders,
    load_states,
    load_support_states,
    state_row,
    support_row,
    write_rows,
)
from c360.speed.support import SupportState, empty_support_state, support_key, update_support
from c360.stores import ServingStore

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 5_000
DEFAULT_POLL_INTERVAL = 0.5
DEFAULT_CACHE_SIZE = 100_000  # states per kind; up to ~4 KB each (32 message ids)

Source = Literal["clickstream", "support"]
S = TypeVar("S")


def source_of(topic: str) -> Source:
    """Which decoder a topic needs: ``support`` / ``support-*`` / ``support.*`` carry Zendesk
    events, every other topic Segment messages."""
    if topic == "support" or topic.startswith(("support-", "support.")):
        return "support"
    return "clickstream"


@dataclass(frozen=True)
class BatchResult:
    """What one committed micro-batch did."""

    next_offsets: Mapping[TopicPartition, int]
    records: int
    events: int  # valid events applied
    duplicates: int  # valid events dropped as already seen
    dead_lettered: int
    state_rows: int  # realtime_state and realtime_support rows written
    orders: int  # realtime_order rows inserted (order ids not stored before)


@dataclass
class WorkerStats:
    """Totals of one :func:`run`."""

    records: int = 0
    events: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    orders: int = 0
    batches: int = 0
    conflicts: int = 0  # batches rolled back because another worker had moved the offsets

    def add(self, batch: BatchResult) -> None:
        self.records += batch.records
        self.events += batch.events
        self.duplicates += batch.duplicates
        self.dead_lettered += batch.dead_lettered
        self.orders += batch.orders
        self.batches += 1

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class _Caches:
    limit: int
    click: StateCache[RealtimeState] = field(init=False)
    support: StateCache[SupportState] = field(init=False)

    def __post_init__(self) -> None:
        self.click = StateCache(self.limit)
        self.support = StateCache(self.limit)

    def clear(self) -> None:
        self.click.clear()
        self.support.clear()


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
    sources: Mapping[str, Source] | None = None,
    cache_size: int = DEFAULT_CACHE_SIZE,
) -> WorkerStats:
    """Consume ``topics`` for consumer ``group`` into the serving store (see the module docs).

    ``batch_size`` bounds the records read per partition per micro-batch. With
    ``stop_when_caught_up`` it returns once every owned partition is read to its end; otherwise
    it polls every ``poll_interval`` seconds while idle, until ``should_stop()`` is true (checked
    between micro-batches, e.g. ``threading.Event().is_set``). ``on_commit`` is called after
    each commit (tests inject crashes there). ``sources`` maps topics to their decoder where
    :func:`source_of` would choose wrong; ``cache_size`` bounds the states kept in memory per
    kind (0: none). The store must be migrated.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    topic_sources = {topic: source_of(topic) for topic in topics} | dict(sources or {})
    caches = _Caches(cache_size)
    stats = WorkerStats()
    positions: dict[TopicPartition, int] = {}
    while should_stop is None or not should_stop():
        owned = _owned_positions(log, store, group, topics, positions)
        if owned.keys() != positions.keys():  # a rebalance: other workers may have written
            caches.clear()
        positions = owned
        try:
            with _collector_paused():
                batch = _read(log, positions, batch_size)
                result = (
                    _commit_batch(store, group, positions, batch, topic_sources, caches)
                    if batch
                    else None
                )
        except OffsetConflict as exc:
            logger.warning("%s", exc)
            stats.conflicts += 1
            caches.clear()
            positions = {}  # re-read every partition from its stored offset
            continue
        if result is None:
            if stop_when_caught_up and _caught_up(log, positions):
                break
            time.sleep(poll_interval)
            continue
        positions.update(result.next_offsets)
        stats.add(result)
        if on_commit is not None:
            on_commit(result)
    return stats


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a micro-batch is processed.

    A batch allocates several container objects per event, all freed by reference counting;
    the collector's passes over them and over the state cache cost about a fifth of the
    throughput. It runs again between batches (nothing here creates reference cycles).
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _read(
    log: EventLog, positions: Mapping[TopicPartition, int], batch_size: int
) -> dict[TopicPartition, list[Record]]:
    batch: dict[TopicPartition, list[Record]] = {}
    for tp, position in sorted(positions.items()):
        records = log.read(tp.topic, tp.partition, position, batch_size)
        if records:
            batch[tp] = records
    return batch


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


@dataclass
class _Decoded:
    clicks: list[SegmentEvent] = field(default_factory=list)
    support: list[SupportEvent] = field(default_factory=list)
    invalid: list[tuple[Record, str]] = field(default_factory=list)


def _decode(
    batch: Mapping[TopicPartition, Sequence[Record]], sources: Mapping[str, Source]
) -> _Decoded:
    decoded = _Decoded()
    invalid = decoded.invalid
    for tp, records in batch.items():
        if sources[tp.topic] == "support":
            support = decoded.support
            for record in records:
                try:
                    support.append(decode_support(record.value))
                except InvalidSupportEvent as exc:
                    invalid.append((record, exc.reason))
        else:
            clicks = decoded.clicks
            for record in records:
                try:
                    clicks.append(decode_event(record.value))
                except InvalidMessage as exc:
                    invalid.append((record, exc.reason))
    return decoded


@dataclass
class _Applied:
    clicks: dict[StateKey, RealtimeState]  # the current state of every key of the batch
    clicks_changed: list[StateKey]
    support: dict[StateKey, SupportState]
    support_changed: list[StateKey]
    orders: list[Order]
    events: int
    duplicates: int


def _current(
    keys: Iterable[StateKey],
    cache: StateCache[S],
    loaded: Mapping[StateKey, S],
    empty: Callable[[StateKey], S],
) -> dict[StateKey, S]:
    """The state of each key before the batch: cached, else stored, else empty."""
    cached = cache.get
    return {key: cached(key) or loaded.get(key) or empty(key) for key in keys}


def _apply(store: ServingStore, decoded: _Decoded, caches: _Caches) -> _Applied:
    """Steps 3 and 4: the batch's new states and orders, in memory."""
    click_keys = [
        (ANONYMOUS_ID, event.anonymous_id)
        if event.anonymous_id is not None
        else (USER_ID, event.user_id or "")  # the decoder guarantees one of the two
        for event in decoded.clicks
    ]
    support_keys = [support_key(event) for event in decoded.support]
    click_set, support_set = set(click_keys), set(support_keys)
    missing_clicks = caches.click.missing(click_set)
    missing_support = caches.support.missing(support_set)
    click_loaded: dict[StateKey, RealtimeState] = {}
    support_loaded: dict[StateKey, SupportState] = {}
    if missing_clicks or missing_support:
        with store.engine.connect() as conn:
            click_loaded = load_states(conn, missing_clicks) if missing_clicks else {}
            support_loaded = load_support_states(conn, missing_support) if missing_support else {}

    duplicates = 0
    clicks = _current(click_set, caches.click, click_loaded, empty_state)
    clicks_changed: dict[StateKey, None] = {}
    orders: dict[str, Order] = {}
    for key, event in zip(click_keys, decoded.clicks, strict=True):
        state = clicks[key]
        new = update(state, event)
        if new is state:
            duplicates += 1
            continue
        clicks[key] = new
        clicks_changed[key] = None
        if event.label == ORDER_COMPLETED:
            order = order_of(event, key, new["user_id"])
            if order is not None and order.order_id not in orders:
                orders[order.order_id] = order

    support = _current(support_set, caches.support, support_loaded, empty_support_state)
    support_changed: dict[StateKey, None] = {}
    for key, support_event in zip(support_keys, decoded.support, strict=True):
        current = support[key]
        changed = update_support(current, support_event)
        if changed is current:
            duplicates += 1
            continue
        support[key] = changed
        support_changed[key] = None

    return _Applied(
        clicks,
        sorted(clicks_changed),
        support,
        sorted(support_changed),
        list(orders.values()),
        len(decoded.clicks) + len(decoded.support) - duplicates,
        duplicates,
    )


def _commit_batch(
    store: ServingStore,
    group: str,
    positions: Mapping[TopicPartition, int],
    batch: Mapping[TopicPartition, Sequence[Record]],
    sources: Mapping[str, Source],
    caches: _Caches,
) -> BatchResult:
    decoded = _decode(batch, sources)
    applied = _apply(store, decoded, caches)
    moves = {tp: (positions[tp], records[-1].offset + 1) for tp, records in batch.items()}
    received_at = dt.datetime.now(dt.UTC)
    state_rows = [state_row(applied.clicks[key]) for key in applied.clicks_changed]
    support_rows = [support_row(applied.support[key]) for key in applied.support_changed]
    dead = [dead_letter_row(record, why, received_at) for record, why in decoded.invalid]
    with store.begin() as conn:
        claim_offsets(conn, group, moves)
        write_rows(store, conn, realtime_state, state_rows)
        write_rows(store, conn, realtime_support, support_rows)
        orders = insert_orders(store, conn, applied.orders)
        insert_dead_letters(conn, dead)
    caches.click.put(applied.clicks)
    caches.support.put(applied.support)
    result = BatchResult(
        next_offsets={tp: next_offset for tp, (_, next_offset) in moves.items()},
        records=sum(len(records) for records in batch.values()),
        events=applied.events,
        duplicates=applied.duplicates,
        dead_lettered=len(decoded.invalid),
        state_rows=len(state_rows) + len(support_rows),
        orders=orders,
    )
    logger.debug("committed %s", result)
    return result
