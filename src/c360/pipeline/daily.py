"""The daily batch pipeline: named, idempotent steps with a run log.

``run_day`` runs the steps of :data:`c360.pipeline.steps.STEPS` in order for date D. A step that
succeeded before is skipped unless ``force``; a failed step stops the run (later steps do not
run, so a failed quality check keeps yesterday's profile serving) and the next run resumes
from it. ``run_range`` backfills dates in order and stops at the first failed date.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

from c360.config import Settings
from c360.contracts.times import naive_utc_now
from c360.errors import C360Error
from c360.lake import Lake
from c360.pipeline.steps import STEPS
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
            "steps": [s.__dict__ for s in self.steps],
        }


def run_day(
    settings: Settings, day: dt.date, *, force: bool = False, skip: tuple[str, ...] = ()
) -> DayResult:
    lake = Lake(settings.lake.url)
    store = open_store(settings.serving.url)
    result = DayResult(day)
    try:
        store.migrate()
        runlog = RunLog(store)
        done = {
            name for name, record in store.step_records(day).items() if record.status == "succeeded"
        }
        for name, step in STEPS.items():
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
            started, clock = runlog.start(day, name), time.perf_counter()
            try:
                outcome = step(settings, lake, day)
            except C360Error as exc:
                runlog.finish(day, name, started, "failed", detail=str(exc))
                result.steps.append(
                    StepResult(name, "failed", time.perf_counter() - clock, None, str(exc))
                )
                log.error("batch %s: step %s failed: %s", day, name, exc)
                break
            except Exception as exc:
                runlog.finish(day, name, started, "failed", detail=f"{type(exc).__name__}: {exc}")
                raise
            runlog.finish(day, name, started, outcome.status, outcome.rows, outcome.detail)
            result.steps.append(
                StepResult(
                    name, outcome.status, time.perf_counter() - clock, outcome.rows, outcome.detail
                )
            )
    finally:
        store.dispose()
    return result


def run_range(
    settings: Settings,
    first: dt.date,
    last: dt.date,
    *,
    force: bool = False,
    skip: tuple[str, ...] = (),
) -> list[DayResult]:
    results = []
    day = first
    while day <= last:
        results.append(run_day(settings, day, force=force, skip=skip))
        if results[-1].status == "failed":
            break
        day += dt.timedelta(days=1)
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
