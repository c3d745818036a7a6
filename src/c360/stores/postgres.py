"""PostgreSQL serving store (scale-out; wire-compatible with Hologres)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, Table, create_engine, event, text
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.engine import URL, make_url

from c360.errors import MissingDependencyError
from c360.stores.base import Refusal, StoreDialect

# SQLSTATE classes and codes of passing failures: the connection (08), the server going away
# or refusing connections for now (57P01-57P03), resources (53), serialisation and deadlocks
# (40001, 40P01), a lock wait that timed out (55P03), a statement cancelled (57014: a hot
# read past READ_STATEMENT_TIMEOUT_MS, or an operator's pg_cancel_backend).
_TRANSIENT_CLASSES = ("08", "53")
_TRANSIENT_CODES = frozenset({"57P01", "57P02", "57P03", "40001", "40P01", "55P03", "57014"})
# A hot read's statement (the Profile API's, held connections and async ones alike) is
# cancelled by the server after this long: an API process may run its reads on the event loop
# (api.profile_reads = inline), where a stalled read would hold every request of the process.
READ_STATEMENT_TIMEOUT_MS = 5_000
# The statement timeout is the server's: it cannot fire when the server is not reached (a lost
# network, a host gone without closing its connections). A hot read's connection has TCP give
# up on it instead — keepalive probes after READ_KEEPALIVE_IDLE_S without traffic, one every
# READ_KEEPALIVE_INTERVAL_S, and the connection closed once sent data or probes stay
# unacknowledged for READ_NETWORK_TIMEOUT_MS — so a read held on a lost network fails within
# about that long, as passing (a 503), rather than after TCP's own ~15 minutes. A server busy
# with a long statement still acknowledges: only the network's silence counts.
READ_NETWORK_TIMEOUT_MS = 10_000
READ_KEEPALIVE_IDLE_S = 5
READ_KEEPALIVE_INTERVAL_S = 1
# A new connection to a server that does not answer at all gives up after this long (libpq's
# connect_timeout; its default waits out TCP's SYN retries, about two minutes): a read that
# replaces a connection lost mid-read connects on the event loop too. ``serving.url`` may set
# its own (``?connect_timeout=N``).
CONNECT_TIMEOUT_S = 10
# SQLSTATE classes of the rest: the connection's settings — authorisation (28), the database
# (3D); the statement alone — a value (22: its text quotes the value, which can be personal
# data), a constraint (23), a limit such as a row too large to index (54).
_CONNECTION_CLASSES = ("28", "3D")
_VALUE_CLASS = "22"
_STATEMENT_CLASSES = (_VALUE_CLASS, "23", "54")
# How psycopg begins the error of a host name that did not resolve (its own text, before any
# connection exists: no SQLSTATE, no failed connection attached).
_UNRESOLVED = "failed to resolve host"
# What a server that answered says when it refuses the connection for good — a setting of
# serving.url is wrong — as libpq words it (its error of a failed connection has no SQLSTATE,
# only this text): the database (3D000), the role or the rules for it (28000), the password
# (28P01, or libpq's own when serving.url has none), the database's CONNECT privilege (42501).
_REFUSED_FOR_GOOD = re.compile(
    r'(database|role) ".*" does not exist|password authentication failed'
    r"|no password supplied|no pg_hba\.conf entry|is not permitted to log in"
    r"|permission denied for database"
)
_NAMED = re.compile(r"(?<![:\w]):(\w+)")  # :name, not a ::cast
_MIGRATION_LOCK = 360_001  # advisory lock held while migrating (any constant, c360's own)
_PUBLISH_LOCK = 360_002  # advisory lock: a publish against the speed layer's commits


class PostgresDialect(StoreDialect):
    name = "postgresql"

    def create_engine(self, url: str) -> Engine:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise MissingDependencyError("psycopg", "postgres", "the PostgreSQL store") from None
        parsed = make_url(url)
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = create_engine(_with_connect_timeout(parsed), pool_pre_ping=True)

        @event.listens_for(engine, "connect")
        def _json_loads(dbapi_connection: Any, _record: Any) -> None:
            from psycopg.types.json import set_json_loads

            set_json_loads(orjson.loads, dbapi_connection)  # the profile read's JSON parts

        return engine

    def insert(self, table: Table) -> Insert:
        return insert(table)

    def json_values(self, parameter: str) -> str:
        return f"(SELECT jsonb_array_elements_text(CAST({parameter} AS JSONB)))"

    def now_ms(self) -> str:
        return "EXTRACT(EPOCH FROM CURRENT_TIMESTAMP) * 1000"

    def count_json_greater(self, column: str, bound: str) -> str:
        return (
            "(SELECT count(*) FROM jsonb_array_elements_text("
            f"CAST({column} AS jsonb)) AS t(v) WHERE CAST(t.v AS BIGINT) > {bound})"
        )

    def to_date(self, expression: str) -> str:
        return f"CAST({expression} AS DATE)"

    def earlier(self, left: str, right: str) -> str:
        return f"LEAST({left}, {right})"

    def later(self, left: str, right: str) -> str:
        return f"GREATEST({left}, {right})"

    def bulk_insert(
        self,
        conn: Connection,
        table: Table,
        rows: Iterable[Sequence[Any]],
        columns: Sequence[str] | None = None,
    ) -> None:
        """``COPY … FROM STDIN`` on the transaction's own connection (a tenth of the time of
        ``executemany`` for the timeline's 600k rows)."""
        names = ", ".join(f'"{name}"' for name in columns or [c.name for c in table.columns])
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        finally:
            cursor.close()

    def analyze(self, conn: Connection, tables: Iterable[str]) -> None:
        """``ANALYZE`` each table (transactional: the statistics commit with the rows). Right
        after a publish replaced them, autovacuum has not run yet, and with the old statistics
        the planner scanned a whole prefix range for each search result (measured: 30-600 ms
        a page on 120k persons instead of 2-8 ms)."""
        for table in tables:
            conn.execute(text(f"ANALYZE {table}"))

    def epoch_ms(self, expression: str) -> str:
        return f"(EXTRACT(EPOCH FROM {expression}) * 1000)"

    def days_to_today(self, date: str) -> str:
        return f"(CAST(CURRENT_TIMESTAMP AT TIME ZONE 'UTC' AS DATE) - ({date}))"

    def is_transient(self, error: BaseException) -> bool:
        """Passing: a SQLSTATE above, or a connection that could not be made — refused, reset,
        timed out, its host not resolved, the server starting or shutting down (psycopg
        attaches the failed connection, ``pgconn``, to these alone) — unless the server
        refused it for good (:func:`refused_for_good`). Any other error without a SQLSTATE
        came from a connection that was open, and the error alone cannot tell why: libpq
        refusing the statement (more than 65,535 parameters, a NUL in a string) is terminal,
        and a connection lost meanwhile is told by whoever holds the connection —
        SQLAlchemy's ``connection_invalidated``, the hot reads' ``dropped`` — not here."""
        import psycopg

        state = getattr(error, "sqlstate", None)
        if state is not None:
            return str(state)[:2] in _TRANSIENT_CLASSES or state in _TRANSIENT_CODES
        if refused_for_good(error):
            return False
        return isinstance(error, psycopg.OperationalError) and (
            getattr(error, "pgconn", None) is not None
            or isinstance(error, psycopg.errors.ConnectionTimeout)
            or str(error).startswith(_UNRESOLVED)
        )

    def refusal(self, error: BaseException) -> Refusal:
        """By SQLSTATE class (above); without one, a connection the server refused for good,
        or else a statement libpq would not send (more than 65,535 parameters, a NUL in a
        string) on a connection that stays fine."""
        state = getattr(error, "sqlstate", None)
        if state is None:
            return "connection" if refused_for_good(error) else "statement"
        if state[:2] in _CONNECTION_CLASSES:
            return "connection"
        return "statement" if state[:2] in _STATEMENT_CLASSES else "store"

    def reason(self, error: BaseException) -> str:
        """A refused value's kind and SQLSTATE only: the server's text quotes the value
        ('invalid input syntax for type integer: "ann@example.com"')."""
        state = getattr(error, "sqlstate", None)
        if state is not None and state.startswith(_VALUE_CLASS):
            return f"{type(error).__name__} (SQLSTATE {state})"
        return super().reason(error)

    default_collation = '"default"'
    reads_in_one_statement = True

    def json_row(self, query: str) -> str:
        return f"(SELECT row_to_json(x) FROM ({query}) x)"

    def json_rows(self, query: str) -> str:
        return f"(SELECT json_agg(row_to_json(x)) FROM ({query}) x)"

    def async_connections(self, engine: Engine) -> AsyncPool:
        return AsyncPool(engine.url.set(drivername="postgresql").render_as_string(False))

    def hold_for_reads(self, dbapi_connection: Any) -> None:
        """Autocommit: no BEGIN and COMMIT round trips around a one-statement read (one
        statement sees one snapshot anyway), and psycopg keeps the statements it prepared;
        each statement cancelled after :data:`READ_STATEMENT_TIMEOUT_MS`, and a lost network
        given up after :data:`READ_NETWORK_TIMEOUT_MS` (:func:`bound_network_waits`: the
        engine's other connections, the publish's bulk writes among them, keep TCP's own)."""
        dbapi_connection.autocommit = True
        dbapi_connection.execute(_read_timeout_sql())
        bound_network_waits(dbapi_connection)

    def driver_sql(self, sql: str) -> str:
        """psycopg's named parameters: ``:name`` → ``%(name)s`` (``%`` itself doubled)."""
        return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))

    def fence_publish(self, conn: Connection, *, exclusive: bool) -> None:
        """The publish lock: shared by the speed layer's commits, exclusive for the publish."""
        lock = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        conn.exec_driver_sql(f"SELECT {lock}({_PUBLISH_LOCK})")

    @contextmanager
    def migration_transaction(self, engine: Engine) -> Iterator[Connection]:
        """A transaction holding c360's advisory lock: concurrent migrations run in turn."""
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            yield conn


def _with_connect_timeout(url: URL) -> URL:
    """``url`` with :data:`CONNECT_TIMEOUT_S` as its ``connect_timeout``, unless it sets one
    (the async reads' connections are made from the engine's URL: they get it too)."""
    if "connect_timeout" in url.query:
        return url
    return url.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT_S)})


def _read_timeout_sql() -> str:
    """The session setting of a hot read's connection (read at call time: tests lower it)."""
    return f"SET statement_timeout = {READ_STATEMENT_TIMEOUT_MS}"


def bound_network_waits(connection: Any) -> None:
    """TCP keepalives and a user timeout on a psycopg ``connection``'s socket, so that a read
    waiting on a lost network fails after about :data:`READ_NETWORK_TIMEOUT_MS` (set on a
    duplicate of the socket's descriptor: the options belong to the socket, and closing the
    duplicate leaves the connection's open). A Unix socket has no network to lose; a platform
    without ``TCP_USER_TIMEOUT`` (macOS) keeps the keepalives only."""
    with socket.socket(fileno=os.dup(connection.pgconn.socket)) as sock:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        tcp_options = {
            "TCP_KEEPIDLE": READ_KEEPALIVE_IDLE_S,
            "TCP_KEEPINTVL": READ_KEEPALIVE_INTERVAL_S,
            "TCP_USER_TIMEOUT": READ_NETWORK_TIMEOUT_MS,
        }
        for name, value in tcp_options.items():
            option = getattr(socket, name, None)
            if option is not None:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)


def refused_for_good(error: BaseException) -> bool:
    """Whether a failed connection was refused by the server for a reason no retry changes: a
    database or role that does not exist, a wrong or missing password, a pg_hba.conf rule.

    psycopg gives such an error no SQLSTATE (``sqlstate`` and ``diag`` are empty: libpq
    keeps the server's fields of a failed connection to itself); it has the failed
    connection (``pgconn``) and libpq's text, "connection to server at …, port … failed:
    FATAL:  database "x" does not exist", which is all there is to tell it by. A server
    whose messages are translated (``lc_messages``) is not understood: its refusals stay
    passing, as they all were before."""
    return getattr(error, "pgconn", None) is not None and bool(_REFUSED_FOR_GOOD.search(str(error)))


class AsyncPool:
    """psycopg's async connections for the hot reads (:class:`.profiles.AsyncConnections`),
    in autocommit as the held sync ones are, on the running event loop: at most ``at_once``
    acquired at a time (the API's ``api.store_threads``), the idle ones kept. A connection
    belongs to the loop it was made on: when the reads move to another loop (a test's new
    client), the old loop's idle connections are closed. Each connection has one cursor, made
    with it: a cursor made for each read cost an eighth of the read's client CPU (psycopg
    sets up its adapters anew for each)."""

    def __init__(self, conninfo: str, at_once: int = 4) -> None:
        self._conninfo = conninfo
        self._at_once = at_once
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None
        self._idle: list[Any] = []
        self._cursors: dict[Any, Any] = {}  # connection -> its cursor

    def resize(self, at_once: int) -> None:
        self._at_once = at_once
        self._loop = None  # the next acquire makes the semaphore anew

    async def acquire(self) -> Any:
        import psycopg
        from psycopg.types.json import set_json_loads

        slots = self._slots_of(asyncio.get_running_loop())
        await slots.acquire()
        try:
            if self._idle:
                return self._idle.pop()
            connection = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
            set_json_loads(orjson.loads, connection)
            await connection.execute(_read_timeout_sql())
            bound_network_waits(connection)
            self._cursors[connection] = connection.cursor()
            return connection
        except BaseException:
            slots.release()
            raise

    def cursor(self, connection: Any) -> Any:
        return self._cursors[connection]

    def release(self, connection: Any) -> None:
        self._idle.append(connection)
        self._free_slot()

    def discard(self, connection: Any) -> None:
        self._cursors.pop(connection, None)
        _finish(connection)
        self._free_slot()

    def dropped(self, error: Exception, connection: Any) -> bool:
        import psycopg

        return isinstance(error, psycopg.Error) and bool(connection.closed or connection.broken)

    def close_all(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            self._cursors.pop(connection, None)
            _finish(connection)

    def _slots_of(self, loop: asyncio.AbstractEventLoop) -> asyncio.Semaphore:
        if loop is not self._loop or self._slots is None:
            self.close_all()
            self._loop, self._slots = loop, asyncio.Semaphore(self._at_once)
        return self._slots

    def _free_slot(self) -> None:
        if self._slots is not None:
            self._slots.release()


def _finish(connection: Any) -> None:
    """Close an async connection without awaiting (its loop may be gone)."""
    with contextlib.suppress(Exception):
        connection.pgconn.finish()
