"""SQLite serving store (embedded default): WAL so readers never block the publisher."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, DateTime, Engine, Table, create_engine, event
from sqlalchemy.dialects.sqlite import Insert, insert
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.types import TypeEngine

from c360.stores.base import Refusal, StoreDialect
from c360.stores.columns import FROM_TEXT

# Errors SQLite reports while another connection holds the lock it needs: passing.
_BUSY = ("database is locked", "database table is locked", "database schema is locked")
# What SQLite says of a database file it cannot open (serving.url's path), and of a statement
# past one of its limits (too many parameters, a string or row too big, an expression too deep).
_CANNOT_OPEN = "unable to open database file"
_LIMITS = ("too many", "too big", "too large")
BUSY_TIMEOUT_S = 30.0
MMAP_BYTES = 1 << 30  # address space, not memory: pages come from the OS cache
CACHE_KIB = 64 * 1024  # per connection
_BEGIN = "c360_begin"  # execution option: the BEGIN mode of a transaction (IMMEDIATE, …)


class SQLiteDialect(StoreDialect):
    name = "sqlite"

    def create_engine(self, url: str) -> Engine:
        """``?timeout=S`` in the URL sets how long a write waits for another writer's lock
        (default :data:`BUSY_TIMEOUT_S`) before it is a passing error."""
        parsed = make_url(url)
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        timeout = float(parsed.query.get("timeout", BUSY_TIMEOUT_S))  # type: ignore[arg-type]
        engine = create_engine(url, connect_args={"timeout": timeout})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy issue BEGIN itself (pysqlite's implicit transactions are off).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            # Profile reads touch a few pages at random: map the file rather than copy each
            # page out of the OS cache (a fifth of a read's time), and keep more of them.
            cursor.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
            cursor.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get(_BEGIN, '')}")

        return engine

    def insert(self, table: Table) -> Insert:
        return insert(table)

    def json_values(self, parameter: str) -> str:
        return f"(SELECT value FROM json_each({parameter}))"

    def now_ms(self) -> str:
        return "(julianday('now') - 2440587.5) * 86400000.0"

    def count_json_greater(self, column: str, bound: str) -> str:
        return f"(SELECT count(*) FROM json_each({column}) WHERE json_each.value > {bound})"

    def to_date(self, expression: str) -> str:
        return f"date({expression})"

    def earlier(self, left: str, right: str) -> str:
        return f"min({left}, {right})"  # dates and times are ISO text: compared as text

    def later(self, left: str, right: str) -> str:
        return f"max({left}, {right})"

    def bulk_insert(
        self,
        conn: Connection,
        table: Table,
        rows: Iterable[Sequence[Any]],
        columns: Sequence[str] | None = None,
    ) -> None:
        """One ``executemany`` of the rows, each value bound as SQLAlchemy binds its column
        (datetimes as the text the store holds)."""
        names = columns or [column.name for column in table.columns]
        values = _bound(conn, table, names, rows)
        marks = ", ".join("?" for _ in names)
        if values:  # no parameters at all would be one statement without any
            conn.exec_driver_sql(_insert_sql(table, names, f"VALUES ({marks})"), values)

    def append_rows(
        self, conn: Connection, table: Table, rows: Sequence[Sequence[Any]], columns: Sequence[str]
    ) -> None:
        """One ``INSERT … SELECT`` of the rows as one JSON array (``json_each``), values bound
        as :meth:`bulk_insert` binds them. The driver's ``executemany`` takes the interpreter's
        lock back after each row's step, and with the event loop busy each take waits out the
        thread switch interval: a flush of 2,600 reads took 7.8 s so, holding the write lock,
        against 59 ms in one statement (``bench_audit.py --busy``, docs/benchmarks.md)."""
        values = _bound(conn, table, columns, rows)
        if not values:
            return
        picks = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(columns)))
        statement = _insert_sql(table, columns, f"SELECT {picks} FROM json_each(?)")
        conn.exec_driver_sql(statement, (orjson.dumps(values).decode(),))

    def analyze(self, conn: Connection, tables: Iterable[str]) -> None:
        """Nothing: without statistics SQLite already plans the publish's reads by their indexes
        (search and timeline: measured on 120k persons), and ANALYZE reads whole tables."""

    def epoch_ms(self, expression: str) -> str:
        return f"((julianday({expression}) - 2440587.5) * 86400000.0)"

    def days_to_today(self, date: str) -> str:
        return f"CAST(julianday(date('now')) - julianday({date}) AS INTEGER)"

    def is_transient(self, error: BaseException) -> bool:
        message = str(error).lower()
        return isinstance(error, sqlite3.OperationalError) and any(b in message for b in _BUSY)

    def refusal(self, error: BaseException) -> Refusal:
        """A file it cannot open is the connection; a constraint, a value or a limit is the
        statement's (SQLite's messages name the column or limit, never the value)."""
        message = str(error).lower()
        if isinstance(error, sqlite3.OperationalError) and _CANNOT_OPEN in message:
            return "connection"
        if isinstance(error, sqlite3.IntegrityError | sqlite3.DataError) or (
            isinstance(error, sqlite3.OperationalError) and any(m in message for m in _LIMITS)
        ):
            return "statement"
        return "store"

    def converters(self) -> Mapping[str, Callable[[Any], Any]]:
        """SQLite keeps dates and times as ISO text and booleans as 0/1."""
        return FROM_TEXT

    @contextmanager
    def write_transaction(self, engine: Engine) -> Iterator[Connection]:
        """``BEGIN IMMEDIATE``: the write lock from the start, waited for (busy timeout). A
        deferred transaction that has read cannot wait for it: SQLite fails its first write
        as busy at once when another connection writes, since a commit made after its read
        would leave it writing from a stale snapshot."""
        with engine.connect() as conn:
            immediate = conn.execution_options(**{_BEGIN: "IMMEDIATE"})
            with immediate.begin():
                yield immediate

    def migration_transaction(self, engine: Engine) -> Any:
        """A write transaction: another process migrating is waited for."""
        return self.write_transaction(engine)

    def fenced_transaction(self, engine: Engine) -> Any:
        """A write transaction too: one writer at a time keeps the speed layer's commits out,
        and a read before the first write cannot meet a commit made since."""
        return self.write_transaction(engine)


def _insert_sql(table: Table, columns: Sequence[str], values: str) -> str:
    names = ", ".join(f'"{name}"' for name in columns)
    return f"INSERT INTO {table.name} ({names}) {values}"


def _bound(
    conn: Connection, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> list[tuple[Any, ...]]:
    """The rows' values as SQLAlchemy binds each column's (datetimes as the stored text)."""
    converting = [
        (i, convert)
        for i, name in enumerate(columns)
        if (convert := _bind_processor(table.c[name].type, conn.dialect)) is not None
    ]
    if not converting:
        return [tuple(row) for row in rows]

    def bound(row: Sequence[Any]) -> tuple[Any, ...]:
        values = list(row)
        for i, convert in converting:
            values[i] = convert(values[i])
        return tuple(values)

    return [bound(row) for row in rows]


def _bind_processor(column_type: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    """How SQLAlchemy binds a value of ``column_type``; for a plain ``DateTime``, the same text
    made by ``datetime.isoformat`` (in C) rather than by SQLAlchemy's ``%`` formatting of a
    dict of the fields (in Python): half the time, per value."""
    processor = column_type.dialect_impl(dialect).bind_processor(dialect)
    if processor is None or type(column_type) is not DateTime:
        return processor
    slow = processor

    def datetime_text(value: Any) -> Any:
        # "YYYY-MM-DD HH:MM:SS.ffffff", SQLAlchemy's DATETIME storage format; an aware value
        # (SQLAlchemy drops its offset) or a date goes SQLAlchemy's way
        if type(value) is dt.datetime and value.tzinfo is None:
            return value.isoformat(" ", "microseconds")
        return slow(value)

    return datetime_text
