"""The read audit's buffer: profile reads recorded in memory, written in batches.

The profile read is the website's hot path (thousands a second), so recording one must cost
next to nothing: :meth:`ReadAudit.record` appends a tuple to a deque (atomic under the
interpreter lock, well under a microsecond) and returns. A background thread takes everything
buffered every ``api.audit_flush_seconds`` and writes it in one transaction
(:meth:`~c360.stores.ServingStore.record_reads`); the app's shutdown stops the thread and
writes what is left.

**Bounded**: at most ``api.audit_buffer_size`` reads wait; beyond that (the store has been
down for a while) new reads are not recorded — counted in ``c360_audit_dropped_total`` and
logged once per flush — rather than growing the memory without end. A failed write keeps the
reads for the next flush (within the bound).

**What a crash can lose**: the reads of the last flush interval (a kill -9, a power cut) — at
most ``audit_flush_seconds`` of reads, or the whole buffer if the store was down. A clean
shutdown (SIGTERM, Ctrl-C) loses nothing.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import threading
import time

from c360.api import metrics
from c360.errors import C360Error, raised_at
from c360.stores import ServingStore
from c360.stores.audit import Read

logger = logging.getLogger(__name__)

_Pending = tuple[float, str, str, str]  # unix time, key id, person id, route


class ReadAudit:
    """Buffered recording of profile reads; see the module docstring."""

    def __init__(self, store: ServingStore, buffer_size: int, flush_seconds: float) -> None:
        self._store = store
        self._buffer: collections.deque[_Pending] = collections.deque()
        self._buffer_size = buffer_size
        self._flush_seconds = flush_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._flushing = threading.Lock()
        self.dropped = 0

    def record(self, key_id: str, person_id: str, route: str) -> None:
        """Note that the key ``key_id`` read ``person_id`` through ``route`` (a template)."""
        if len(self._buffer) >= self._buffer_size:
            self.dropped += 1
            return
        self._buffer.append((time.time(), key_id, person_id, route))

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="c360-read-audit", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and write what is buffered."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self._flush_seconds):
            self.flush()

    def flush(self) -> int:
        """Write every buffered read now; how many were written (0 if the store refused)."""
        with self._flushing:
            taken: list[_Pending] = []
            buffer = self._buffer
            while buffer:
                taken.append(buffer.popleft())
            self._report_dropped()
            if not taken:
                return 0
            reads = [Read(_naive(at), key_id, pid, route) for at, key_id, pid, route in taken]
            try:
                self._store.record_reads(reads)
            except C360Error as exc:
                self._put_back(taken)
                logger.warning("profile reads not audited yet, kept for the next flush: %s", exc)
                return 0
            except Exception as exc:  # unclassified: its message is not logged
                self._put_back(taken)
                logger.error(
                    "profile reads not audited yet (%s raised at %s), kept for the next flush",
                    type(exc).__name__,
                    raised_at(exc),
                )
                return 0
            return len(reads)

    def _put_back(self, taken: list[_Pending]) -> None:
        room = self._buffer_size - len(self._buffer)
        kept = taken[:room] if room > 0 else []
        self.dropped += len(taken) - len(kept)
        self._buffer.extendleft(reversed(kept))

    def _report_dropped(self) -> None:
        if self.dropped:
            metrics.AUDIT_DROPPED.inc(self.dropped)
            logger.warning(
                "%d profile reads were not audited: the audit buffer was full "
                "(api.audit_buffer_size)",
                self.dropped,
            )
            self.dropped = 0


_EPOCH = dt.datetime(1970, 1, 1)


def _naive(unix: float) -> dt.datetime:
    """The naive UTC time of a ``time.time()``: what ``datetime.fromtimestamp(unix, UTC)``
    gives (both round the fraction's microseconds half to even), in half its time."""
    return _EPOCH + dt.timedelta(seconds=unix)
