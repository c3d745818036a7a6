"""The serving store: SQLAlchemy Core over SQLite or PostgreSQL.

Everything both databases share lives here; ``sqlite.py`` and ``postgres.py`` hold only what
differs (connection set-up, upsert syntax). Only those two modules know their driver.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import pyarrow as pa
from sqlalchemy import Column, Connection, Engine, MetaData, Table, inspect, select, text
from sqlalchemy import types as sqltypes
from sqlalchemy.schema import CreateColumn

from c360.contracts import serving
from c360.contracts.cutoff import cutoff
from c360.errors import ConfigError, DataError
from c360.identity import stitching
from c360.identity.stitching import Reconciled
from c360.stores import views

logger = logging.getLogger(__name__)

INSERT_CHUNK = 5_000


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
    """Tables, transactions, upserts and the atomic batch publish."""

    dialect_insert: ClassVar[Any]

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- lifecycle -------------------------------------------------------------------------
    def migrate(self) -> None:
        """Create the fixed tables (and an empty batch_profile to grow), and add the columns a
        newer c360 declares to tables an older one created; idempotent."""
        serving.metadata.create_all(self.engine)
        with self.begin() as conn:
            _add_missing_columns(conn)
            if not inspect(conn).has_table(serving.BATCH_PROFILE):
                Table(
                    serving.BATCH_PROFILE,
                    MetaData(),
                    Column("person_id", sqltypes.String(40), primary_key=True),
                ).create(conn)

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction: commits on success, rolls back on error."""
        with self.engine.begin() as conn:
            yield conn

    # -- writes ----------------------------------------------------------------------------
    def upsert(
        self, conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], keys: Sequence[str]
    ) -> None:
        """Insert rows, replacing the non-key columns of rows whose keys exist."""
        if not rows:
            return
        statement = self.dialect_insert(table)
        updates = {c.name: statement.excluded[c.name] for c in table.columns if c.name not in keys}
        conn.execute(statement.on_conflict_do_update(index_elements=list(keys), set_=updates), rows)

    def publish_batch(self, batch_date: dt.date, tables: Mapping[str, pa.Table]) -> Reconciled:
        """Replace person, identity_map and batch_profile (and person_redirect, when given) in
        one transaction, and reconcile the real-time identity links against the new map.

        Readers see the previous complete batch until the commit and the new one after it,
        never a mix. New feature columns are added to batch_profile on the way. Without a
        ``person_redirect`` table the stored redirects are left as they are. Returns what the
        reconcile did (:func:`c360.identity.stitching.reconcile`).
        """
        profile = tables[serving.BATCH_PROFILE]
        replaced = [("person", serving.person), ("identity_map", serving.identity_map)]
        if "person_redirect" in tables:
            replaced.append(("person_redirect", serving.person_redirect))
        with self.begin() as conn:
            profile_table = self._evolve_profile_table(conn, profile.schema)
            for name, table in (*replaced, (serving.BATCH_PROFILE, profile_table)):
                conn.execute(table.delete())
                for rows in _python_rows(tables[name]):
                    conn.execute(table.insert(), rows)
            cutoff_at = cutoff(batch_date)
            reconciled = stitching.reconcile(conn, cutoff_at)
            conn.execute(
                serving.batch_publish.insert().values(
                    batch_date=batch_date.isoformat(),
                    cutoff_at=cutoff_at,
                    published_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
                    persons=profile.num_rows,
                )
            )
            views.create_profile_view(conn, [c.name for c in profile_table.columns])
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

    # -- reads -----------------------------------------------------------------------------
    def offsets(self, group: str, topic: str) -> dict[int, int]:
        """The next offset to read per partition, as last committed by the group."""
        o = serving.stream_offsets
        query = select(o.c.partition, o.c.next_offset).where(
            o.c.consumer_group == group, o.c.topic == topic
        )
        with self.engine.connect() as conn:
            return {int(p): int(n) for p, n in conn.execute(query)}

    def query(
        self, sql: str, params: Mapping[str, Any] | None = None, conn: Connection | None = None
    ) -> list[dict[str, Any]]:
        """Rows as dicts; pass ``conn`` to run several reads on one connection (one checkout)."""
        if conn is not None:
            return [dict(row._mapping) for row in conn.execute(text(sql), dict(params or {}))]
        with self.engine.connect() as own:
            return self.query(sql, params, own)


def _add_missing_columns(conn: Connection) -> None:
    """``ALTER TABLE … ADD COLUMN`` for each declared column an existing table lacks.

    A new column must be nullable or have a server default (existing rows need a value); a
    new primary-key column cannot be added in place.
    """
    inspector = inspect(conn)
    for table in serving.metadata.sorted_tables:
        existing = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in existing:
                continue
            if column.primary_key or (not column.nullable and column.server_default is None):
                raise DataError(
                    f"serving table {table.name} lacks column {column.name}, which cannot be "
                    "added to existing rows (a key, or NOT NULL without a server default); "
                    "migrate the table by hand or publish into a new serving store"
                )
            definition = CreateColumn(column).compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {definition}"))
            logger.info("serving store: added column %s.%s", table.name, column.name)


def open_store(url: str) -> ServingStore:
    """The store for a ``serving.url``; the scheme picks the adapter."""
    scheme = url.split(":", 1)[0].split("+")[0]
    if scheme == "sqlite":
        from c360.stores.sqlite import SQLiteStore

        return SQLiteStore.from_url(url)
    if scheme == "postgresql":
        from c360.stores.postgres import PostgresStore

        return PostgresStore.from_url(url)
    raise ConfigError(
        "serving.url", f"unsupported store {url!r}; accepted: sqlite:///PATH, postgresql://…"
    )
