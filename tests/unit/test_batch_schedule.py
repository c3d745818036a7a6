"""`c360 batch schedule`: the daily loop outlives failures (an injected clock, no waiting)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner

from c360.cli.main import cli
from c360.config import Settings
from c360.errors import ConfigError, DataError, TransientError
from c360.pipeline.batch_lock import BatchLocked
from c360.pipeline.daily import DayResult, StepResult, parse_daily_time, run_schedule
from c360.retry import Backoff

UTC = dt.UTC
SETTINGS = Settings.model_validate({"batch": {"retries": 2}})
D = dt.date(2025, 3, 1)
AT = dt.time(2, 0)


def after(days: int) -> dt.date:
    return D + dt.timedelta(days=days)


class FakeTime:
    """A clock that moves only when slept on; records every wait."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now
        self.waits: list[float] = []

    def clock(self) -> dt.datetime:
        return self.now

    def sleep(self, seconds: float, should_stop: Callable[[], bool] | None) -> bool:
        self.waits.append(seconds)
        self.now += dt.timedelta(seconds=seconds)
        return False


def day(date: dt.date, status: str = "succeeded", detail: str | None = None) -> DayResult:
    return DayResult(date, [StepResult("identity", status, 1.0, None, detail)])


class Script:
    """``run`` for the schedule: what each date does, in turn; stops after ``days`` dates."""

    def __init__(self, time: FakeTime, outcomes: dict[dt.date, list[object]], days: int) -> None:
        self.time, self.outcomes, self.days = time, outcomes, days
        self.calls: list[tuple[dt.date, dt.datetime]] = []

    def __call__(self, settings: Settings, date: dt.date) -> DayResult:
        self.calls.append((date, self.time.now))
        todo = self.outcomes.get(date, [])
        outcome = todo.pop(0) if todo else day(date)
        if isinstance(outcome, BaseException):
            raise outcome
        assert isinstance(outcome, DayResult)
        return outcome

    def done(self) -> bool:
        """True once ``days`` dates have run to the end (their scripted failures used up)."""
        return len({date for date, _ in self.calls if not self.outcomes.get(date)}) >= self.days

    def schedule(self, **options: Any) -> None:
        """The schedule at 02:00 on this script and fake time, until ``done()``."""
        clock, sleep = self.time.clock, self.time.sleep
        run_schedule(
            SETTINGS, AT, should_stop=self.done, clock=clock, sleep=sleep, run=self, **options
        )


def test_it_runs_yesterday_at_the_time_and_retries_a_failed_day_with_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    time = FakeTime(dt.datetime(2025, 3, 2, 1, 30, tzinfo=UTC))  # before 02:00: D's run is today
    script = Script(
        time,
        {
            D: [day(D, "failed", "identity: a giant cluster")],  # then resumed, and succeeds
            after(1): [KeyError("customer 42")] * 3,  # an unexpected bug, every try
            after(2): [TransientError("store down"), BatchLocked("another batch is running")],
        },
        days=4,
    )
    reported: list[DayResult] = []
    waits: list[dt.datetime] = []
    with caplog.at_level(logging.WARNING, logger="c360.pipeline.daily"):
        backoff = Backoff(base=1.0, cap=4.0)
        script.schedule(on_wait=waits.append, on_result=reported.append, backoff=backoff)
    dates = [date for date, _ in script.calls]
    assert dates == [D, D, after(1), after(1), after(1), after(2), after(2), after(2), after(3)]
    assert waits == [dt.datetime(2025, 3, n, 2, 0, tzinfo=UTC) for n in (2, 3, 4, 5)]
    assert script.calls[0][1] == dt.datetime(2025, 3, 2, 2, 0, tzinfo=UTC)  # on time
    assert time.waits[0] == 30 * 60
    retry_waits = [time.waits[1], time.waits[3], time.waits[4], time.waits[6], time.waits[7]]
    caps = (1, 1, 2, 1, 2)  # exponential backoff, reset after each day
    assert all(0 <= w <= cap for w, cap in zip(retry_waits, caps, strict=True))
    assert [r.batch_date for r in reported] == [D, D, after(2), after(3)]
    assert (
        "batch 2025-03-01 failed at step identity: identity: a giant cluster; trying again in"
        in caplog.text
    )
    assert "(retry 1 of 2)" in caplog.text
    assert (
        "batch 2025-03-02 failed: KeyError raised at" in caplog.text
        and "gave up after 3 tries, going on with 2025-03-03 at its time" in caplog.text
    )
    assert "customer 42" not in caplog.text  # an unclassified message is not logged
    assert "batch 2025-03-03 failed: store down; trying again in" in caplog.text
    assert "batch 2025-03-03 failed: another batch is running; trying again in" in caplog.text


def test_after_the_time_the_first_run_is_tomorrow() -> None:
    time = FakeTime(dt.datetime(2025, 3, 2, 2, 0, tzinfo=UTC))  # exactly 02:00: too late
    script = Script(time, {}, days=1)
    script.schedule()
    assert script.calls == [(dt.date(2025, 3, 2), dt.datetime(2025, 3, 3, 2, 0, tzinfo=UTC))]


def test_a_day_that_overruns_the_next_is_followed_at_once() -> None:
    time = FakeTime(dt.datetime(2025, 3, 2, 1, 0, tzinfo=UTC))

    def slow(settings: Settings, date: dt.date) -> DayResult:
        calls.append(date)
        time.now += dt.timedelta(hours=30)  # a run longer than a day
        return day(date)

    calls: list[dt.date] = []
    run_schedule(
        SETTINGS,
        AT,
        should_stop=lambda: len(calls) >= 3,
        clock=time.clock,
        sleep=time.sleep,
        run=slow,
    )
    assert calls == [D, after(1), after(2)]  # none skipped
    assert time.waits[1:] == [0.0, 0.0]


def test_a_config_error_ends_the_schedule() -> None:
    time = FakeTime(dt.datetime(2025, 3, 2, 1, 0, tzinfo=UTC))
    script = Script(time, {D: [ConfigError("serving.url", "unsupported scheme")]}, days=5)
    with pytest.raises(ConfigError, match=r"serving\.url"):
        script.schedule()
    assert len(script.calls) == 1


def test_without_retries_a_failed_day_is_logged_and_the_next_day_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    time = FakeTime(dt.datetime(2025, 3, 2, 1, 0, tzinfo=UTC))
    script = Script(time, {D: [DataError("run log damaged")]}, days=2)
    no_retries = Settings.model_validate({"batch": {"retries": 0}})
    run_schedule(
        no_retries, AT, should_stop=script.done, clock=time.clock, sleep=time.sleep, run=script
    )
    assert [date for date, _ in script.calls] == [D, after(1)]
    assert (
        "batch 2025-03-01 failed: run log damaged; gave up after 1 tries, going on with "
        "2025-03-02 at its time" in caplog.text
    )


def test_the_default_backoff_comes_from_the_settings() -> None:
    time = FakeTime(dt.datetime(2025, 3, 2, 1, 0, tzinfo=UTC))
    script = Script(time, {D: [TransientError("down")] * 2}, days=1)
    settings = Settings.model_validate(
        {"batch": {"retries": 5, "retry_base_seconds": 10, "retry_cap_seconds": 15}}
    )
    run_schedule(
        settings, AT, should_stop=script.done, clock=time.clock, sleep=time.sleep, run=script
    )
    assert len(script.calls) == 3
    assert 0 <= time.waits[1] <= 10 and 0 <= time.waits[2] <= 15


def test_a_stop_during_a_wait_ends_it_without_running() -> None:
    calls: list[dt.date] = []

    def stopped(seconds: float, should_stop: Callable[[], bool] | None) -> bool:
        return True

    run_schedule(
        SETTINGS,
        AT,
        clock=lambda: dt.datetime(2025, 3, 2, 1, 0, tzinfo=UTC),
        sleep=stopped,
        run=lambda settings, date: calls.append(date) or day(date),
    )
    assert calls == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [("02:00", dt.time(2, 0)), ("0:05", dt.time(0, 5)), ("23:59", dt.time(23, 59))],
)
def test_daily_times(text: str, expected: dt.time) -> None:
    assert parse_daily_time(text) == expected


@pytest.mark.parametrize(
    "text", ["25:00", "24:00", "12:60", "abc", "noon", "12", "12:5", "-1:00", "1:00:00", ""]
)
def test_bad_daily_times_are_refused_by_the_command(text: str) -> None:
    with pytest.raises(ValueError, match="HH:MM"):
        parse_daily_time(text)
    result = CliRunner().invoke(cli, ["batch", "schedule", "--at", text])
    assert result.exit_code == 2
    assert "not a time of day: give HH:MM, from 00:00 to 23:59" in result.output
