"""The one retry helper: bounded retries with full-jitter backoff, and the loop backoff."""

from __future__ import annotations

import random
import time

import pytest

from c360.errors import TerminalError, TransientError
from c360.retry import Backoff, call_with_retries, full_jitter, parse_retry_after, sleep


class Flaky:
    """Raises the scripted errors in turn, then returns the number of calls."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.calls


def test_transient_errors_are_retried_with_full_jitter_backoff() -> None:
    waits: list[float] = []
    retried: list[tuple[str, int, float]] = []
    flaky = Flaky(TransientError("blip"), TransientError("blip"), TransientError("blip"))
    result = call_with_retries(
        flaky,
        attempts=5,
        base=1.0,
        cap=3.0,
        sleep=waits.append,
        on_retry=lambda error, n, delay: retried.append((str(error), n, delay)),
        rng=random.Random(7),
    )
    assert result == flaky.calls == 4
    bounds = [1.0, 2.0, 3.0]  # min(cap, base * 2^(n-1))
    assert all(0 <= wait <= bound for wait, bound in zip(waits, bounds, strict=True))
    assert [(message, n) for message, n, _ in retried] == [("blip", 1), ("blip", 2), ("blip", 3)]
    assert [delay for _, _, delay in retried] == waits


def test_the_last_error_is_raised_when_the_attempts_run_out() -> None:
    errors = [TransientError(f"try {n}") for n in range(1, 4)]
    flaky = Flaky(*errors, TransientError("never reached"))
    with pytest.raises(TransientError) as caught:
        call_with_retries(flaky, attempts=3, sleep=lambda _: None)
    assert caught.value is errors[-1]
    assert flaky.calls == 3


def test_terminal_and_unclassified_errors_are_not_retried() -> None:
    for error in (TerminalError("bad key"), ValueError("bug")):
        flaky = Flaky(error)
        with pytest.raises(type(error)):
            call_with_retries(flaky, sleep=lambda _: pytest.fail("slept"))
        assert flaky.calls == 1


def test_a_server_given_delay_replaces_the_backoff_up_to_its_cap() -> None:
    waits: list[float] = []
    flaky = Flaky(TransientError("429", retry_after=0), TransientError("503", retry_after=900))
    call_with_retries(flaky, base=60.0, cap=60.0, retry_after_cap=120.0, sleep=waits.append)
    assert waits == [0.0, 120.0]


def test_the_caller_may_say_what_else_is_transient() -> None:
    flaky = Flaky(ConnectionResetError("peer"))
    result = call_with_retries(
        flaky, retry_if=lambda e: isinstance(e, ConnectionError), sleep=lambda _: None
    )
    assert result == 2


def test_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="attempts"):
        call_with_retries(lambda: None, attempts=0)


def test_full_jitter_is_bounded_and_does_not_overflow() -> None:
    rng = random.Random(1)
    for failures in range(1, 12):
        assert 0 <= full_jitter(failures, 0.5, 30.0, rng) <= min(30.0, 0.5 * 2 ** (failures - 1))
    assert 0 <= full_jitter(10_000, 0.5, 30.0, rng) <= 30.0
    with pytest.raises(ValueError):
        full_jitter(0)


def test_backoff_counts_failures_in_a_row_and_resets() -> None:
    backoff = Backoff(base=0.5, cap=2.0)
    delays = [backoff.next_delay() for _ in range(5)]
    assert backoff.failures == 5
    assert all(0 <= d <= b for d, b in zip(delays, [0.5, 1.0, 2.0, 2.0, 2.0], strict=True))
    backoff.reset()
    assert backoff.failures == 0
    assert backoff.next_delay() <= 0.5 and backoff.failures == 1


def test_sleep_wakes_up_to_stop() -> None:
    asked = []

    def should_stop() -> bool:
        asked.append(True)
        return len(asked) >= 2

    started = time.monotonic()
    assert sleep(30.0, should_stop) is True
    assert time.monotonic() - started < 1.0
    assert sleep(0.01) is False
    assert sleep(0.0, lambda: True) is False  # nothing to wait for


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, None), ("7", 7.0), ("1.5", 1.5), ("-3", 0.0), ("soon", None), ("inf", None)],
)
def test_retry_after_headers(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_a_retry_after_date_in_the_past_is_now() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
