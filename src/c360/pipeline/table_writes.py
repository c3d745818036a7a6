"""Session tables to lake partitions, two at a time, so that both cores encode Parquet.

pyarrow's Parquet writer encodes a partition on one core (the C++ writer can encode a row
group's columns in parallel, but pyarrow does not expose that option: apache/arrow#50866), and
reading the rows from the session takes a fraction of the time encoding them does. So two
writer threads each write one table's partition (:meth:`~c360.lake.Lake.write_partition`,
staged and committed as ever) while the calling thread, the only one that talks to the
session, feeds them both.

The session runs one query at a time (a second query ends the first one's stream), so a table
is read in slices by ``rowid``, each slice a query of its own, rather than as one stream: the
calling thread goes from one writer to the other as each wants more, and no writer has more
than a few batches waiting (memory stays bounded whatever the size of a table). A plain scan
yields one batch per row group of the table, and the file gets one row group per batch; a
slice ends on a row group's end (a batch its upper bound may have cut short is left to the next
slice), so the slices, in ``rowid`` order, give the same batches as one stream, and the file
is the one a single stream writes. A view has no ``rowid``: it is read as one stream, and the
other writer waits meanwhile.

A failure anywhere (reading the session, casting or encoding a batch, the lake) stops the
writes: the writers still writing abort and discard their staged partitions (no table gets
half a partition), and the first error is raised. Partitions committed before it stay
committed, as they do when the tables are written one after another.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial

import pyarrow as pa

from c360.contracts.compute import LocalSql
from c360.lake import Lake, PartitionManifest

log = logging.getLogger(__name__)

WRITERS = 2  # tables encoded at once: one per core of the machines c360 is sized for
# DuckDB's largest row group: a plain scan of a table yields one batch per row group.
ROW_GROUP_ROWS = 122_880
SLICE_ROWS = 4 * ROW_GROUP_ROWS  # rowids a slice spans
# A writer with fewer batches than this waiting gets the next slice of its table.
WAITING_BATCHES = 2
# Batches a writer may have waiting at most (a slice never reaches it; a view's stream waits).
MOST_WAITING = WAITING_BATCHES + SLICE_ROWS // ROW_GROUP_ROWS

# (lake table name, session table or view, schema written)
Output = tuple[str, str, pa.Schema]


class WriteAborted(Exception):
    """A writer stopped because another write of the same call failed."""


class _Feed:
    """The batches of one table on their way to the thread writing its partition."""

    def __init__(self, changed: threading.Condition, name: str, schema: pa.Schema) -> None:
        self._changed = changed  # shared by every feed of a call, and notified on any change
        self.name = name
        self._schema = schema
        self._waiting: deque[pa.RecordBatch] = deque()
        self._closed = False
        self._aborted = False
        self.writer_done = False

    def wants_more(self) -> bool:
        """Whether the writer is short of batches (ask holding the condition)."""
        return len(self._waiting) < WAITING_BATCHES and not self.writer_done

    def put(self, batch: pa.RecordBatch) -> bool:
        """Queue ``batch`` (once fewer than :data:`MOST_WAITING` wait); False if the writer
        has stopped."""
        with self._changed:
            self._changed.wait_for(lambda: len(self._waiting) < MOST_WAITING or self.writer_done)
            if self.writer_done:
                return False
            self._waiting.append(batch)
            self._changed.notify_all()
        return True

    def close(self, abort: bool = False) -> None:
        """The last batch is queued; or, with ``abort``, the writer is to give up."""
        with self._changed:
            self._closed = True
            if abort:
                self._aborted = True
                self._waiting.clear()
            self._changed.notify_all()

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._waiting) or self._closed)
                if self._aborted:
                    raise WriteAborted(f"{self.name}: aborted, another table's write failed")
                if not self._waiting:
                    return
                batch = self._waiting.popleft()
                self._changed.notify_all()
            yield batch.cast(self._schema)


class _Reader:
    """Reads one table of the session (or a view) for its feed, a slice at a time."""

    def __init__(self, local: LocalSql, table: str, schema: pa.Schema, batch_rows: int) -> None:
        self._local = local
        self._table = table
        self._columns = ", ".join(schema.names)
        self._batch_rows = batch_rows
        self._start = 0  # the first rowid of the next slice
        self._last: int | None = None  # the table's last rowid, once asked

    def read(self, feed: _Feed) -> bool:
        """Queue the next slice's batches; False once the table (or the writer) is done."""
        if self._last is None:
            if not self._is_table():
                self._stream(f"SELECT {self._columns} FROM {self._table}", feed)
                return False
            last = self._local.rows(f"SELECT max(rowid) FROM {self._table}")[0][0]
            if last is None:
                return False  # empty: the file has the schema and no row group, as a stream's
            self._last = int(last)
        start, end = self._start, self._start + SLICE_ROWS
        sql = (
            f"SELECT {self._columns}, rowid FROM {self._table} "
            f"WHERE rowid >= {start} AND rowid < {end}"
        )
        held: pa.RecordBatch | None = None  # the last batch, which ``end`` may have cut short
        for batch in self._local.batches(sql, self._batch_rows):
            if held is not None and not feed.put(_without_rowid(held)):
                return False
            held = batch
        self._start = end
        if held is not None:
            rowids = held.column(held.num_columns - 1)
            first, final = rowids[0].as_py(), rowids[-1].as_py()
            if held.num_rows < ROW_GROUP_ROWS and final == end - 1 < self._last and first > start:
                self._start = first  # perhaps part of a row group: read it whole next time
            elif not feed.put(_without_rowid(held)):
                return False
        return self._start <= self._last

    def _is_table(self) -> bool:
        found = self._local.rows(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [self._table]
        )
        return bool(found[0][0])

    def _stream(self, sql: str, feed: _Feed) -> None:
        for batch in self._local.batches(sql, self._batch_rows):
            if not feed.put(batch):
                return


def _without_rowid(batch: pa.RecordBatch) -> pa.RecordBatch:
    return batch.select(range(batch.num_columns - 1))


def write_tables(
    local: LocalSql,
    lake: Lake,
    day: dt.date,
    outputs: Sequence[Output],
    *,
    source: str,
    zone: str,
    batch_rows: int,
) -> None:
    """Write each output's session table (or view) as the lake partition
    ``<zone>/<source>/<name>/dt=<day>``, up to :data:`WRITERS` at a time, in batches of at
    most ``batch_rows`` rows (a table's: its row groups); each partition is committed as its
    write ends, in whatever order they end. Only the calling thread queries ``local``."""
    changed = threading.Condition()
    todo = deque(outputs)
    writing: dict[Future[PartitionManifest], _Feed] = {}
    reading: dict[_Feed, _Reader] = {}  # the feeds with rows still to read, oldest first

    def ready() -> bool:  # a writer has ended, or wants more batches
        return any(f.done() for f in writing) or any(f.wants_more() for f in reading)

    with ThreadPoolExecutor(WRITERS, thread_name_prefix="lake-write") as pool:
        try:
            while todo or writing:
                while todo and len(writing) < WRITERS:
                    name, table, schema = todo.popleft()
                    feed = _Feed(changed, name, schema)
                    future = pool.submit(
                        lake.write_partition, source, name, day, feed, schema=schema, zone=zone
                    )
                    future.add_done_callback(partial(_writer_done, changed, feed))
                    writing[future] = feed
                    reading[feed] = _Reader(local, table, schema, batch_rows)
                with changed:
                    changed.wait_for(ready)
                    hungry = next((f for f in reading if f.wants_more()), None)
                for future in [f for f in writing if f.done()]:
                    future.result()  # the writer's error, if it failed
                    del writing[future]
                if hungry is not None and not reading[hungry].read(hungry):
                    hungry.close()
                    del reading[hungry]
        except BaseException as error:
            for feed in writing.values():
                feed.close(abort=True)
            pool.shutdown(wait=True)
            _log_other_failures(writing, error)
            raise


def _writer_done(changed: threading.Condition, feed: _Feed, _: Future[PartitionManifest]) -> None:
    with changed:
        feed.writer_done = True
        changed.notify_all()


def _log_other_failures(
    writing: dict[Future[PartitionManifest], _Feed], raised: BaseException
) -> None:
    """Errors of other writers than the one raised (which would otherwise go unseen)."""
    for future, feed in writing.items():
        error = None if future.cancelled() else future.exception()
        if error is not None and error is not raised and not isinstance(error, WriteAborted):
            log.warning("lake write of %s failed too: %r", feed.name, error)
