"""The daily batch pipeline: named, idempotent steps with a run log.

``run_day`` runs the steps of :data:`c360.pipeline.steps.STEPS` in order for date D. A step that
succeeded before is skipped unless ``force``; a failed step stops the run (later steps do not
run, so a failed quality check keeps yesterday's profile serving) and the next run resumes
from it. ``run_range`` backfills dates in order and stops at the first failed date.
``run_schedule`` runs yesterday's batch every day at a fixed UTC time and outlives failures:
see its docstring. One batch runs at a time: ``run_day`` holds the batch lock
(:mod:`c360.pipeline.batch_lock`), and a backfill holds it for its whole range. After each day,
its metrics go where ``metrics.*`` says (:mod:`c360.pipeline.batch_metrics`).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from c360 import logformat, retry
from c360.batch import quality
from c360.config import Settings
from c360.contracts.times import naive_utc_now
from c360.errors import C360Error, ConfigError, GiantClusterError, raised_at
from c360.lake import Lake
from c360.pipeline import batch_metrics
from c360.pipeline.batch_lock import HeldLock, batch_lock
from c360.pipeline.steps import STEPS, Step
from c360.stores import ServingStore, StepRecord, open_store

log = logging.getLogger(__name__)


class RunLog:
    """Each step's attempt as the run log in the serving store records it: running, then its
    outcome with the duration, rows and reason."""

    def __init__(self, store: ServingStore) -> None:
        self.store = store

    def start(self, day: dt.date, step: str) -> dt.datetime:
        started = naive_utc_now()
        self.store.record_step(
            StepRecord(day.isoformat(), step, "running", started, None, None, None, None)
        )
        return started

    def finish(
        self,
        day: dt.date,
        step: str,
        started: dt.datetime,
        status: str,
        rows: int | None = None,
        detail: str | None = None,
    ) -> None:
        finished = naive_utc_now()
        seconds = (finished - started).total_seconds()
        self.store.record_step(
            StepRecord(day.isoformat(), step, status, started, finished, seconds, rows, detail)
        )


class BatchFailed(C360Error):
    """A daily batch step failed; the run log holds the reason."""


@dataclass(frozen=True)
class StepResult:
    step: str
    status: str  # succeeded | skipped | done-before | failed
    seconds: float
    rows: int | None
    detail: str | None
    checks: tuple[quality.Check, ...] = ()  # the quality step's data-quality results, passed or not
    counts: Mapping[str, int] = field(default_factory=dict)  # see steps.Outcome

    def as_dict(self) -> dict[str, object]:
        return {**self.__dict__, "checks": [check.__dict__ for check in self.checks]}


def measured_by_failure(exc: C360Error) -> dict[str, Any]:
    """What a failed step still measured, as :class:`StepResult` fields: the quality checks
    that stopped the publish, the giant cluster that stopped the identity step."""
    if isinstance(exc, quality.QualityError):
        return {"checks": tuple(exc.checks)}
    if isinstance(exc, GiantClusterError):
        return {"counts": {"giant_clusters": 1}}
    return {}


@dataclass
class DayResult:
    batch_date: dt.date
    steps: list[StepResult] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "failed" if any(s.status == "failed" for s in self.steps) else "succeeded"

    def as_dict(self) -> dict[str, object]:
        return {
            "batch_date": self.batch_date.isoformat(),
            "status": self.status,
            "steps": [s.as_dict() for s in self.steps],
        }

    @classmethod
    def recorded(cls, store: ServingStore, day: dt.date) -> DayResult:
        """Day D as the run log holds it: each step's latest attempt."""
        return cls(
            day,
            [
                StepResult(r.step, r.status, r.seconds or 0.0, r.rows, r.detail)
                for r in store.step_records(day).values()
            ],
        )


def run_day(
    settings: Settings, day: dt.date, *, force: bool = False, skip: tuple[str, ...] = ()
) -> DayResult:
    """Run day D's steps under the batch lock (:mod:`c360.pipeline.batch_lock`):
    :class:`~c360.pipeline.batch_lock.BatchLocked` if another batch is running."""
    return run_range(settings, day, day, force=force, skip=skip)[0]


def lock_ttl(settings: Settings) -> dt.timedelta:
    return dt.timedelta(seconds=settings.batch.lock_ttl_seconds)


def _run_steps(
    settings: Settings,
    store: ServingStore,
    lake: Lake,
    result: DayResult,
    held: HeldLock,
    *,
    force: bool,
    skip: tuple[str, ...],
) -> None:
    day = result.batch_date
    done = {
        name for name, record in store.step_records(day).items() if record.status == "succeeded"
    }
    for name in STEPS:
        if name in skip or (name in done and not force):
            result.steps.append(
                StepResult(
                    name,
                    "done-before" if name in done else "skipped",
                    0.0,
                    None,
                    "skipped by request" if name in skip else None,
                )
            )
            continue
        held.check()
        clock = time.perf_counter()
        try:
            step = run_step(settings, store, lake, day, name)
        except Exception as exc:
            reason = f"{type(exc).__name__} raised at {raised_at(exc)}"
            result.steps.append(
                StepResult(name, "failed", time.perf_counter() - clock, None, reason)
            )
            raise
        result.steps.append(step)
        if step.status == "failed":
            break


def run_step(
    settings: Settings,
    store: ServingStore,
    lake: Lake,
    day: dt.date,
    name: str,
    step: Step | None = None,
) -> StepResult:
    """Run step ``name`` of day D (``step``, by default ``STEPS[name]``), recorded in the run log.

    A :class:`~c360.errors.C360Error` is the step's failure, returned (status ``failed``, the
    reason in ``detail``, a failed quality check's results in ``checks``); any other error is
    recorded as the failure and raised. The caller holds the batch lock."""
    runlog = RunLog(store)
    started, clock = runlog.start(day, name), time.perf_counter()
    try:
        outcome = (step or STEPS[name])(settings, lake, day)
    except C360Error as exc:
        runlog.finish(day, name, started, "failed", detail=str(exc))
        log.error("batch %s: step %s failed: %s", day, name, exc)
        seconds = time.perf_counter() - clock
        return StepResult(name, "failed", seconds, None, str(exc), **measured_by_failure(exc))
    except Exception as exc:
        runlog.finish(day, name, started, "failed", detail=f"{type(exc).__name__}: {exc}")
        raise
    runlog.finish(day, name, started, outcome.status, outcome.rows, outcome.detail)
    seconds = time.perf_counter() - clock
    return StepResult(
        name,
        outcome.status,
        seconds,
        outcome.rows,
        outcome.detail,
        outcome.checks,
        outcome.counts,
    )


def run_locked_step(
    settings: Settings,
    day: dt.date,
    name: str,
    step: Step | None = None,
    *,
    wait: dt.timedelta = dt.timedelta(0),
) -> StepResult:
    """One step of day D on its own, as an orchestrator runs the pipeline (step by step, each
    in its own process): under the batch lock, waiting up to ``wait`` for it, recorded in the
    run log; the batch metrics are written after it from the day's run log."""
    with logformat.log_context(batch_date=day.isoformat()):
        lake = Lake(settings.lake.url)
        store = open_store(settings.serving.url)
        try:
            store.migrate()
            with batch_lock(store, lock_ttl(settings), wait=wait):
                try:
                    return run_step(settings, store, lake, day, name, step)
                finally:
                    batch_metrics.export(settings.metrics, DayResult.recorded(store, day), store)
        finally:
            store.dispose()


def run_range(
    settings: Settings,
    first: dt.date,
    last: dt.date,
    *,
    force: bool = False,
    skip: tuple[str, ...] = (),
) -> list[DayResult]:
    """Days ``first`` to ``last`` in order, stopping at the first failed day, under one hold
    of the batch lock (no other batch runs between two days of a backfill):
    :class:`~c360.pipeline.batch_lock.BatchLocked` if another batch is running."""
    lake = Lake(settings.lake.url)
    store = open_store(settings.serving.url)
    results: list[DayResult] = []
    try:
        store.migrate()
        with batch_lock(store, lock_ttl(settings)) as held:
            day = first
            while day <= last:
                result = DayResult(day)
                results.append(result)
                with logformat.log_context(batch_date=day.isoformat()):
                    try:
                        _run_steps(settings, store, lake, result, held, force=force, skip=skip)
                    finally:  # a failed or crashed day is reported too: its alert rules fire
                        batch_metrics.export(settings.metrics, result, store)
                if result.status == "failed":
                    break
                day += dt.timedelta(days=1)
    finally:
        store.dispose()
    return results


@dataclass(frozen=True)
class BatchResult:
    """A one-call summary for callers that just want the day published (demo, tests)."""

    batch_date: dt.date
    persons: int
    identifiers: int
    seconds: float
    day: DayResult


def run_batch(settings: Settings, day: dt.date, *, force: bool = True) -> BatchResult:
    """Run every step for ``day`` (forced by default); raise if a step failed."""
    started = time.perf_counter()
    result = run_day(settings, day, force=force)
    failed = [s for s in result.steps if s.status == "failed"]
    if failed:
        raise BatchFailed(f"batch {day}: step {failed[0].step} failed: {failed[0].detail}")
    lake = Lake(settings.lake.url)
    return BatchResult(
        batch_date=day,
        persons=int(lake.manifest("profile", "batch_profile", day, "features")["rows"]),
        identifiers=int(lake.manifest("identity", "identity_map", day, "features")["rows"]),
        seconds=time.perf_counter() - started,
        day=result,
    )


_DAILY_TIME = re.compile(r"(\d{1,2}):(\d{2})")


def parse_daily_time(text: str) -> dt.time:
    """``HH:MM`` (00:00 to 23:59) as a time of day; a ValueError that says what is accepted."""
    match = _DAILY_TIME.fullmatch(text.strip())
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f"{text!r} is not a time of day: give HH:MM, from 00:00 to 23:59 (UTC)")
    return dt.time(int(match[1]), int(match[2]))


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def run_schedule(
    settings: Settings,
    at: dt.time,
    *,
    should_stop: Callable[[], bool] | None = None,
    on_wait: Callable[[dt.datetime], None] | None = None,
    on_result: Callable[[DayResult], None] | None = None,
    clock: Callable[[], dt.datetime] = _utc_now,
    sleep: Callable[[float, Callable[[], bool] | None], bool] = retry.sleep,
    backoff: retry.Backoff | None = None,
    run: Callable[[Settings, dt.date], DayResult] = run_day,
) -> None:
    """Run yesterday's batch every day at ``at`` (UTC) until ``should_stop()`` says so.

    The batch of date D is due at ``at`` on D + 1; the first is the next one due. A date whose
    run ends after the next is due is followed at once by the next date, so none is skipped.

    A failed try of a day — a step failed (the run log says which and why), another batch holds
    the lock, the store is unreachable, an unexpected error — is logged and tried again after
    ``backoff`` (default: exponential with full jitter from ``batch.retry_base_seconds`` up to
    ``batch.retry_cap_seconds``), at most ``batch.retries`` times; each try resumes at the
    failed step. Then the schedule waits for the next date (``c360 batch run --date D`` resumes
    the failed one). Each try that ran steps wrote the batch metrics, so the alert rules on a
    failed step fire. A :class:`~c360.errors.ConfigError` ends the schedule: nothing will fix
    itself.

    ``on_wait(due)`` is called before each wait, ``on_result`` after each try that ran;
    ``clock``, ``sleep`` (``(seconds, should_stop) -> stopped``) and ``run`` are there for tests.
    """
    batch = settings.batch
    backoff = backoff or retry.Backoff(batch.retry_base_seconds, batch.retry_cap_seconds)
    now = clock()
    first_due = dt.datetime.combine(now.date(), at, tzinfo=dt.UTC)
    day = now.date() - dt.timedelta(days=1 if first_due > now else 0)
    while should_stop is None or not should_stop():
        due = dt.datetime.combine(day + dt.timedelta(days=1), at, tzinfo=dt.UTC)
        if on_wait is not None:
            on_wait(due)
        if sleep(max(0.0, (due - clock()).total_seconds()), should_stop):
            return
        while (failure := _try_day(settings, day, run, on_result)) is not None:
            if backoff.failures >= batch.retries:
                tries = backoff.failures + 1
                log.error(
                    "batch %s %s; gave up after %d tries, going on with %s at its time",
                    day, failure, tries, _next(day),
                )  # fmt: skip
                break
            delay = backoff.next_delay()
            log.warning(
                "batch %s %s; trying again in %.1fs (retry %d of %d)",
                day, failure, delay, backoff.failures, batch.retries,
            )  # fmt: skip
            if sleep(delay, should_stop):
                return
        backoff.reset()
        day = _next(day)


def _next(day: dt.date) -> dt.date:
    return day + dt.timedelta(days=1)


def _try_day(
    settings: Settings,
    day: dt.date,
    run: Callable[[Settings, dt.date], DayResult],
    on_result: Callable[[DayResult], None] | None,
) -> str | None:
    """Run day D once: None if it succeeded, else what went wrong (for the log)."""
    try:
        result = run(settings, day)
    except ConfigError:
        raise
    except C360Error as exc:
        return f"failed: {exc}"
    except Exception as exc:  # unclassified: its message might quote data, not logged
        return f"failed: {type(exc).__name__} raised at {raised_at(exc)}"
    if on_result is not None:
        on_result(result)
    failed = [step for step in result.steps if step.status == "failed"]
    if failed:
        return f"failed at step {failed[0].step}: {failed[0].detail}"
    return None
