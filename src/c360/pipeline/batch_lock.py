"""One daily batch at a time: a lease in the serving store, held while a batch runs.

``c360 batch run``, ``c360 batch schedule`` (through :func:`c360.pipeline.daily.run_day`) and
the Dagster assets take the lease ``batch`` (:mod:`c360.stores.leases`) before their first
step. A second batch meanwhile is refused with :class:`BatchLocked`, which names the holder.
The holder renews the lease every third of ``batch.lock_ttl_seconds`` from a thread; a holder
that died (killed, its host gone) stops renewing, and its lease is taken over once it expires.
A holder whose lease was taken over nevertheless (its renewals failed for a whole TTL, the
store unreachable) learns it at its next renewal: :meth:`HeldLock.check` then raises
:class:`LockLost` and the batch stops before its next step.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from c360 import retry
from c360.errors import C360Error, TransientError
from c360.stores import ServingStore

log = logging.getLogger(__name__)

LEASE = "batch"
RENEWALS_PER_TTL = 3
RETRY_RENEWAL_SECONDS = 5.0  # a failed renewal is tried again this soon (or at the next tick)


class BatchLocked(TransientError):
    """Another daily batch holds the lock: this one did not start (retry when it is done)."""


class LockLost(TransientError):
    """The batch's lease expired and was taken over: it stopped before its next step."""


def new_owner() -> str:
    """This process's name as a lease owner: host, process id and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class HeldLock:
    """The lease while this process holds it; renewed by a thread until :meth:`stop`."""

    def __init__(self, store: ServingStore, owner: str, ttl: dt.timedelta) -> None:
        self.store = store
        self.owner = owner
        self.ttl = ttl
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="c360-batch-lock", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def check(self) -> None:
        """Raise :class:`LockLost` if another owner took the lease over."""
        if self.lost:
            raise LockLost(
                f"the batch lock expired and was taken over by another batch (not renewed "
                f"within batch.lock_ttl_seconds = {self.ttl.total_seconds():g}); stopped"
            )

    def _renew(self) -> None:
        interval = self.ttl.total_seconds() / RENEWALS_PER_TTL
        wait = interval
        while not self._stop.wait(wait):
            try:
                renewed = self.store.renew_lease(LEASE, self.owner, self.ttl)
            except C360Error as exc:
                log.warning("batch lock: renewal failed, trying again: %s", exc)
                wait = min(interval, RETRY_RENEWAL_SECONDS)
                continue
            if not renewed:
                log.error("batch lock: the lease was taken over by another batch")
                self._lost.set()
                return
            wait = interval


def _refusal(store: ServingStore) -> BatchLocked:
    held = store.lease(LEASE)
    if held is None:  # released between our try and this read
        return BatchLocked("another batch held the batch lock a moment ago; try again")
    since = held.acquired_at.isoformat(timespec="seconds")
    until = held.expires_at.isoformat(timespec="seconds")
    return BatchLocked(
        f"another batch is running: the batch lock is held by {held.owner} since {since} "
        f"(lease until {until}, renewed while it runs); wait for it to finish"
    )


@contextmanager
def batch_lock(
    store: ServingStore,
    ttl: dt.timedelta,
    *,
    wait: dt.timedelta = dt.timedelta(0),
    owner: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[HeldLock]:
    """Hold the batch lock inside the ``with``; :class:`BatchLocked` if another batch holds it
    for longer than ``wait`` (tried again with backoff meanwhile). Released at the end, even on
    an error."""
    owner = owner or new_owner()
    deadline = time.monotonic() + wait.total_seconds()
    backoff = retry.Backoff(base=1.0, cap=30.0)
    while not store.take_lease(LEASE, owner, ttl):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _refusal(store)
        sleep(min(remaining, backoff.next_delay()))
    held = HeldLock(store, owner, ttl)
    held.start()
    try:
        yield held
    finally:
        held.stop()
        try:
            store.release_lease(LEASE, owner)
        except C360Error as exc:  # it expires by itself
            log.warning("batch lock: could not release the lease (it will expire): %s", exc)
