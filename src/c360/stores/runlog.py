"""The daily pipeline's run log in the serving store (``batch_run``).

One row per (batch date, step) holds the latest attempt: running, succeeded, failed (with the
reason) or skipped. ``c360 batch status`` and the console's pipeline health read it; the
pipeline reads it to skip completed steps and to resume from a failed one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

from sqlalchemy import Connection, func, select

from c360.contracts import serving

KEYS = ("batch_date", "step")


@dataclass(frozen=True)
class StepRecord:
    """One attempt of one step of the daily pipeline."""

    batch_date: str
    step: str
    status: str  # running | succeeded | failed | skipped
    started_at: dt.datetime  # naive UTC
    finished_at: dt.datetime | None
    seconds: float | None
    rows: int | None
    detail: str | None

    def as_row(self) -> dict[str, object]:
        return asdict(self)


def steps(conn: Connection, day: dt.date) -> dict[str, StepRecord]:
    table = serving.batch_run
    query = select(table).where(table.c.batch_date == day.isoformat())
    return {row.step: StepRecord(**row._mapping) for row in conn.execute(query)}


def dates(conn: Connection, limit: int) -> list[str]:
    table = serving.batch_run
    query = select(table.c.batch_date).distinct().order_by(table.c.batch_date.desc()).limit(limit)
    return [str(d) for (d,) in conn.execute(query)]


def last_successes(conn: Connection) -> dict[str, dt.datetime]:
    """When each step last succeeded, on any batch date."""
    table = serving.batch_run
    query = (
        select(table.c.step, func.max(table.c.finished_at))
        .where(table.c.status == "succeeded")
        .group_by(table.c.step)
    )
    return {str(step): finished for step, finished in conn.execute(query) if finished is not None}
