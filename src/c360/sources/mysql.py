"""Read the orders database (any SQLAlchemy URL) as Arrow record batches, streamed.

The source's own column types are reflected (so a new column in the source is seen); batches
come back as the driver read them and are conformed to that schema by the ingest layer
(:func:`c360.ingest.conform.conform`), which also quarantines rows it cannot convert.
MySQL/MariaDB, PostgreSQL and SQLite are read through ConnectorX, an Arrow-native reader about
5x faster than fetching rows through a DB-API cursor; other dialects fall back to a
server-side SQLAlchemy cursor.

Errors are classified here, once, whichever path read (:func:`classify`): a connection that is
refused, lost or timed out, a lock or deadlock, a server shutting down is a
:class:`~c360.errors.TransientError`; refused credentials, an unknown database, a bad URL or a
missing driver a :class:`~c360.errors.ConfigError` naming ``sources.mysql.url``; an unknown
table or column, an SQL or permission error on the table a :class:`~c360.errors.DataError`
naming the table. Messages never carry the URL's password.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow as pa
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    NoSuchTableError,
    OperationalError,
)

from c360.contracts.arrow_types import arrow_type
from c360.errors import C360Error, ConfigError, DataError, TransientError
from c360.masking import mask_secrets

CHUNK_ROWS = 100_000
CONNECTORX_SCHEMES = {
    "mysql": "mysql",
    "mariadb": "mysql",
    "postgresql": "postgresql",
    "sqlite": "sqlite",
}
URL_KEY = "sources.mysql.url"

Kind = Literal["config", "table", "transient"]
# MySQL/MariaDB error numbers (server 1xxx, client 2xxx).
_MYSQL_CODES: dict[int, Kind] = {
    1044: "config",  # access denied to the database
    1045: "config",  # access denied (user or password)
    1049: "config",  # unknown database
    1251: "config",  # an authentication protocol the client does not support
    1698: "config",  # access denied (auth plugin)
    2005: "config",  # unknown server host
    1054: "table",  # unknown column
    1064: "table",  # SQL syntax
    1142: "table",  # command denied on the table
    1143: "table",  # column access denied
    1146: "table",  # no such table
    1040: "transient",  # too many connections
    1053: "transient",  # server shutting down
    1205: "transient",  # lock wait timeout
    1213: "transient",  # deadlock
    2002: "transient",  # cannot connect (socket)
    2003: "transient",  # cannot connect (TCP)
    2006: "transient",  # server has gone away
    2013: "transient",  # lost connection during query
    2055: "transient",  # lost connection at a system call
}
# PostgreSQL SQLSTATE classes.
_SQLSTATE_CLASSES: dict[str, Kind] = {
    "28": "config",  # invalid authorization
    "3D": "config",  # unknown database
    "22": "table",  # data exception
    "42": "table",  # syntax, undefined table or column, insufficient privilege
    "08": "transient",  # connection exception
    "40": "transient",  # serialization failure, deadlock
    "53": "transient",  # insufficient resources
    "57": "transient",  # operator intervention (shutdown, cancelled)
}
# What the message says, for drivers that give no number (SQLite, ConnectorX's text).
_MYSQL_NUMBER = re.compile(r"\bERROR (\d{4}) \(")  # ConnectorX: "ERROR 1045 (28000): ..."
_MESSAGES: tuple[tuple[re.Pattern[str], Kind], ...] = (
    (re.compile(r"access denied for user|authentication failed", re.I), "config"),
    (re.compile(r'unable to open database|(database|role) ".*" does not exist', re.I), "config"),
    (re.compile(r"unknown database", re.I), "config"),
    (
        re.compile(r"no such (table|column)|doesn't exist|does not exist|unknown column", re.I),
        "table",
    ),
    (re.compile(r"syntax error|permission denied for|command denied", re.I), "table"),
)


def _kind(message: str, code: int | None, sqlstate: str | None) -> Kind | None:
    """What a driver error is, from its number, its SQLSTATE or its words; None if unknown."""
    if code is None and (found := _MYSQL_NUMBER.search(message)):
        code = int(found.group(1))
    if code in _MYSQL_CODES:
        return _MYSQL_CODES[code]
    if sqlstate and sqlstate[:2] in _SQLSTATE_CLASSES:
        return _SQLSTATE_CLASSES[sqlstate[:2]]
    for pattern, kind in _MESSAGES:
        if pattern.search(message):
            return kind
    return None


def classify(
    error: BaseException, action: str, table: str | None, url: str | URL
) -> C360Error | None:
    """The c360 error for a driver error while ``action`` (e.g. ``reading``) ``table``; None for
    what is not a driver error (see the module docstring for the rules)."""
    if isinstance(error, C360Error):
        return None
    what = f"{action} {table}" if table else action
    if isinstance(error, NoSuchTableError):
        return DataError(f"the orders DB has no table {table!r}")
    if isinstance(error, ImportError):
        return ConfigError(
            URL_KEY,
            f"its database driver is not installed ({error.name or error}): install it, "
            "e.g. pip install 'c360[mysql]' for MySQL/MariaDB",
        )
    if isinstance(error, ArgumentError):
        return ConfigError(URL_KEY, f"not a usable database URL: {_redacted(str(error), url)}")
    if isinstance(error, DBAPIError):
        original = error.orig
        args = getattr(original, "args", ())
        code = args[0] if args and isinstance(args[0], int) else None
        sqlstate = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
        message = str(original)
        kind = _kind(message, code, sqlstate if isinstance(sqlstate, str) else None)
        if kind is None:
            passing = isinstance(error, OperationalError | InterfaceError)
            kind = "transient" if passing or error.connection_invalidated else "table"
    elif isinstance(error, DisconnectionError | OSError):
        message, kind = str(error), "transient"
    elif isinstance(error, RuntimeError):  # ConnectorX reports every failure as one
        message = str(error)
        kind = _kind(message, None, None) or "transient"
    else:
        return None
    reason = _redacted(message, url)[:300]
    if kind == "config":
        return ConfigError(URL_KEY, f"the orders DB refused the connection while {what}: {reason}")
    if kind == "table":
        return DataError(
            f"the orders DB cannot serve {what}: {reason}; check the table and its columns "
            f"in the source, and the grants of the user in {URL_KEY}"
        )
    return TransientError(f"orders DB unreachable while {what}: {reason}")


def _redacted(message: str, url: str | URL) -> str:
    """``message`` without the URL's password, nor any other a driver quoted in a URL."""
    try:
        password = make_url(url).password if isinstance(url, str) else url.password
    except ArgumentError:
        password = None
    if password:
        message = message.replace(str(password), "***")
    return mask_secrets(message)


@contextmanager
def _classified(action: str, table: str | None, url: str | URL) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        error = classify(exc, action, table, url)
        if error is None:
            raise
        raise error from exc


@dataclass(frozen=True)
class Window:
    """Rows with ``column`` in [start, end); either bound may be open."""

    column: str
    start: dt.datetime | None
    end: dt.datetime | None


def connect(url: str) -> Engine:
    """An engine for ``url`` (no connection yet); a bad URL or driver is a ConfigError."""
    with _classified("connecting", None, url):
        return create_engine(url)


def reflect_schema(engine: Engine, table: str) -> tuple[pa.Schema, tuple[str, ...]]:
    """The table's columns as an Arrow schema, and its primary key."""
    with _classified("reflecting", table, engine.url):
        inspector = inspect(engine)
        columns = inspector.get_columns(table)
        primary_key = tuple(inspector.get_pk_constraint(table)["constrained_columns"])
    fields = [
        pa.field(c["name"], arrow_type(c["type"]), nullable=bool(c["nullable"])) for c in columns
    ]
    return pa.schema(fields), primary_key


def _literal(value: dt.datetime) -> str:
    return "'" + value.strftime("%Y-%m-%d %H:%M:%S.%f") + "'"


def _where(window: Window | None, quote: str) -> str:
    if window is None:
        return ""
    column = f"{quote}{window.column}{quote}"
    bounds = []
    if window.start is not None:
        bounds.append(f"{column} >= {_literal(window.start)}")
    if window.end is not None:
        bounds.append(f"{column} < {_literal(window.end)}")
    return f" WHERE {' AND '.join(bounds)}" if bounds else ""


def _select(url: URL, table: str, schema: pa.Schema, window: Window | None) -> str:
    quote = "`" if url.get_backend_name() in ("mysql", "mariadb") else '"'
    columns = []
    for field in schema:
        name = f"{quote}{field.name}{quote}"
        # SQLite keeps NUMERIC as a float and DATETIME as free text: read both as text, so the
        # decimal cast is exact and an unparseable timestamp is caught, not guessed.
        typed = pa.types.is_decimal(field.type) or pa.types.is_timestamp(field.type)
        if url.get_backend_name() == "sqlite" and typed:
            columns.append(f"CAST({name} AS TEXT) AS {name}")
        else:
            columns.append(name)
    return f"SELECT {', '.join(columns)} FROM {quote}{table}{quote}{_where(window, quote)}"


def _connectorx_url(url: URL) -> str | None:
    scheme = CONNECTORX_SCHEMES.get(url.get_backend_name())
    if scheme is None:
        return None
    try:
        import connectorx  # noqa: F401
    except ImportError:
        return None
    if scheme == "sqlite":
        if not url.database or url.database == ":memory:":
            return None
        return f"sqlite://{Path(url.database).resolve()}"
    return url.set(drivername=scheme).render_as_string(hide_password=False)


def extract(
    url: str,
    table: str,
    schema: pa.Schema,
    window: Window | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[pa.RecordBatch]:
    """Stream the table's rows (within ``window``), the columns of ``schema``, as read."""
    with _classified("reading", table, url):
        parsed = make_url(url)
        query = _select(parsed, table, schema, window)
        cx_url = _connectorx_url(parsed)
        if cx_url is not None:
            yield from _extract_connectorx(cx_url, query, schema, chunk_rows)
        else:
            yield from _extract_sqlalchemy(url, query, schema, chunk_rows)


def _extract_connectorx(
    cx_url: str, query: str, schema: pa.Schema, chunk_rows: int
) -> Iterator[pa.RecordBatch]:
    import connectorx

    reader = connectorx.read_sql(cx_url, query, return_type="arrow_stream", batch_size=chunk_rows)
    for batch in reader:
        if batch.num_rows:
            yield batch


def _extract_sqlalchemy(
    url: str, query: str, schema: pa.Schema, chunk_rows: int
) -> Iterator[pa.RecordBatch]:
    engine = create_engine(url)
    try:
        with engine.connect().execution_options(stream_results=True) as conn:
            result = conn.execute(text(query))
            while rows := result.fetchmany(chunk_rows):
                columns: Sequence[tuple[object, ...]] = list(zip(*rows, strict=True))
                arrays = [pa.array(values, from_pandas=True) for values in columns]
                yield pa.RecordBatch.from_arrays(arrays, names=schema.names)
    finally:
        engine.dispose()
