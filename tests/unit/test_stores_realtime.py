"""How the speed layer binds rows: multi-row statements and time conversions, per dialect."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest
from sqlalchemy import DateTime, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from c360.contracts.serving import identity_stitch, realtime_order, realtime_state
from c360.contracts.times import epoch_us
from c360.stores import open_store
from c360.stores.realtime import (
    KEEP,
    MAX_ROWS_PER_STATEMENT,
    NEWEST_LINK,
    REPLACE,
    _conversion,
    _positional,
    _template,
    _upsert,
    execute,
    upserts,
)

_NAIVE_EPOCH = dt.datetime(1970, 1, 1)


def _random_times(count: int) -> list[dt.datetime]:
    rng = random.Random(7)
    span = (dt.datetime(9999, 12, 31) - dt.datetime(1, 1, 1)).total_seconds()
    return [
        dt.datetime(1, 1, 1)
        + dt.timedelta(seconds=rng.uniform(0, span), microseconds=rng.randint(0, 999_999))
        for _ in range(count)
    ]


def test_sqlite_times_bind_as_the_very_text_sqlalchemy_writes() -> None:
    dialect = sqlite.dialect()
    own = DateTime().dialect_impl(dialect).bind_processor(dialect)
    convert = _conversion(DateTime(), dialect)
    assert own is not None and convert is not None
    for when in [*_random_times(2_000), dt.datetime(2025, 3, 1), dt.datetime(1970, 1, 1)]:
        at = (when - _NAIVE_EPOCH) // dt.timedelta(microseconds=1)
        assert convert(at) == convert(when) == own(when)
    assert convert(None) is None


def test_postgres_times_bind_as_datetimes() -> None:
    convert = _conversion(DateTime(), postgresql.psycopg.dialect())
    assert convert is not None
    when = dt.datetime(2025, 3, 1, 10, 0, 0, 250_000)
    assert convert(epoch_us(when.replace(tzinfo=dt.UTC))) == convert(when) == when
    assert convert(None) is None


@pytest.mark.parametrize("count", [1, 3, MAX_ROWS_PER_STATEMENT, MAX_ROWS_PER_STATEMENT * 2 + 7])
def test_rows_go_in_few_statements_of_power_of_two_sizes(tmp_path: Path, count: int) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'serving.db'}")
    try:
        store.migrate()
        when = dt.datetime(2025, 3, 1, 10, 0)
        rows = [
            {"order_id": f"o{i}", "id_type": "anonymous_id", "id_value": "a", "user_id": None,
             "order_at": epoch_us(when.replace(tzinfo=dt.UTC)) + i, "revenue": float(i)}
            for i in range(count)
        ]  # fmt: skip
        writes = upserts(store, realtime_order, rows, rule=KEEP)
        sizes = [write.rows for write in writes]
        assert sum(sizes) == count
        assert all(size & (size - 1) == 0 and size <= MAX_ROWS_PER_STATEMENT for size in sizes)
        assert len(writes) <= count.bit_length() + count // MAX_ROWS_PER_STATEMENT
        with store.engine.begin() as conn:
            assert execute(conn, writes) == count
            assert execute(conn, upserts(store, realtime_order, rows[:1], rule=KEEP)) == 0  # kept
        with store.engine.connect() as conn:
            stored = conn.execute(select(realtime_order).order_by(realtime_order.c.revenue)).all()
        assert [(r.order_id, r.order_at) for r in stored] == [
            (f"o{i}", when + dt.timedelta(microseconds=i)) for i in range(count)
        ]
    finally:
        store.dispose()


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        # compiled only, never connected; but opening the store imports psycopg
        pytest.param("postgresql+psycopg://localhost/never-connected", marks=pytest.mark.postgres),
    ],
)
@pytest.mark.parametrize(
    ("table", "rule"),
    [
        *((table, rule) for table in (realtime_state, realtime_order) for rule in (REPLACE, KEEP)),
        (identity_stitch, NEWEST_LINK),
    ],
)
def test_multi_row_upserts_are_what_sqlalchemy_compiles(url: str, table: Table, rule: str) -> None:
    """The templates repeat the one-row VALUES group; SQLAlchemy's own multi-row compile of
    the same upsert must give the same text, placeholder for placeholder."""
    store = open_store(url)
    try:
        for rows in (1, 2, 5):
            statement = _upsert(store, table, rule, rows)
            expected = statement.compile(dialect=_positional(store.engine.dialect)).string
            assert _template(store, table, rule, rows).sql == expected
    finally:
        store.dispose()
