"""The read audit's fast write path changes no time: a read's is the datetime
``datetime.fromtimestamp`` gives, and SQLite's bulk insert binds it as SQLAlchemy does."""

from __future__ import annotations

import datetime as dt
import random

from sqlalchemy import Date, DateTime
from sqlalchemy.dialects import sqlite

from c360.api.audit import _naive
from c360.stores.sqlite import _bind_processor


def test_a_reads_time_is_the_one_fromtimestamp_gives() -> None:
    rng = random.Random(7)
    second = 1_796_000_000
    times = [rng.uniform(1.7e9, 1.9e9) for _ in range(100_000)]
    times += [second + rng.randrange(2_000_001) / 2e6 for _ in range(100_000)]  # ties at ½ µs
    times += [second + 0.9999995, second + 0.0000005, float(second)]
    for unix in times:
        expected = dt.datetime.fromtimestamp(unix, dt.UTC).replace(tzinfo=None)
        assert _naive(unix) == expected, unix


def test_sqlite_binds_a_time_as_sqlalchemy_does() -> None:
    dialect = sqlite.dialect()
    bind = _bind_processor(DateTime(), dialect)
    slow = DateTime().dialect_impl(dialect).bind_processor(dialect)
    assert bind is not None and slow is not None
    values: list[object] = [
        dt.datetime(2026, 12, 6, 10, 0),
        dt.datetime(2026, 12, 6, 10, 0, 0, 1),
        dt.datetime(999, 1, 2, 3, 4, 5, 999_999),
        dt.datetime(2026, 12, 6, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        dt.date(2026, 12, 6),
        None,
    ]
    for value in values:
        assert bind(value) == slow(value), value
    assert bind(values[0]) == "2026-12-06 10:00:00.000000"
    assert _bind_processor(Date(), dialect) is not None  # other types: SQLAlchemy's own
