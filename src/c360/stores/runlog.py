"""The daily pipeline's run log, kept in the serving store (``batch_run``).

One row per (batch date, step) holds the latest attempt: running, succeeded, failed (with the
reason) or skipped. ``c360 batch status`` and the console's pipeline health read it; the
pipeline reads it to skip completed steps and to resume from a failed one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from c360.contracts import serving
from c360.stores import ServingStore

KEYS = ("batch_date", "step")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class StepRecord:
    batch_date: str
    step: str
    status: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    seconds: float | None
    rows: int | None
    detail: str | None


class RunLog:
    def __init__(self, store: ServingStore) -> None:
        self.store = store

    def _write(self, row: dict[str, Any]) -> None:
        with self.store.begin() as conn:
            self.store.upsert(conn, serving.batch_run, [row], KEYS)

    def start(self, day: dt.date, step: str) -> dt.datetime:
        started = _now()
        self._write(
            {
                "batch_date": day.isoformat(),
                "step": step,
                "status": "running",
                "started_at": started,
                "finished_at": None,
                "seconds": None,
                "rows": None,
                "detail": None,
            }
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
        finished = _now()
        self._write(
            {
                "batch_date": day.isoformat(),
                "step": step,
                "status": status,
                "started_at": started,
                "finished_at": finished,
                "seconds": (finished - started).total_seconds(),
                "rows": rows,
                "detail": detail,
            }
        )

    def steps(self, day: dt.date) -> dict[str, StepRecord]:
        table = serving.batch_run
        query = select(table).where(table.c.batch_date == day.isoformat())
        with self.store.engine.connect() as conn:
            return {row.step: StepRecord(**row._mapping) for row in conn.execute(query)}

    def dates(self, limit: int = 14) -> list[str]:
        table = serving.batch_run
        query = (
            select(table.c.batch_date).distinct().order_by(table.c.batch_date.desc()).limit(limit)
        )
        with self.store.engine.connect() as conn:
            return [str(d) for (d,) in conn.execute(query)]
