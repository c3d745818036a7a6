"""Data-quality checks on the day's profile before it is published.

A failed *critical* check stops the publish: yesterday's profile keeps serving and the reason
is in the run log. Non-critical checks only warn.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from c360.config import QualitySettings
from c360.errors import TerminalError

# (source, table) whose freshness is watched: the raw inputs of the batch.
WATCHED_SOURCES = (
    ("shop", "customers"),
    ("shop", "orders"),
    ("mailchimp", "members"),
    ("mailchimp", "email_activity"),
    ("zendesk", "events"),
)


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    critical: bool
    detail: str


class QualityError(TerminalError):
    """Critical checks failed; ``checks`` holds every check's result, ``failed`` those."""

    def __init__(self, failed: list[Check], checks: list[Check] | None = None) -> None:
        self.failed = failed
        self.checks = checks if checks is not None else failed
        super().__init__("; ".join(f"{c.name}: {c.detail}" for c in failed))


@dataclass(frozen=True)
class Earlier:
    """The newest earlier day's profile: its date and how many persons it held."""

    day: dt.date
    rows: int


def _row_count(earlier: Earlier | None, settings: QualitySettings, rows: int) -> Check:
    if earlier is None:
        return Check("profile row count", True, True, f"{rows} persons; no earlier day to compare")
    change = abs(rows - earlier.rows) / max(earlier.rows, 1)
    return Check(
        "profile row count",
        change <= settings.row_count_tolerance,
        True,
        f"{rows} persons vs {earlier.rows} on {earlier.day} ({change:.1%} change, tolerance "
        f"{settings.row_count_tolerance:.0%}; set quality.row_count_tolerance)",
    )


def _freshness(
    day: dt.date, newest: Mapping[tuple[str, str], dt.date | None], settings: QualitySettings
) -> list[Check]:
    checks = []
    for (source, table), last in newest.items():
        age = (day - last).days if last is not None else None
        fresh = age is not None and age <= settings.freshness_days
        detail = "no data yet" if age is None else f"newest partition {last} ({age} days old)"
        checks.append(
            Check(
                f"freshness {source}.{table}", fresh, settings.stale_source_blocks_publish, detail
            )
        )
    return checks


def run_checks(
    day: dt.date,
    profile: pa.Table,
    person: pa.Table,
    earlier: Earlier | None,
    newest: Mapping[tuple[str, str], dt.date | None],
    settings: QualitySettings,
) -> list[Check]:
    """The checks of day D's ``profile`` (batch_profile) and ``person`` tables, against the
    previous day's profile (``earlier``) and the newest partition on or before D of each
    :data:`WATCHED_SOURCES` table (``newest``)."""
    ids = profile.column("person_id")
    distinct = pc.count_distinct(ids).as_py()
    missing_email = person.column("email").null_count / max(person.num_rows, 1)
    return [
        _row_count(earlier, settings, profile.num_rows),
        Check("person_id not null", ids.null_count == 0, True, f"{ids.null_count} null ids"),
        Check(
            "person_id unique",
            distinct == profile.num_rows,
            True,
            f"{profile.num_rows - distinct} duplicated ids",
        ),
        Check(
            "email null rate",
            missing_email <= settings.max_null_rate,
            True,
            f"{missing_email:.2%} of persons without email (max {settings.max_null_rate:.0%};"
            " set quality.max_null_rate)",
        ),
        *_freshness(day, newest, settings),
    ]


def enforce(checks: list[Check]) -> None:
    failed = [c for c in checks if c.critical and not c.passed]
    if failed:
        raise QualityError(failed, checks)
