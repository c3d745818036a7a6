"""The stream worker: event log → pure feature updates → serving store, exactly once.

**Topics.** Each topic is decoded by its source's decoder (:func:`source_of`): ``support`` (or a
topic named ``support-…`` / ``support.…``) carries Zendesk event-webhook payloads
(:func:`~c360.contracts.zendesk.decode_support` → :mod:`c360.speed.support`, state in
``realtime_support``); every other topic carries Segment messages
(:func:`~c360.speed.events.decode_click` → :mod:`c360.speed.features`, state in
``realtime_state``, orders in ``realtime_order``). ``run(sources=…)`` overrides the rule.

**Commit order**, for every micro-batch:

1. read up to ``batch_size`` records from each owned partition, from the worker's position (it
   loads the position from ``stream_offsets`` whenever it takes a partition: at start, after a
   rebalance, after a conflict);
2. decode and validate each record with its topic's decoder (pure); an invalid one becomes a
   dead-letter row, never an exception; group the events by identifier, in offset order. An
   event time later than the record's append time plus ``max_clock_skew_seconds`` is invalid
   (the reason names ``events.max_clock_skew_seconds``): the append time, not the clock, so
   that decoding stays a pure function of the record (see :mod:`c360.speed.events`); then
   what names an erased person is dropped (below: *Erasure*);
3. take the states of the batch's identifiers from the worker's cache, loading the others from
   the store (a plain read, outside the write transaction; step 5a validates it);
4. apply the pure updates to each identifier's events in offset order, in memory
   (:func:`~c360.speed.features.fold`: one copy of the state per identifier and batch), and
   bind the changed rows — a :class:`~c360.stores.MicroBatch` — into multi-row statements
   (:meth:`~c360.stores.ServingStore.prepare_micro_batch`);
5. in **one serving-store transaction**
   (:meth:`~c360.stores.ServingStore.commit_micro_batch`), on the committer thread
   (:class:`_Committer`: batch ``n`` commits while steps 1-4 of batch ``n + 1`` run on its
   states; ``n + 1`` is submitted only once ``n`` has committed, and dropped if ``n`` failed):

   a. claim the offsets: move each partition's ``stream_offsets`` row from the batch's first
      offset to the offset after its last record, only if the row still holds the first
      (compare-and-set; :class:`~c360.stores.OffsetConflict` otherwise);
   a'. check that the suppression list is still the one the batch was computed against
      (:class:`~c360.stores.SuppressionChanged` otherwise: the batch rolls back and is computed
      again against the new list, like an offset conflict);
   b. upsert the changed ``realtime_state`` and ``realtime_support`` rows;
   c. insert the batch's ``realtime_order`` rows (one per order id; an id already stored keeps
      its row);
   d. upsert the cookies' identity links (the newest link of a cookie wins);
   e. insert the dead letters;
   f. commit;
6. only then put the loaded and new states in the cache and call ``on_commit``.

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

**Erasure** (:mod:`c360.pipeline.erasure`) does not pause the worker, and cannot be undone by
it. The worker reads the suppression list (the keyed hashes of erased identifiers, and its
generation) before its first batch and after every start-over, and drops from each decoded
batch the events of a suppressed cookie, customer id (as the key or as another cookie's
``userId``), order id or Zendesk user, and the dead letters whose payload names a suppressed
identifier (:func:`_drop_suppressed`; nothing is hashed while the list is empty, and each
identifier once while it is not). A batch read before the erasure suppressed the person (so
holding their events, even from records the erasure then redacted in the log) commits only if
the list's generation is unchanged when its transaction checks it (step 5a'): that check runs
after the offsets' claim, under SQLite's write lock and PostgreSQL's shared publish fence,
and the erasure's deletes take the fence exclusively (SQLite: ``BEGIN IMMEDIATE``). So such
a batch either commits before the deletes, which remove what it wrote, or meets the grown
generation and is recomputed without the person. On Kafka, where erased records stay in the
log until compaction, the same filter keeps a lagging worker or a replay from offset 0 from
bringing them back.

**The state cache.** Every change to an identifier's state is committed together with an offset
move of its partition (all events of an identifier are in one partition), and a claim from
offset ``n`` succeeds only if nobody moved the partition since this worker left it at ``n``. So
the states this worker last wrote or read for a partition are still the stored ones whenever its
next claim succeeds — including states read in step 3 outside the transaction — and a failed
claim rolls the batch back. The worker therefore keeps committed states in memory
(:class:`~c360.speed.cache.StateCache`: bounded, least recently written evicted first) and drops
the whole cache whenever its set of owned partitions changes (a rebalance), on every offset
conflict and after a transient error. The batch in flight is an overlay above the cache: a key
it holds is read from it, and a key it does not hold is not being written, so the store's copy
is current.

**Transient errors** do not end a polling worker. The event log and the serving store each classify
their driver's errors (a broker down, a timeout; PostgreSQL restarting, SQLite busy past its
timeout: :class:`~c360.stores.StoreUnavailable`); on a :class:`~c360.errors.TransientError` the
worker waits with exponential backoff and full jitter (:class:`c360.retry.Backoff`:
:data:`RETRY_BASE_S` doubling up to :data:`RETRY_MAX_S`), forgets its positions and cache, and
resumes from the stored offsets (``run(retry=…)``; a one-shot catch-up raises). Whether the batch
in flight committed before the store went away does not matter: its offsets say.

**Throughput** (``bench/bench_stream.py``, ``docs/benchmarks.md``): besides the cache, the log
is read column by column (:class:`~c360.logs.RecordBatch`: no object per record), Segment
messages are decoded by a msgspec fast path straight to integer event times
(:mod:`c360.speed.events`), each identifier's events are folded with one state copy per batch,
rows go in multi-row ``INSERT … ON CONFLICT`` statements of up to 512 rows (few, long calls
into the driver, which releases the GIL for them: the commit overlaps the next batch's work),
and Python's cyclic garbage collector is paused while the worker runs, which collects every
:data:`COLLECT_EVERY_S` seconds itself (:data:`_collector_paused`).

That is exactly-once *processing of each log record*. The same message appended twice (a client
retry, a file published twice) is two records; ``update`` drops the second by its ``messageId``
(a per-identifier window, see :mod:`c360.speed.features`), and an order id is stored once.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Literal, TypeVar

from c360 import logformat
from c360.config import DEFAULT_MAX_CLOCK_SKEW_SECONDS
from c360.contracts.segment import ORDER_COMPLETED, InvalidMessage
from c360.contracts.times import from_epoch_us, naive_from_epoch_us
from c360.contracts.zendesk import InvalidSupportEvent, SupportEvent, decode_support
from c360.errors import TransientError
from c360.identity.stitching import StitchLink
from c360.logs import EventLog, RecordBatch, TopicPartition, is_tombstone
from c360.pipeline.stream_metrics import StreamMetrics
from c360.privacy import SuppressionList
from c360.privacy.documents import payload_identifiers
from c360.retry import Backoff
from c360.retry import sleep as interruptible_sleep
from c360.speed.cache import StateCache
from c360.speed.events import NO_LIMIT, ClickEvent, fast_click, slow_click
from c360.speed.features import (
    ANONYMOUS_ID,
    USER_ID,
    Order,
    RealtimeState,
    StateKey,
    empty_state,
    fold,
)
from c360.speed.support import (
    ZENDESK_USER_ID,
    SupportState,
    empty_support_state,
    support_key,
    update_support,
)
from c360.stores import (
    DeadLetter,
    MicroBatch,
    OffsetConflict,
    PreparedBatch,
    ServingStore,
    SuppressionChanged,
)

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 20_000  # records per partition: a maximum, a live batch holds what arrived
DEFAULT_POLL_INTERVAL = 0.05  # the most an idle worker adds to an event's freshness
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
    suppressed: int = 0  # events and dead letters dropped: they name an erased person


@dataclass
class WorkerStats:
    """Totals of one :func:`run`."""

    records: int = 0
    events: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    orders: int = 0
    suppressed: int = 0  # events and dead letters dropped as naming an erased person
    batches: int = 0
    conflicts: int = 0  # batches rolled back because another worker had moved the offsets
    recomputed: int = 0  # batches computed against a suppression list an erasure then grew
    retries: int = 0  # transient errors (e.g. the event log unreachable) waited out

    def add(self, batch: BatchResult) -> None:
        self.records += batch.records
        self.events += batch.events
        self.duplicates += batch.duplicates
        self.dead_lettered += batch.dead_lettered
        self.orders += batch.orders
        self.suppressed += batch.suppressed
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
    retry: bool | None = None,
    max_clock_skew_seconds: float = DEFAULT_MAX_CLOCK_SKEW_SECONDS,
    metrics: StreamMetrics | None = None,
    commit_interval: float = 0.0,
) -> WorkerStats:
    """Consume ``topics`` for consumer ``group`` into the serving store (see the module docs).

    ``batch_size`` bounds the records read per partition per micro-batch. With
    ``stop_when_caught_up`` it returns once every owned partition is read to its end; otherwise
    it polls every ``poll_interval`` seconds while idle, until ``should_stop()`` is true (e.g.
    ``threading.Event().is_set``; checked once per micro-batch, before the batch is submitted
    for commit: the batch in flight still commits). ``on_commit`` is called after each commit,
    in commit order (tests inject crashes there). ``sources`` maps topics to their decoder where
    :func:`source_of` would choose wrong; ``cache_size`` bounds the states kept in memory per
    kind (0: none). With ``retry`` (the default when polling, not with
    ``stop_when_caught_up``: a one-shot caller reruns) a :class:`~c360.errors.TransientError`
    (a broker down, a network blip: the event log classifies its driver's errors) does not end
    the run: the worker waits, with exponential backoff and jitter, and resumes from the
    offsets stored in the serving store. ``max_clock_skew_seconds``
    (``events.max_clock_skew_seconds``): how far after its record's append time an event time may
    lie; later events are dead-lettered. ``metrics``: where to count what it does
    (:mod:`c360.pipeline.stream_metrics`). ``commit_interval``
    (``stream.commit_interval_seconds``): when polling, a micro-batch starts at most this often
    while events keep arriving, so they commit in fewer, larger batches (each commit costs the
    store's readers: SQLite's drop their page cache and read the written pages from the WAL);
    a full batch (a backlog) goes on at once. The store must be migrated.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    topic_sources = {topic: source_of(topic) for topic in topics} | dict(sources or {})
    skew_us = round(max_clock_skew_seconds * 1_000_000)
    worker = _Worker(
        log, store, group, topics, topic_sources, cache_size, on_commit, skew_us, metrics
    )
    retry = not stop_when_caught_up if retry is None else retry
    try:
        with _collector_paused(), logformat.log_context(consumer_group=group):
            pace = 0.0 if stop_when_caught_up else commit_interval  # a catch-up runs flat out
            _loop(worker, batch_size, stop_when_caught_up, poll_interval, should_stop, retry, pace)
            worker.settle()
    finally:
        worker.committer.close()
    return worker.stats


COLLECT_EVERY_S = 60.0  # the worker's own cyclic garbage collections (see _CollectorPause)
# When idle, the real-time segments that change with time alone are re-evaluated this often
# (c360.stores.live_segments.sweep: an abandoned cart enters after its silence, no event).
SWEEP_EVERY_S = 30.0


def _loop(
    worker: _Worker,
    batch_size: int,
    stop_when_caught_up: bool,
    poll_interval: float,
    should_stop: Callable[[], bool] | None,
    retry: bool,
    commit_interval: float,
) -> None:
    backoff = Backoff(RETRY_BASE_S, RETRY_MAX_S)
    next_collection = time.monotonic() + COLLECT_EVERY_S
    next_sweep = time.monotonic() + SWEEP_EVERY_S
    while True:
        if time.monotonic() >= next_collection:
            gc.collect()
            next_collection = time.monotonic() + COLLECT_EVERY_S
        step_started = time.monotonic()
        try:
            done = worker.step(batch_size, stop_when_caught_up, should_stop)
            if done is None and time.monotonic() >= next_sweep:  # idle: nothing in flight
                worker.store.sweep_live_segments()
                next_sweep = time.monotonic() + SWEEP_EVERY_S
        except TransientError as exc:
            if not retry:
                raise
            worker.stats.retries += 1
            if worker.metrics is not None:
                worker.metrics.count("retries")
            delay = backoff.next_delay()
            logger.warning(
                "%s; retrying in %.1fs (failure %d in a row)", exc, delay, backoff.failures
            )
            worker.start_over()
            if interruptible_sleep(delay, should_stop):
                return
            continue
        backoff.reset()
        if done:
            return
        if done is None:  # idle
            time.sleep(poll_interval)
        elif commit_interval and not worker.last_batch_full:  # events trickle in: gather more
            time.sleep(max(0.0, step_started + commit_interval - time.monotonic()))


RETRY_BASE_S = 0.5  # the first retry waits up to this, doubling with each failure in a row
RETRY_MAX_S = 30.0


class _Worker:
    """The state of one :func:`run`: positions, caches, totals and the committer."""

    def __init__(
        self,
        log: EventLog,
        store: ServingStore,
        group: str,
        topics: Sequence[str],
        sources: Mapping[str, Source],
        cache_size: int,
        on_commit: Callable[[BatchResult], None] | None,
        skew_us: int,
        metrics: StreamMetrics | None = None,
    ) -> None:
        self.log, self.store, self.group, self.topics = log, store, group, topics
        self.metrics = metrics
        self.skew_us = skew_us  # how far after its append time an event time may lie
        self.sources = sources
        self.on_commit = on_commit
        self.caches = _Caches(cache_size)
        self.stats = WorkerStats()
        self.committer = _Committer(store, group)
        # Where the next batch of each owned partition starts (after the batch in flight).
        self.positions: dict[TopicPartition, int] = {}
        # The suppression list the batches are computed against (read again after start_over).
        self.suppression: _Suppression | None = None
        self.last_batch_full = False  # a partition gave batch_size records: a backlog

    def step(
        self, batch_size: int, stop_when_caught_up: bool, should_stop: Callable[[], bool] | None
    ) -> bool | None:
        """One micro-batch: True to stop, False to go on at once, None when idle."""
        owned = _owned_positions(self.log, self.store, self.group, self.topics, self.positions)
        if owned.keys() != self.positions.keys():  # a rebalance: others may have written
            if not self.settle():
                return False
            self.caches.clear()
        self.positions = owned
        if self.suppression is None:
            self.suppression = _Suppression(self.store.suppression_list())
        started = time.perf_counter()
        batch = _read(self.log, owned, batch_size)
        self.last_batch_full = any(len(records) >= batch_size for records in batch.values())
        pending = self.committer.pending
        prepared = (
            _prepare(
                self.store,
                owned,
                batch,
                self.sources,
                self.caches,
                pending,
                self.skew_us,
                self.suppression,
            )
            if batch
            else None
        )
        if not self.settle():  # the batch in flight was fenced: this one built on it
            return False
        if should_stop is not None and should_stop():
            return True  # a batch computed but not submitted is dropped: nothing was written
        if prepared is None:
            if self.metrics is not None:
                self.metrics.lag(self.log, owned)
            return True if stop_when_caught_up and _caught_up(self.log, owned) else None
        prepared.started = started
        self.committer.submit(prepared)
        self.positions = {**owned, **prepared.next_offsets}
        return False

    def settle(self) -> bool:
        """Wait for the batch in flight; False if its offsets had moved (it rolled back)."""
        try:
            committed = self.committer.settle()
        except OffsetConflict as exc:
            logger.warning("%s", exc)
            self.stats.conflicts += 1
            if self.metrics is not None:
                self.metrics.count("commit_conflicts")
            self.start_over()
            return False
        except SuppressionChanged as exc:  # an erasure: its hashes are read with the offsets
            logger.info("%s", exc)
            self.stats.recomputed += 1
            self.start_over()
            return False
        if committed is not None:
            prepared, result = committed
            self.caches.click.put(prepared.clicks)
            self.caches.support.put(prepared.support)
            self.stats.add(result)
            if self.metrics is not None:
                self._measure(prepared, result)
            if self.on_commit is not None:
                self.on_commit(result)
        return True

    def _measure(self, prepared: _Prepared, result: BatchResult) -> None:
        assert self.metrics is not None
        counts = {
            "records": result.records,
            "events": result.events,
            "duplicates": result.duplicates,
            "state_rows": result.state_rows,
        }
        seconds = time.perf_counter() - prepared.started
        self.metrics.committed(counts, seconds, prepared.appended_ms)
        self.metrics.dead_lettered(prepared.invalid)
        self.metrics.lag(self.log, {**self.positions, **result.next_offsets})

    def start_over(self) -> None:
        """Forget every position and cached state: re-read from the stored offsets.

        After a conflict, a grown suppression list or a transient error; a batch still in
        flight is waited for (and may fail: the stored offsets tell). The suppression list is
        read again before the next batch.
        """
        try:
            self.settle()
        except TransientError as exc:  # the stored offsets tell what it left
            logger.warning("%s", exc)
        self.caches.clear()
        self.positions = {}
        self.suppression = None


class _Committer:
    """Step 5 in a background thread: one micro-batch in flight at a time, committed in order.

    While batch ``n`` commits (SQLite and PostgreSQL drivers release the GIL for the database
    work), the worker reads and computes batch ``n + 1`` on the states of ``n``
    (:attr:`pending`), and submits it only once ``n`` has committed. If ``n`` fails (an offset
    conflict, any error), ``n + 1`` is dropped unsubmitted: nothing is ever committed on top of
    a batch that did not commit.
    """

    def __init__(self, store: ServingStore, group: str) -> None:
        self._store = store
        self._group = group
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="c360-commit")
        self._inflight: tuple[_Prepared, Future[BatchResult]] | None = None

    @property
    def pending(self) -> _Prepared | None:
        """The batch in flight, if any: its states are the newest."""
        return None if self._inflight is None else self._inflight[0]

    def submit(self, prepared: _Prepared) -> None:
        if self._inflight is not None:
            raise RuntimeError("a micro-batch is already in flight: settle() it first")
        future = self._executor.submit(_commit, self._store, self._group, prepared)
        self._inflight = (prepared, future)

    def settle(self) -> tuple[_Prepared, BatchResult] | None:
        """Wait for the batch in flight; its result, or what its commit raised."""
        if self._inflight is None:
            return None
        prepared, future = self._inflight
        self._inflight = None
        return prepared, future.result()

    def close(self) -> None:
        """Wait for a batch still in flight (after an error elsewhere) and stop the thread."""
        self._executor.shutdown(wait=True)


class _CollectorPause:
    """Pause Python's cyclic garbage collector while a worker runs.

    A batch allocates several container objects per event, all freed by reference counting;
    the collector's passes over them and over the state cache cost about a fifth of the
    throughput. Nothing here creates reference cycles. Pausing only while a batch is computed
    was not enough: the first young-generation pass after it scanned every object the batch
    left alive (the new states, the batch still committing; 50 ms a batch, 6 % of the
    throughput), objects that reference counting frees a batch or two later anyway. So
    :func:`run` holds the pause for its whole loop and calls ``gc.collect()`` itself every
    :data:`COLLECT_EVERY_S` seconds, which bounds what cycles the rest of the process (the API
    server, in the demo) leaves behind. The pause is counted, so workers on several threads can
    each hold it; the collector runs again when none does — unless it was off to begin with.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._resume = False

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._holders == 0:
                self._resume = gc.isenabled()
                gc.disable()
            self._holders += 1
        try:
            yield
        finally:
            with self._lock:
                self._holders -= 1
                if self._holders == 0 and self._resume:
                    gc.enable()


_collector_paused = _CollectorPause()


def _read(
    log: EventLog, positions: Mapping[TopicPartition, int], batch_size: int
) -> dict[TopicPartition, RecordBatch]:
    batch: dict[TopicPartition, RecordBatch] = {}
    for tp, position in sorted(positions.items()):
        records = log.read_batch(tp.topic, tp.partition, position, batch_size)
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
    clicks: dict[StateKey, list[ClickEvent]] = field(default_factory=dict)  # in offset order
    support: list[SupportEvent] = field(default_factory=list)
    invalid: list[DeadLetter] = field(default_factory=list)
    events: int = 0  # valid events


def _limit(appended_ms: int, skew_us: int) -> int:
    """The latest plausible event time of a record: its append time plus the skew (epoch
    microseconds); no limit when its append time is unknown (a Kafka broker older than 0.10
    stamps none: the log reports 0)."""
    return appended_ms * 1000 + skew_us if appended_ms > 0 else NO_LIMIT


def _lowest_limit(records: RecordBatch, skew_us: int) -> int:
    """A limit no record's own is below: the fast path accepts an event time up to it and hands
    a later one to the slow path, which applies the record's own :func:`_limit` (so the answer
    is each record's own, at the cost of one ``min`` per batch rather than a limit per record)."""
    stamps = records.timestamps_ms
    lowest = min(stamps)
    if lowest <= 0:
        lowest = min((ms for ms in stamps if ms > 0), default=0)
    return _limit(lowest, skew_us)


def _decode(
    batch: Mapping[TopicPartition, RecordBatch], sources: Mapping[str, Source], skew_us: int
) -> _Decoded:
    decoded = _Decoded()
    invalid = decoded.invalid
    erased = 0  # erased records (tombstones): neither events nor dead letters
    for tp, records in batch.items():
        stamps = records.timestamps_ms
        if sources[tp.topic] == "support":
            support = decoded.support
            for offset, value, ms in zip(records.offsets, records.values, stamps, strict=True):
                if is_tombstone(value):
                    erased += 1
                    continue
                try:
                    limit = _limit(ms, skew_us)
                    not_after = None if limit == NO_LIMIT else from_epoch_us(limit)
                    support.append(decode_support(value, not_after))
                except InvalidSupportEvent as exc:
                    invalid.append(
                        DeadLetter(tp.topic, tp.partition, offset, value, exc.reason, exc.code)
                    )
            continue
        # Grouped by the identifier's text first (a tuple key per event costs more).
        by_anonymous_id: defaultdict[str, list[ClickEvent]] = defaultdict(list)
        by_user_id: defaultdict[str, list[ClickEvent]] = defaultdict(list)
        lowest = _lowest_limit(records, skew_us)
        events = [fast_click(value, lowest) for value in records.values]
        for i, event in enumerate(events):
            if event is None:
                value = records.values[i]
                if is_tombstone(value):
                    erased += 1
                    continue
                try:
                    event = slow_click(value, _limit(stamps[i], skew_us))
                except InvalidMessage as exc:
                    offset = records.offsets[i]
                    invalid.append(
                        DeadLetter(tp.topic, tp.partition, offset, value, exc.reason, exc.code)
                    )
                    continue
            anonymous_id = event.anonymous_id
            if anonymous_id is not None:
                by_anonymous_id[anonymous_id].append(event)
            else:  # the decoder guarantees one of the two
                by_user_id[event.user_id or ""].append(event)
        groups = decoded.clicks
        for id_type, grouped in ((ANONYMOUS_ID, by_anonymous_id), (USER_ID, by_user_id)):
            for id_value, group in grouped.items():
                existing = groups.get((id_type, id_value))
                if existing is None:
                    groups[id_type, id_value] = group
                else:  # the same identifier in another partition (several topics)
                    existing += group
    decoded.events = sum(len(r) for r in batch.values()) - len(invalid) - erased
    return decoded


# The suppression list's identifier type of each kind of state key.
_KEY_TYPES = {
    ANONYMOUS_ID: "anonymous_id",
    USER_ID: "customer_id",
    ZENDESK_USER_ID: "zendesk_user_id",
}


class _Suppression:
    """The suppression list a worker computes its batches against, with the verdicts it has
    reached (an identifier is hashed once, not once per batch; at most :data:`MEMO` kept)."""

    MEMO = 1 << 20

    def __init__(self, current: SuppressionList) -> None:
        self.list = current
        self._memo: dict[tuple[str, str], bool] = {}

    def __call__(self, id_type: str, value: str | None) -> bool:
        if value is None:
            return False
        key = (id_type, value)
        found = self._memo.get(key)
        if found is None:
            if len(self._memo) >= self.MEMO:
                self._memo.clear()
            found = self._memo[key] = self.list.suppressed(id_type, value)
        return found


def _drop_suppressed(decoded: _Decoded, suppressed: _Suppression) -> int:
    """Drop what names an erased person from a decoded batch, as erasure matches their rows
    in the real-time tables (:data:`c360.stores.erasure.PERSONAL_TABLES`): events of their
    cookie or customer id (as the key, or as the ``userId`` of another cookie's event), their
    orders, their Zendesk user's events, and dead letters whose payload names them. How many
    went (they are neither events nor dead letters)."""
    dropped = 0
    for key in list(decoded.clicks):
        events = decoded.clicks[key]
        if suppressed(_KEY_TYPES[key[0]], key[1]):
            kept: list[ClickEvent] = []
        else:
            kept = [
                e
                for e in events
                if not suppressed("customer_id", e.user_id)
                and not (e.label == ORDER_COMPLETED and _order_suppressed(e, suppressed))
            ]
        if len(kept) != len(events):
            dropped += len(events) - len(kept)
            if kept:
                decoded.clicks[key] = kept
            else:
                del decoded.clicks[key]
    support = [e for e in decoded.support if not suppressed("zendesk_user_id", e.user_id)]
    letters = [
        letter
        for letter in decoded.invalid
        if not any(suppressed(t, v) for t, v in payload_identifiers(letter.payload))
    ]
    dropped_events = dropped + len(decoded.support) - len(support)
    decoded.events -= dropped_events
    dropped = dropped_events + len(decoded.invalid) - len(letters)
    decoded.support, decoded.invalid = support, letters
    return dropped


def _order_suppressed(event: ClickEvent, suppressed: _Suppression) -> bool:
    order_id = event.properties.get("order_id")
    return order_id is not None and suppressed("order_id", str(order_id))


@dataclass
class _Prepared:
    """A micro-batch computed in memory (steps 1-4), ready to commit (step 5)."""

    moves: dict[TopicPartition, tuple[int, int]]  # (first offset, next offset) per partition
    clicks: dict[StateKey, RealtimeState]  # the state of every identifier of the batch
    clicks_changed: list[StateKey]
    support: dict[StateKey, SupportState]
    support_changed: list[StateKey]
    invalid: list[DeadLetter]
    records: int
    events: int
    duplicates: int
    suppressed: int
    bound: PreparedBatch  # the changed rows, bound into statements (the store's part)
    appended_ms: dict[TopicPartition, int] = field(default_factory=dict)  # last record's, per tp
    started: float = 0.0  # time.perf_counter() when its records were read

    @property
    def next_offsets(self) -> dict[TopicPartition, int]:
        return {tp: next_offset for tp, (_, next_offset) in self.moves.items()}


def _current(
    keys: Iterable[StateKey],
    pending: Mapping[StateKey, S],
    cache: StateCache[S],
    loaded: Mapping[StateKey, S],
    empty: Callable[[StateKey], S],
) -> dict[StateKey, S]:
    """The state of each key before the batch: in flight, else cached, else stored, else
    empty."""
    in_flight, cached = pending.get, cache.get
    return {key: in_flight(key) or cached(key) or loaded.get(key) or empty(key) for key in keys}


def _missing(
    keys: Iterable[StateKey], pending: Mapping[StateKey, S], cache: StateCache[S]
) -> list[StateKey]:
    """The keys whose state must be read from the store: neither in flight nor cached."""
    return [key for key in cache.missing(keys) if key not in pending]


def _prepare(
    store: ServingStore,
    positions: Mapping[TopicPartition, int],
    batch: Mapping[TopicPartition, RecordBatch],
    sources: Mapping[str, Source],
    caches: _Caches,
    pending: _Prepared | None,
    skew_us: int,
    suppression: _Suppression,
) -> _Prepared:
    """Steps 2-4: the batch's new states, orders and dead letters, in memory.

    ``pending`` is the batch still committing, whose states are newer than the cache's; a key
    it does not hold is not being written, so the store's copy of it is current. What names an
    erased person (``suppression``) is dropped first.
    """
    decoded = _decode(batch, sources, skew_us)
    suppressed = _drop_suppressed(decoded, suppression) if suppression.list else 0
    groups = decoded.clicks
    pending_clicks = pending.clicks if pending is not None else {}
    pending_support = pending.support if pending is not None else {}
    support_keys = [support_key(event) for event in decoded.support]
    support_set = set(support_keys)
    missing_clicks = _missing(groups, pending_clicks, caches.click)
    missing_support = _missing(support_set, pending_support, caches.support)
    click_loaded = store.load_states(missing_clicks) if missing_clicks else {}
    support_loaded = store.load_support_states(missing_support) if missing_support else {}

    duplicates = 0
    clicks = _current(groups, pending_clicks, caches.click, click_loaded, empty_state)
    clicks_changed: list[StateKey] = []
    # An order id is kept once per batch, from the first identifier (in the batch's grouping)
    # that shows it; across batches the store keeps the first committed row.
    orders: dict[str, Order] = {}
    stitches: list[StitchLink] = []
    unresolved: list[StateKey] = []  # new rows, or a changed user_id: their person may change
    for key, events in groups.items():
        before = clicks[key]
        folded = fold(before, events)
        duplicates += len(events) - folded.applied
        if folded.applied:
            link = _new_link(key, before, folded.state)
            if link is not None:
                stitches.append(link)
            if not before["events_total"] or before["user_id"] != folded.state["user_id"]:
                unresolved.append(key)
            clicks[key] = folded.state
            clicks_changed.append(key)
            for order in folded.orders:
                orders.setdefault(order.order_id, order)

    support = _current(
        support_set, pending_support, caches.support, support_loaded, empty_support_state
    )
    support_changed: dict[StateKey, None] = {}
    for key, support_event in zip(support_keys, decoded.support, strict=True):
        current = support[key]
        changed = update_support(current, support_event)
        if changed is current:
            duplicates += 1
            continue
        support[key] = changed
        support_changed[key] = None

    changed_clicks, changed_support = sorted(clicks_changed), sorted(support_changed)
    moves = {tp: (positions[tp], records.next_offset) for tp, records in batch.items()}
    changes = MicroBatch(
        moves=moves,
        states=[clicks[key] for key in changed_clicks],
        support=[support[key] for key in changed_support],
        orders=list(orders.values()),
        links=stitches,
        dead_letters=decoded.invalid,
        unresolved=sorted(unresolved),
        suppression=suppression.list.generation,
    )
    return _Prepared(
        moves=moves,
        clicks=clicks,
        clicks_changed=changed_clicks,
        support=support,
        support_changed=changed_support,
        invalid=decoded.invalid,
        records=sum(len(records) for records in batch.values()),
        events=decoded.events - duplicates,
        duplicates=duplicates,
        suppressed=suppressed,
        bound=store.prepare_micro_batch(changes),
        appended_ms={
            tp: records.timestamps_ms[-1] for tp, records in batch.items() if records.timestamps_ms
        },
    )


def _new_link(key: StateKey, before: RealtimeState, after: RealtimeState) -> StitchLink | None:
    """The cookie's link to a customer when this batch identified it as a new customer.

    Only a change of customer makes a link: a logged-in cookie carries its userId on every
    event, and re-linking it each batch would cost an upsert per active cookie per batch. The
    link's time is that of the batch's newest message with the userId.
    """
    user_id, at = after["user_id"], after["user_id_at"]
    if key[0] != "anonymous_id" or user_id is None or at is None:
        return None
    if before["user_id"] == user_id:
        return None
    return StitchLink(key[1], user_id, naive_from_epoch_us(at))


def _commit(store: ServingStore, group: str, prepared: _Prepared) -> BatchResult:
    """Step 5: one transaction (runs in the committer's thread)."""
    orders = store.commit_micro_batch(group, prepared.bound)
    result = BatchResult(
        next_offsets=prepared.next_offsets,
        records=prepared.records,
        events=prepared.events,
        duplicates=prepared.duplicates,
        dead_lettered=len(prepared.invalid),
        state_rows=len(prepared.clicks_changed) + len(prepared.support_changed),
        orders=orders,
        suppressed=prepared.suppressed,
    )
    logger.debug("committed %s", result)
    return result
