"""The one place backoff lives: retries for request/response code, a backoff for loops.

Adapters classify their driver's errors once (:class:`~c360.errors.TransientError` or
:class:`~c360.errors.TerminalError`); this module decides *how* to wait before trying again.
One rule everywhere: exponential backoff with full jitter, the n-th failure in a row waiting a
uniform time in ``[0, min(cap, base * 2**(n-1))]`` (AWS's "full jitter": uncoordinated clients
spread out instead of retrying in lockstep). A delay the other side asked for (an HTTP
``Retry-After``, carried as :attr:`TransientError.retry_after <c360.errors.TransientError>`)
replaces the backoff, up to ``retry_after_cap``.

- :func:`call_with_retries`: call a function until it returns, retrying what is transient at
  most ``attempts`` times in all, then re-raising the last error (built on tenacity);
- :class:`Backoff`: the delays of a long-running loop (a worker, a scheduler) that never gives
  up on transient errors: ``next_delay()`` after each failure, ``reset()`` after a success;
- :func:`sleep`: a sleep that wakes every 0.1 s to ask ``should_stop``, so a stop request is
  not kept waiting by a long backoff;
- :func:`parse_retry_after`: an HTTP ``Retry-After`` header (seconds or a date) in seconds.

Only :mod:`c360.errors` and libraries are imported here: in the layers it sits just above
``c360.errors``, so every adapter and pipeline may use it.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import random
import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from c360.errors import TransientError

T = TypeVar("T")

DEFAULT_ATTEMPTS = 5
DEFAULT_BASE = 0.5  # seconds: the first retry waits up to this
DEFAULT_CAP = 30.0  # seconds: no backoff waits longer
RETRY_AFTER_CAP = 300.0  # seconds: the longest server-given delay honoured
STOP_CHECK_INTERVAL = 0.1  # seconds between two should_stop() checks while sleeping

Sleeper = Callable[[float], None]


def full_jitter(
    failures: int,
    base: float = DEFAULT_BASE,
    cap: float = DEFAULT_CAP,
    rng: random.Random | None = None,
) -> float:
    """The wait after the ``failures``-th failure in a row: uniform in [0, min(cap, base·2^(n-1))].

    ``rng`` makes it reproducible (tests); the default is the ``random`` module.
    """
    if failures < 1:
        raise ValueError(f"failures must be >= 1, got {failures}")
    ceiling = min(cap, base * 2.0 ** min(failures - 1, 64))  # no float overflow on long outages
    return (rng or random).uniform(0.0, ceiling)


def is_transient(error: BaseException) -> bool:
    """The default retry rule: what an adapter classified as :class:`TransientError`."""
    return isinstance(error, TransientError)


def server_delay(error: BaseException) -> float | None:
    """The delay the other side asked for (``retry_after`` of the error), if any."""
    delay = getattr(error, "retry_after", None)
    return max(0.0, float(delay)) if isinstance(delay, int | float) else None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from an HTTP ``Retry-After`` header (delay-seconds or an HTTP date); None if
    absent or unreadable. A date in the past is 0."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def call_with_retries(
    call: Callable[[], T],
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    base: float = DEFAULT_BASE,
    cap: float = DEFAULT_CAP,
    retry_after_cap: float = RETRY_AFTER_CAP,
    retry_if: Callable[[BaseException], bool] = is_transient,
    on_retry: Callable[[BaseException, int, float], None] | None = None,
    sleep: Sleeper = time.sleep,
    rng: random.Random | None = None,
) -> T:
    """``call()``, tried at most ``attempts`` times while it raises what ``retry_if`` accepts.

    Before retry n (after the n-th failure) it waits the error's ``retry_after`` (capped at
    ``retry_after_cap``) if the error carries one, else :func:`full_jitter` (n, ``base``,
    ``cap``). ``on_retry(error, failures, delay)`` is called before each wait (to log or
    count). When the attempts run out, the last error is raised as it is; an error that
    ``retry_if`` refuses is raised at once.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")

    def wait(state: RetryCallState) -> float:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        given = server_delay(error) if error is not None else None
        if given is not None:
            return min(given, retry_after_cap)
        return full_jitter(state.attempt_number, base, cap, rng)

    def before_sleep(state: RetryCallState) -> None:
        outcome, action = state.outcome, state.next_action
        error = outcome.exception() if outcome is not None else None
        if on_retry is not None and error is not None and action is not None:
            on_retry(error, state.attempt_number, action.sleep)

    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait,
        retry=retry_if_exception(retry_if),
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )
    return retrying(call)


class Backoff:
    """The waits of a loop that retries transient failures for as long as it runs.

    ``next_delay()`` after each failure (the n-th in a row waits :func:`full_jitter` (n)),
    ``reset()`` after a success; ``failures`` counts the failures in a row so far.
    """

    def __init__(self, base: float = DEFAULT_BASE, cap: float = DEFAULT_CAP) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0
        self.rng = random.Random()

    def next_delay(self) -> float:
        """Count one more failure and return how long to wait before the next try."""
        self.failures += 1
        return full_jitter(self.failures, self.base, self.cap, self.rng)

    def reset(self) -> None:
        """A success: the next failure waits as little as the first."""
        self.failures = 0


def sleep(seconds: float, should_stop: Callable[[], bool] | None = None) -> bool:
    """Sleep ``seconds``, waking every 0.1 s to check ``should_stop``; True if it asked to stop."""
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        if should_stop is not None and should_stop():
            return True
        time.sleep(min(remaining, STOP_CHECK_INTERVAL))
    return False
