"""The serving store: one interface with domain methods, over SQLite or PostgreSQL.

Callers speak in the platform's terms — publish a batch, commit a speed-layer micro-batch,
stitch a cookie, read a profile, record a pipeline step — and every SQL statement against the
serving tables lives in this package. What really differs between the databases (connection
set-up, the upsert construct, a few SQL expressions, which driver errors are passing) is a small
:class:`StoreDialect`; ``sqlite.py`` and ``postgres.py`` each hold one, and only they know their
driver. ``tests/conformance/test_serving_store.py`` runs every behaviour against both.

**Errors are classified here, once.** A driver error becomes :class:`StoreUnavailable` (a
:class:`~c360.errors.TransientError`: the server restarted, a lock timed out, SQLite is busy —
retrying later helps) or :class:`StoreError` (a :class:`~c360.errors.TerminalError`: a
missing table, a constraint, a bad URL). Messages name the store (password hidden), the
operation, the driver's first line — never the statement's parameters, which can hold
personal data: where the driver's text quotes a value, its kind instead — and what to fix,
which depends on what was refused (:data:`Refusal`).

**The schema is versioned** (Alembic, :mod:`c360.stores.migrations`): :meth:`ServingStore.migrate`
upgrades any store to this release's tables, including stores written before the schema was
versioned. ``batch_profile``'s feature columns are not part of it: they follow the published
Arrow schema (:meth:`ServingStore.publish_batch`).
"""

from __future__ import annotations

import datetime as dt
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, Literal

import pyarrow as pa
from sqlalchemy import Column, Connection, Engine, MetaData, Table, func, inspect, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy import types as sqltypes
from sqlalchemy.dialects.postgresql import Insert as PostgresInsert
from sqlalchemy.dialects.sqlite import Insert as SQLiteInsert
from sqlalchemy.engine import make_url

from c360.access.consent import Decision
from c360.access.keys import ApiKey
from c360.contracts import serving
from c360.contracts.cutoff import cutoff
from c360.contracts.times import naive_utc_now
from c360.errors import C360Error, ConfigError, TerminalError, TransientError
from c360.identity.stitching import Reconciled, StitchLink
from c360.masking import mask_secrets
from c360.privacy import Subject, SuppressionList
from c360.segments import Kind
from c360.speed.features import RealtimeState, StateKey
from c360.speed.support import SupportState
from c360.stores import (
    audit,
    consent,
    erasure,
    leases,
    live_segments,
    migrations,
    profiles,
    realtime,
    resolution,
    runlog,
    search,
    stitching,
    timeline,
    views,
)
from c360.stores import keys as stored_keys
from c360.stores import segments as stored_segments
from c360.stores import webhooks as stored_webhooks
from c360.stores.realtime import MicroBatch, PreparedBatch
from c360.stores.runlog import StepRecord
from c360.stores.search import SearchKey, SearchPage
from c360.stores.timeline import TimelineKey, TimelinePage

logger = logging.getLogger(__name__)

INSERT_CHUNK = 5_000


class StoreUnavailable(TransientError):
    """The serving store cannot answer now (down, restarting, locked): retry with backoff."""


class StoreError(TerminalError):
    """The serving store refused the operation for good (schema, constraint, configuration)."""


# What a terminal driver error refused: the connection, for good (a setting of serving.url);
# this statement alone (too large, a value it cannot take, a constraint), the store being
# fine; or anything else: the store's schema or set-up.
Refusal = Literal["connection", "statement", "store"]

_WHAT_TO_FIX: dict[Refusal, str] = {
    "connection": "the store refused the connection: check serving.url (the database it names, "
    "its user and password)",
    "statement": "the store refused this statement (its size, a value or a constraint), not "
    "the connection or the schema: retrying will not help",
    "store": "check serving.url and run migrate()",
}


class StoreDialect(ABC):
    """What differs between the serving store's databases."""

    name: ClassVar[str]

    @abstractmethod
    def create_engine(self, url: str) -> Engine:
        """A SQLAlchemy engine for ``serving.url``, connections set up for the store."""

    @abstractmethod
    def insert(self, table: Table) -> PostgresInsert | SQLiteInsert:
        """An INSERT of ``table`` that takes an ``ON CONFLICT`` clause."""

    @abstractmethod
    def now_ms(self) -> str:
        """SQL: the database clock in epoch milliseconds."""

    @abstractmethod
    def count_json_greater(self, column: str, bound: str) -> str:
        """SQL: how many numbers of a JSON-array text ``column`` exceed the SQL ``bound``."""

    @abstractmethod
    def to_date(self, expression: str) -> str:
        """SQL: the date of a timestamp ``expression``."""

    @abstractmethod
    def earlier(self, left: str, right: str) -> str:
        """SQL: the earlier of two non-null dates, or of two non-null times."""

    @abstractmethod
    def later(self, left: str, right: str) -> str:
        """SQL: the later of two non-null dates, or of two non-null times."""

    @abstractmethod
    def days_to_today(self, date: str) -> str:
        """SQL: whole days from a date to today (UTC)."""

    @abstractmethod
    def epoch_ms(self, expression: str) -> str:
        """SQL: epoch milliseconds of a stored (naive UTC) timestamp ``expression``."""

    @abstractmethod
    def is_transient(self, error: BaseException) -> bool:
        """Whether a driver's error (the DBAPI exception itself) is passing: retrying later
        may succeed."""

    @abstractmethod
    def refusal(self, error: BaseException) -> Refusal:
        """What a driver's error that is not passing refused (:data:`Refusal`)."""

    def reason(self, error: BaseException) -> str:
        """A driver's error for a message: its type and its first line (a server's detail
        lines, which can quote a row, left out). A dialect whose driver quotes a value in the
        first line of some errors says less for those."""
        lines = str(error).strip().splitlines()
        return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__

    def driver_sql(self, sql: str) -> str:
        """``sql`` with ``:name`` parameters in the driver's own style (for the hot reads that
        bypass SQLAlchemy's execution)."""
        return sql

    def converters(self) -> Mapping[str, Callable[[Any], Any]]:
        """Per result column name, how the driver's raw value becomes the Python value
        SQLAlchemy's types would give (none when the driver gives them already)."""
        return {}

    # The collation of a column that was declared without one (search_term's columns have
    # "C" on PostgreSQL; a join of them to another table's key names this one).
    default_collation: ClassVar[str] = "BINARY"

    # A statement is a network round trip: the profile read asks everything in one statement,
    # each part as JSON (json_row, json_rows), rather than part by part.
    reads_in_one_statement: ClassVar[bool] = False

    def json_row(self, query: str) -> str:
        """An expression: the one row of ``query`` as a JSON object (NULL without a row)."""
        raise NotImplementedError(f"{self.name} reads a profile part by part")

    def json_rows(self, query: str) -> str:
        """An expression: the rows of ``query`` as a JSON array of objects (NULL without any)."""
        raise NotImplementedError(f"{self.name} reads a profile part by part")

    def async_connections(self, engine: Engine) -> profiles.AsyncConnections | None:
        """Async connections for the hot reads, if the driver has them (the Profile API then
        reads on the event loop, without a thread hop); None: the reads are synchronous."""
        return None

    def hold_for_reads(self, dbapi_connection: Any) -> None:
        """Ready a driver connection that the hot reads hold (:class:`.profiles.ThreadConnections`):
        each of their statements must see the newest commit. By default nothing (a driver
        whose connections run outside a transaction already, as the SQLite store's do)."""
        return

    @abstractmethod
    def bulk_insert(
        self,
        conn: Connection,
        table: Table,
        rows: Iterable[Sequence[Any]],
        columns: Sequence[str] | None = None,
    ) -> None:
        """Insert many rows (values in the order of ``columns``, by default all the table's;
        times as naive UTC datetimes) in the caller's transaction, the fastest way the
        database has. A column left out takes its default (an autoincremented id)."""

    def append_rows(
        self, conn: Connection, table: Table, rows: Sequence[Sequence[Any]], columns: Sequence[str]
    ) -> None:
        """:meth:`bulk_insert` of rows of strings and naive UTC datetimes, for a writer that
        runs beside a busy server in the same process (the read audit's flush): the database
        takes them in one call where the driver's own bulk path needs the interpreter's lock
        for every row. By default :meth:`bulk_insert`."""
        self.bulk_insert(conn, table, rows, columns)

    @abstractmethod
    def analyze(self, conn: Connection, tables: Iterable[str]) -> None:
        """Refresh the planner's statistics of tables a publish replaced, in its transaction."""

    @abstractmethod
    def json_values(self, parameter: str) -> str:
        """SQL: a subquery of the strings in a JSON array, bound as text to ``parameter``
        (``col IN <it>`` probes ``col``'s index once per value)."""

    def fence_publish(self, conn: Connection, *, exclusive: bool) -> None:
        """In a transaction that resolves real-time rows to persons (:mod:`.resolution`):
        ``exclusive`` (the publish, which replaces ``identity_map``) waits for the others and
        keeps them out until it commits. By default nothing: a database with one writer at a
        time (SQLite) serialises them already."""
        return

    def migration_transaction(self, engine: Engine) -> Any:
        """A transaction that holds the store's write lock from its first statement, so two
        processes never migrate at once (a context manager yielding a Connection)."""
        return engine.begin()

    def write_transaction(self, engine: Engine) -> Any:
        """A transaction that reads, then writes what it read decided, and may wait for
        another writer to do so (a context manager yielding a Connection). By default a
        plain one: a database whose writers lock rows, not the whole store, lets it wait."""
        return engine.begin()

    @contextmanager
    def fenced_transaction(self, engine: Engine) -> Iterator[Connection]:
        """A transaction that keeps the speed layer's commits out from its start to its end
        (the erasure's deletes): the publish fence, exclusively."""
        with engine.begin() as conn:
            self.fence_publish(conn, exclusive=True)
            yield conn


def _sql_type(arrow_type: pa.DataType) -> sqltypes.TypeEngine[Any]:
    if pa.types.is_boolean(arrow_type):
        return sqltypes.Boolean()
    if pa.types.is_integer(arrow_type):
        return sqltypes.BigInteger()
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return sqltypes.Float(precision=53)
    if pa.types.is_timestamp(arrow_type):
        return sqltypes.DateTime()
    if pa.types.is_date(arrow_type):
        return sqltypes.Date()
    return sqltypes.Text()


def _python_rows(table: pa.Table) -> Iterator[list[dict[str, Any]]]:
    """Arrow batches as lists of dicts; decimals become floats, timestamps naive UTC."""
    for batch in table.to_batches(max_chunksize=INSERT_CHUNK):
        columns = []
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            if pa.types.is_decimal(column.type):
                column = column.cast(pa.float64())
            elif pa.types.is_timestamp(column.type) and column.type.tz is not None:
                column = column.cast(pa.timestamp(column.type.unit))
            columns.append((name, column.to_pylist()))
        names = [name for name, _ in columns]
        values = zip(*(column for _, column in columns), strict=True)
        yield [dict(zip(names, row, strict=True)) for row in values]


class ServingStore:
    """The serving tables behind domain methods; see the module docstring."""

    def __init__(self, url: str, dialect: StoreDialect) -> None:
        self.dialect = dialect
        self.display_url = mask_secrets(make_url(url).render_as_string(hide_password=True))
        self.engine: Engine = dialect.create_engine(url)  # for tests and tools; not for SQL
        self._driver_error: type[Exception] = self.engine.dialect.loaded_dbapi.Error
        self._reads = profiles.ProfileReads(self.engine, dialect)

    # -- errors ----------------------------------------------------------------------------
    @contextmanager
    def _driver_errors(self, operation: str) -> Iterator[None]:
        """Driver errors raised inside become :class:`StoreUnavailable` or :class:`StoreError`."""
        try:
            yield
        except C360Error:
            raise
        except sa_exc.DBAPIError as exc:
            cause = exc.orig or exc
            transient = exc.connection_invalidated or self.dialect.is_transient(cause)
            raise self._classified(operation, cause, transient) from exc
        except self._driver_error as exc:  # raised by the driver's own cursor (hot reads)
            transient = self.dialect.is_transient(exc)
            raise self._classified(operation, exc, transient) from exc
        except sa_exc.TimeoutError as exc:  # no pooled connection came free in time
            raise StoreUnavailable(self._message(operation, exc, None)) from exc
        except sa_exc.SQLAlchemyError as exc:
            raise StoreError(self._message(operation, exc, "store")) from exc

    def _classified(self, operation: str, cause: BaseException, transient: bool) -> C360Error:
        if transient:
            return StoreUnavailable(self._message(operation, cause, None))
        return StoreError(self._message(operation, cause, self.dialect.refusal(cause)))

    def _message(self, operation: str, cause: BaseException, refusal: Refusal | None) -> str:
        """What failed and what to fix; a passing failure (``refusal`` None) says to retry."""
        where = f"serving store {self.display_url} ({operation})"
        reason = self.dialect.reason(cause)
        if refusal is None:
            return f"{where}: unavailable, {reason}; retrying helps"
        return f"{where}: {reason}; {_WHAT_TO_FIX[refusal]}"

    @contextmanager
    def _transaction(self, operation: str) -> Iterator[Connection]:
        """One write transaction: commits on success, rolls back on error; errors classified.
        A write transaction (:meth:`StoreDialect.write_transaction`), since most of these read
        before they write (a micro-batch's offsets, a consent's current decision): on SQLite a
        deferred one that has read fails its first write at once when another connection
        commits meanwhile, where one begun IMMEDIATE waits for the lock."""
        with self._driver_errors(operation), self.dialect.write_transaction(self.engine) as conn:
            yield conn

    @contextmanager
    def _reading(self, operation: str) -> Iterator[Connection]:
        """A connection for reads, committed after them: a connection handed back inside a
        transaction is rolled back by the pool, which drops psycopg's prepared statements."""
        with self._driver_errors(operation), self.engine.connect() as conn:
            yield conn
            conn.commit()

    # -- lifecycle -------------------------------------------------------------------------
    def migrate(self) -> None:
        """Upgrade the schema to this release's (:mod:`c360.stores.migrations`) and create an
        empty ``batch_profile`` to grow; idempotent, and safe when several processes start
        together (they migrate one after the other)."""
        with (
            self._driver_errors("migrating the schema"),
            self.dialect.migration_transaction(self.engine) as conn,
        ):
            migrations.upgrade(conn)
            if not inspect(conn).has_table(serving.BATCH_PROFILE):
                Table(
                    serving.BATCH_PROFILE,
                    MetaData(),
                    Column("person_id", sqltypes.String(40), primary_key=True),
                ).create(conn)

    def dispose(self) -> None:
        self._reads.close()
        self.engine.dispose()

    # -- the batch layer -------------------------------------------------------------------
    def publish_batch(self, batch_date: dt.date, tables: Mapping[str, pa.Table]) -> Reconciled:
        """Replace person, identity_map and batch_profile (and person_redirect and
        ambiguous_identifier, when given) in one transaction, and reconcile the real-time
        identity links against the new map.

        Readers see the previous complete batch until the commit and the new one after it,
        never a mix. New feature columns are added to batch_profile on the way. Without a
        ``person_redirect`` table the stored redirects are left as they are; likewise without
        an ``ambiguous_identifier`` table (a batch computed before identity's ``ambiguous``
        reached the store) the stored rows stay: emptying them would answer a shared
        identifier as unknown again, and the next batch replaces them anyway. The search terms
        follow the new persons (:mod:`.search`), and ``timeline_event``, when given, replaces
        the timeline's batch events (:mod:`.timeline`; left as they are otherwise), in the same
        transaction. Returns what the reconcile did (:func:`c360.stores.stitching.reconcile`).
        """
        profile = tables[serving.BATCH_PROFILE]
        replaced = [("person", serving.person), ("identity_map", serving.identity_map)]
        for optional in (serving.person_redirect, serving.ambiguous_identifier):
            if optional.name in tables:
                replaced.append((optional.name, optional))
        with self._transaction(f"publishing the batch of {batch_date}") as conn:
            self.dialect.fence_publish(conn, exclusive=True)
            profile_table = self._evolve_profile_table(conn, profile.schema)
            for name, table in (*replaced, (serving.BATCH_PROFILE, profile_table)):
                conn.execute(table.delete())
                for rows in _python_rows(tables[name]):
                    conn.execute(table.insert(), rows)
            search.replace_terms(self, conn, tables["person"], tables["identity_map"])
            analyzed = [name for name, _ in replaced] + [serving.search_term.name]
            if serving.timeline_event.name in tables:
                timeline.replace_events(self, conn, tables[serving.timeline_event.name])
                analyzed.append(serving.timeline_event.name)
            self.dialect.analyze(conn, analyzed)
            cutoff_at = cutoff(batch_date)
            reconciled = stitching.reconcile(conn, cutoff_at)
            resolution.resolve_all(conn)
            conn.execute(
                serving.batch_publish.insert().values(
                    batch_date=batch_date.isoformat(),
                    cutoff_at=cutoff_at,
                    published_at=naive_utc_now(),
                    persons=profile.num_rows,
                )
            )
            columns = [c.name for c in profile_table.columns]
            views.create_profile_view(conn, self.dialect, columns)
            views.create_bi_views(conn, columns)
        return reconciled

    def _evolve_profile_table(self, conn: Connection, schema: pa.Schema) -> Table:
        inspector = inspect(conn)
        existing = (
            {c["name"] for c in inspector.get_columns(serving.BATCH_PROFILE)}
            if inspector.has_table(serving.BATCH_PROFILE)
            else set()
        )
        columns = [
            Column(f.name, _sql_type(f.type), primary_key=f.name == "person_id") for f in schema
        ]
        table = Table(serving.BATCH_PROFILE, MetaData(), *columns)
        if not existing:
            table.create(conn)
            return table
        for column in columns:
            if column.name not in existing:
                type_sql = column.type.compile(dialect=conn.dialect)
                conn.execute(
                    text(
                        f'ALTER TABLE {serving.BATCH_PROFILE} ADD COLUMN "{column.name}" {type_sql}'
                    )
                )
        return Table(serving.BATCH_PROFILE, MetaData(), autoload_with=conn)

    def latest_publish(self) -> dict[str, Any] | None:
        """The serving batch: its date, cutoff, publish time and person count (None before the
        first publish)."""
        p = serving.batch_publish
        query = select(p.c.batch_date, p.c.cutoff_at, p.c.published_at, p.c.persons)
        with self._reading("reading the latest publish") as conn:
            row = conn.execute(query.order_by(p.c.id.desc()).limit(1)).first()
        return dict(row._mapping) if row is not None else None

    # -- the speed layer -------------------------------------------------------------------
    def offsets(self, group: str, topic: str) -> dict[int, int]:
        """The next offset to read per partition, as last committed by the group."""
        o = serving.stream_offsets
        query = select(o.c.partition, o.c.next_offset).where(
            o.c.consumer_group == group, o.c.topic == topic
        )
        with self._reading(f"reading the offsets of {group}/{topic}") as conn:
            return {int(p): int(n) for p, n in conn.execute(query)}

    def load_states(self, keys: Iterable[StateKey]) -> dict[StateKey, RealtimeState]:
        """The stored clickstream states of ``keys`` (absent keys have none yet)."""
        with self._reading("reading real-time states") as conn:
            return realtime.load_rows(conn, serving.realtime_state, keys, realtime.state_from_row)

    def load_support_states(self, keys: Iterable[StateKey]) -> dict[StateKey, SupportState]:
        """The stored support states of ``keys``."""
        with self._reading("reading support states") as conn:
            return realtime.load_rows(
                conn, serving.realtime_support, keys, realtime.support_from_row
            )

    def prepare_micro_batch(self, batch: MicroBatch) -> PreparedBatch:
        """Bind a micro-batch's rows, outside any transaction (see :mod:`.realtime`)."""
        return realtime.prepare(self, batch)

    def commit_micro_batch(self, group: str, prepared: PreparedBatch) -> int:
        """Commit a prepared micro-batch in one transaction: claim the offsets (compare-and-set,
        :class:`~c360.stores.realtime.OffsetConflict` if another consumer moved one), write the
        states, orders, links and dead letters, then re-evaluate the real-time segments for the
        persons it changed and write their entered/exited events (:mod:`.live_segments`).
        Returns the orders inserted."""
        with self._transaction(f"committing a micro-batch of {group}") as conn:
            self.dialect.fence_publish(conn, exclusive=False)
            orders = realtime.commit(conn, self.dialect, group, prepared)
            live_segments.evaluate(conn, self.dialect, prepared.keys, naive_utc_now())
            return orders

    def stitch(self, links: Iterable[StitchLink]) -> int:
        """Record real-time identity links in their own transaction (newest wins per cookie,
        the same statement the micro-batch commit runs); how many cookies were given."""
        rows = stitching.link_rows(links)
        writes = realtime.upserts(self, serving.identity_stitch, rows, rule=realtime.NEWEST_LINK)
        with self._transaction("stitching identities") as conn:
            self.dialect.fence_publish(conn, exclusive=False)
            realtime.execute(conn, writes)
            cookies = [row["anonymous_id"] for row in rows]
            resolution.resolve_batch(conn, self.dialect, cookies=cookies)
        return len(rows)

    # -- reads -----------------------------------------------------------------------------
    def find_person(self, id_type: str, id_value: str) -> str | None:
        """The person an identifier (in lookup form) belongs to, or None; a cookie resolves
        through its real-time link first."""
        with self._driver_errors("finding a person"):
            return self._reads.find_person(id_type, id_value)

    def profile(
        self, person_id: str, now: dt.datetime | None = None, *, explain: bool = False
    ) -> dict[str, Any] | None:
        """The joined profile of one person, or None when the person is unknown.

        A retired person id (absorbed by a merge) answers with the surviving person's profile;
        ``redirected_from`` then holds the id asked for (None otherwise). ``now`` (default the
        clock) is the read time of ``time_since_last_event_seconds`` and ``events_last_hour``.
        The answer's ``profile`` is the unified profile (:mod:`c360.speed.merge`), ``batch`` and
        ``realtime`` the two layers as they are; with ``explain``, ``provenance`` tells which
        layer served each field of ``profile`` and as of when.
        Reads on one connection, through the driver (:class:`.profiles.ProfileReads`).
        """
        with self._driver_errors("reading a profile"):
            return self._reads.profile(person_id, now, explain)

    def search(
        self,
        q: str,
        limit: int,
        after: SearchKey | None = None,
        phone_region: str | None = None,
    ) -> SearchPage:
        """A page of the persons matching ``q`` — a name, an email prefix or an identifier (a
        national phone number read in ``phone_region``) — after ``after`` (the previous page's
        ``next_key``), and the types under which ``q`` is an identifier several persons share,
        in one statement (:mod:`.search`)."""
        with self._reading("searching persons") as conn:
            return search.search(conn, self.dialect, q, limit, after, phone_region)

    def timeline(
        self,
        person_id: str,
        *,
        limit: int,
        days: int,
        before: TimelineKey | None = None,
        kinds: Collection[str] = timeline.KINDS,
        now: dt.datetime | None = None,
    ) -> TimelinePage | None:
        """A page of a person's recent events across sources, newest first, before ``before``
        (None for an unknown person; a retired id answers as its survivor). Events older than
        ``days`` before ``now`` (default the clock) are not shown. See :mod:`.timeline`."""
        with self._reading("reading a timeline") as conn:
            return timeline.read(
                conn,
                person_id,
                now=naive_utc_now() if now is None else now,
                days=days,
                limit=limit,
                before=before,
                kinds=kinds,
            )

    # -- the pipeline's run log ------------------------------------------------------------
    def record_step(self, record: StepRecord) -> None:
        """Write the latest attempt of a pipeline step (one row per batch date and step)."""
        writes = realtime.upserts(self, serving.batch_run, [record.as_row()])
        with self._transaction(f"recording step {record.step} of {record.batch_date}") as conn:
            realtime.execute(conn, writes)

    def step_records(self, day: dt.date) -> dict[str, StepRecord]:
        with self._reading(f"reading the run log of {day}") as conn:
            return runlog.steps(conn, day)

    def last_successes(self) -> dict[str, dt.datetime]:
        """When each pipeline step last succeeded (naive UTC), on any batch date."""
        with self._reading("reading the run log") as conn:
            return runlog.last_successes(conn)

    # -- leases: work that must not run twice at once --------------------------------------
    def take_lease(self, name: str, owner: str, ttl: dt.timedelta) -> bool:
        """Take lease ``name`` for ``owner`` until ``ttl`` from now (the database's clock): True
        if it was free, expired or ``owner``'s already (:mod:`.leases`)."""
        with self._transaction(f"taking lease {name}") as conn:
            return leases.take(conn, self.dialect, name, owner, _ms(ttl))

    def renew_lease(self, name: str, owner: str, ttl: dt.timedelta) -> bool:
        """Extend ``owner``'s lease to ``ttl`` from now; False if another owner has taken it."""
        with self._transaction(f"renewing lease {name}") as conn:
            return leases.renew(conn, self.dialect, name, owner, _ms(ttl))

    def release_lease(self, name: str, owner: str) -> bool:
        """Give ``owner``'s lease up; False if ``owner`` did not hold it."""
        with self._transaction(f"releasing lease {name}") as conn:
            return leases.release(conn, name, owner)

    def lease(self, name: str) -> leases.Lease | None:
        """The lease's holder as stored (it may have expired), or None."""
        with self._reading(f"reading lease {name}") as conn:
            return leases.holder(conn, name)

    def dead_letters_since(self, since: dt.datetime) -> dict[tuple[str, str], int]:
        """Dead letters received after ``since`` (naive UTC), per topic and reason code."""
        table = serving.dead_letter
        query = (
            select(table.c.topic, table.c.reason_code, func.count())
            .where(table.c.received_at > since)
            .group_by(table.c.topic, table.c.reason_code)
        )
        with self._reading("counting dead letters") as conn:
            return {(str(topic), str(code)): int(n) for topic, code, n in conn.execute(query)}

    def run_dates(self, limit: int = 14) -> list[str]:
        """The latest batch dates in the run log, newest first."""
        with self._reading("reading the run log") as conn:
            return runlog.dates(conn, limit)

    # -- the Profile API's keys ------------------------------------------------------------
    def add_api_key(self, key: ApiKey) -> None:
        """Store a new key (its secret's hash only; :mod:`c360.access.keys`)."""
        with self._transaction(f"adding API key {key.key_id}") as conn:
            stored_keys.add(conn, key)

    def api_keys(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first (the API's key cache reads this)."""
        with self._reading("reading the API keys") as conn:
            return stored_keys.every(conn)

    def find_api_key(self, key_id: str) -> ApiKey | None:
        with self._reading(f"reading API key {key_id}") as conn:
            return stored_keys.find(conn, key_id)

    def revoke_api_key(self, key_id: str, at: dt.datetime | None = None) -> ApiKey | None:
        """Revoke a key from ``at`` (default now; a revoked key keeps its first revocation
        time); the key as stored afterwards, or None when there is no such key."""
        with self._transaction(f"revoking API key {key_id}") as conn:
            return stored_keys.revoke(conn, key_id, at or naive_utc_now())

    # -- segments --------------------------------------------------------------------------
    def segment_fields(self) -> dict[str, tuple[Kind, str]]:
        """The fields a segment definition may read: kind and layer (:mod:`.segments`)."""
        with self._reading("reading the segment fields") as conn:
            return stored_segments.fields(conn)

    def create_segment(
        self, name: str, definition: str, description: str | None = None
    ) -> stored_segments.Segment:
        """Check and save a segment; :class:`~c360.segments.DefinitionError` (with the position)
        if the definition is not one, :class:`.segments.SegmentExists` if the name is taken."""
        with self._transaction(f"creating segment {name!r}") as conn:
            return stored_segments.create(conn, name, definition, description, naive_utc_now())

    def segments(self) -> list[stored_segments.Segment]:
        """Every segment, by name, with its current member count (None before membership ran)."""
        with self._reading("reading the segments") as conn:
            return stored_segments.every(conn)

    def segment(self, name: str) -> stored_segments.Segment:
        """One segment; :class:`~c360.errors.NotFoundError` if there is none of that name."""
        with self._reading(f"reading segment {name!r}") as conn:
            return stored_segments.find(conn, name)

    def delete_segment(self, name: str) -> bool:
        """Delete a segment and its membership; whether there was one."""
        with self._transaction(f"deleting segment {name!r}") as conn:
            return stored_segments.remove(conn, name)

    def replace_segment_members(
        self, day: dt.date, spells: pa.Table, evaluated: Sequence[str]
    ) -> int:
        """Replace ``segment_member`` with the spells of the membership run of ``day`` (those
        of segments deleted meanwhile left out) and mark the ``evaluated`` segments as of
        ``day``, in one transaction; the rows kept."""
        with self._transaction("publishing segment membership") as conn:
            return stored_segments.replace_members(conn, day, spells, evaluated)

    def segment_audience(self, name: str) -> stored_segments.Audience:
        """A segment's current members with marketing consent and an email, for exports and
        syncs; the others are only counted (:func:`.segments.audience`)."""
        with self._reading(f"reading the audience of segment {name!r}") as conn:
            return stored_segments.audience(conn, name)

    def preview_segment(self, definition: str, sample: int = 10) -> stored_segments.Preview:
        """How many persons a definition selects now and the first ``sample`` of them (by
        person id), with the fields it reads (:func:`.segments.preview`)."""
        with self._reading("previewing a segment") as conn:
            return stored_segments.preview(conn, self.dialect, definition, sample, naive_utc_now())

    def sweep_live_segments(
        self, now: dt.datetime | None = None, horizon: dt.timedelta = dt.timedelta(hours=48)
    ) -> int:
        """Re-evaluate the real-time segments that change with time alone, in one transaction
        (:func:`.live_segments.sweep`); the number of entered/exited events written."""
        with self._transaction("sweeping the real-time segments") as conn:
            changes = live_segments.sweep(conn, self.dialect, now or naive_utc_now(), horizon)
        return len(changes)

    # -- webhooks: the segment event outbox ---------------------------------------------------
    def due_events(self, now: dt.datetime, limit: int) -> list[stored_webhooks.DueEvent]:
        """Pending segment events due at ``now`` (naive UTC), oldest due first, with the
        person's email and whether they have marketing consent (:mod:`.webhooks`)."""
        with self._reading("reading due webhook events") as conn:
            return stored_webhooks.due(conn, self.dialect, now, limit)

    def record_delivery(self, attempt: stored_webhooks.Attempt) -> bool:
        """Record a delivery attempt and its event's new status in one transaction; False if
        another dispatcher recorded that attempt first."""
        with self._transaction(f"recording webhook delivery {attempt.event_id}") as conn:
            return stored_webhooks.record(conn, attempt)

    def webhook_deliveries(self, event_id: str) -> list[dict[str, Any]]:
        """Every recorded attempt of an event, in order."""
        with self._reading("reading webhook deliveries") as conn:
            return stored_webhooks.deliveries(conn, event_id)

    # -- erasure (issue 18) -----------------------------------------------------------------
    def erasure_subject(self, id_type: str, value: str) -> Subject:
        """Every identifier of the person ``value`` names, resolved through identity
        (:func:`.erasure.resolve`)."""
        with self._reading("resolving a person to erase") as conn:
            return erasure.resolve(conn, id_type, value)

    def suppression_list(self) -> SuppressionList:
        """The erasure salt and the hashes of every erased identifier (empty while none)."""
        with self._reading("reading the suppression list") as conn:
            return erasure.suppression_list(conn)

    def erasure_salt(self) -> bytes:
        """The key of the erasure hashes, made by the first erasure."""
        with self._transaction("reading the erasure salt") as conn:
            return erasure.salt(conn, self.dialect.insert)

    def suppress(self, hashes: Sequence[Mapping[str, str]], erasure_id: str) -> None:
        """Add identifier hashes to the suppression list, in their own transaction."""
        with self._transaction("adding to the suppression list") as conn:
            erasure.suppress(conn, self.dialect.insert, hashes, erasure_id, naive_utc_now())

    def erase(self, subject: Subject, receipt: Mapping[str, Any]) -> dict[str, Any]:
        """Delete the subject's rows from every personal table (:data:`.erasure.PERSONAL_TABLES`)
        and keep the receipt, with the serving store's counts added, in one transaction; the
        receipt as kept. The transaction keeps the speed layer's commits out
        (:meth:`StoreDialect.fenced_transaction`), so a micro-batch computed before the
        subject's identifiers were suppressed commits before it — and its rows are deleted —
        or not at all (:func:`.realtime.check_suppression`)."""
        with (
            self._driver_errors("erasing a person"),
            self.dialect.fenced_transaction(self.engine) as conn,
        ):
            counts = erasure.delete(conn, subject)
            stores = {
                **receipt["stores"],
                "serving": {"tables": counts, "rows": sum(counts.values())},
            }
            kept = {**receipt, "stores": stores}
            erasure.record_receipt(conn, kept)
        return kept

    def erasure_receipts(self) -> list[dict[str, Any]]:
        """Every erasure's receipt, oldest first."""
        with self._reading("reading the erasure receipts") as conn:
            return erasure.receipts(conn)

    # -- privacy: consent since the batch, the read audit ------------------------------------
    def record_consent(self, person_id: str, decision: Decision) -> str | None:
        """Store a consent decision for a person (a retired id: its survivor) under each of
        their identifiers (:mod:`.consent`); the person id it was stored for, None if unknown."""
        with self._transaction("recording a consent decision") as conn:
            found = consent.known_person(conn, person_id)
            if found is not None:
                consent.record(conn, self.dialect, consent.identifiers_of(conn, found), decision)
            return found

    def record_identifier_consent(self, id_type: str, id_value: str, decision: Decision) -> None:
        """Store a consent decision for an identifier (in lookup form), known yet or not."""
        with self._transaction("recording a consent decision") as conn:
            consent.record(conn, self.dialect, [(id_type, id_value)], decision)

    def profile_and_consent(
        self, person_id: str, *, explain: bool = False
    ) -> tuple[dict[str, Any], Decision | None] | None:
        """:meth:`profile` and the person's newest consent decision since the batch, read in
        one statement: the Profile API's read."""
        with self._driver_errors("reading a profile"):
            return self._reads.profile_and_consent(person_id, None, explain)

    def profile_by_identifier(
        self, id_type: str, id_value: str, *, explain: bool = False
    ) -> tuple[dict[str, Any], Decision | None] | profiles.Ambiguous | None:
        """:meth:`profile_and_consent` of the person an identifier (in lookup form) belongs to
        (:meth:`find_person`): the Profile API's read by identifier. When no person holds it,
        :class:`~.profiles.Ambiguous` if several do (identity left it out of identity_map:
        ``ambiguous_identifier``, asked only then), else None."""
        with self._driver_errors("reading a profile"):
            return self._reads.profile_by_identifier(id_type, id_value, explain)

    # The same reads on the event loop, where the store's driver has async connections
    # (``reads_async``): a networked store's reads then need no thread hop.
    @property
    def reads_async(self) -> bool:
        return self._reads.async_pool is not None

    def concurrent_reads(self, at_once: int) -> None:
        """At most ``at_once`` async reads at a time (each holds a connection meanwhile)."""
        if self._reads.async_pool is not None:
            self._reads.async_pool.resize(at_once)

    @property
    def profile_cache(self) -> profiles.BatchCache:
        return self._reads.cache

    def cache_profiles(self, size: int) -> None:
        """Keep the batch's parts of the ``size`` profiles read most recently
        (:class:`.profiles.BatchCache`: never stale; 0: none)."""
        self._reads.cache.resize(size)

    async def afind_person(self, id_type: str, id_value: str) -> str | None:
        """:meth:`find_person` on the event loop."""
        with self._driver_errors("finding a person"):
            return await self._reads.afind_person(id_type, id_value)

    async def aprofile_and_consent(
        self, person_id: str, *, explain: bool = False
    ) -> tuple[dict[str, Any], Decision | None] | None:
        """:meth:`profile_and_consent` on the event loop."""
        with self._driver_errors("reading a profile"):
            return await self._reads.aprofile_and_consent(person_id, None, explain)

    async def aprofile_by_identifier(
        self, id_type: str, id_value: str, *, explain: bool = False
    ) -> tuple[dict[str, Any], Decision | None] | profiles.Ambiguous | None:
        """:meth:`profile_by_identifier` on the event loop."""
        with self._driver_errors("reading a profile"):
            return await self._reads.aprofile_by_identifier(id_type, id_value, explain)

    def consent_decisions(self, person_ids: Collection[str] | None = None) -> dict[str, Decision]:
        """The newest consent decision since the batch per person (of ``person_ids``, or all)."""
        with self._reading("reading consent decisions") as conn:
            if person_ids is None:
                return consent.for_everyone(conn)
            return consent.for_persons(conn, self.dialect, person_ids)

    def erase_consent(self, identifiers: Collection[tuple[str, str]]) -> int:
        """Delete the consent decisions stored under these ``(id_type, id_value)`` pairs (a
        person id as ``("person_id", id)``), for the erasure; how many rows went."""
        with self._transaction("erasing consent decisions") as conn:
            return consent.erase(conn, identifiers)

    def record_reads(self, reads: Sequence[audit.Read]) -> None:
        """Append profile reads to the read audit, in one transaction — but not those of a
        person erased meanwhile (a read buffered before an erasure and written after it).
        The shared publish fence orders this after an erasure's deletes, which take it
        exclusively: a person is either erased before (and left out here) or after (and
        their reads deleted with the rest). The transaction is a write transaction
        (:meth:`StoreDialect.write_transaction`; SQLite: the write lock from its BEGIN, so
        another writer's commit is waited for rather than failing the flush as busy), and
        the persons are hashed before it."""
        if not reads:
            return
        operation = "recording profile reads"
        persons = {r.person_id for r in reads}
        with self._reading(operation) as conn:
            salt = erasure.stored_salt(conn)
        # The persons are hashed before the write transaction, which then holds no lock
        # while the CPU works (thousands of hashes a flush).
        by_hash = erasure.person_hashes(salt, persons) if salt is not None else None
        with self._driver_errors(operation), self.dialect.write_transaction(self.engine) as conn:
            self.dialect.fence_publish(conn, exclusive=False)
            if by_hash is None and (salt := erasure.stored_salt(conn)) is not None:
                by_hash = erasure.person_hashes(salt, persons)  # the first erasure, just now
            erased = erasure.erased_persons(conn, self.dialect, by_hash or {})
            kept = [r for r in reads if r.person_id not in erased] if erased else reads
            if kept:
                audit.insert_reads(conn, self.dialect, kept)

    def audited_reads(
        self,
        person_id: str | None = None,
        key_id: str | None = None,
        limit: int = 100,
        before: int | None = None,
    ) -> list[audit.Read]:
        """Recorded reads, newest first, of a person and/or by a key (:func:`.audit.reads`)."""
        with self._reading("reading the read audit") as conn:
            return audit.reads(conn, person_id, key_id, limit, before)

    def erase_from_audit(self, person_ids: Collection[str]) -> int:
        """Delete the persons' rows from the read audit; how many (:func:`.audit.erase`)."""
        with self._transaction("erasing from the read audit") as conn:
            return audit.erase(conn, self.dialect, person_ids)

    # -- inspection ------------------------------------------------------------------------
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows of a read-only query, as dicts: for tests and operators' tools. The platform's
        own reads are the methods above."""
        with self._reading("running a query") as conn:
            return [dict(row._mapping) for row in conn.execute(text(sql), dict(params or {}))]


def _ms(duration: dt.timedelta) -> int:
    return round(duration.total_seconds() * 1000)


def open_store(url: str) -> ServingStore:
    """The store for a ``serving.url``; the scheme picks the dialect."""
    scheme = url.split(":", 1)[0].split("+")[0]
    if scheme == "sqlite":
        from c360.stores.sqlite import SQLiteDialect

        return ServingStore(url, SQLiteDialect())
    if scheme == "postgresql":
        from c360.stores.postgres import PostgresDialect

        return ServingStore(url, PostgresDialect())
    raise ConfigError(
        "serving.url", f"unsupported store {scheme!r}; accepted: sqlite:///PATH, postgresql://…"
    )
