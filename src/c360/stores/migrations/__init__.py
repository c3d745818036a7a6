"""The serving store's schema history, kept with Alembic.

One migration set serves SQLite and PostgreSQL (dialect branches only where they differ).
:func:`upgrade` brings a store to ``head`` inside the caller's transaction; a store written
before the schema was versioned (c360 0.1.0: tables but no ``alembic_version``) is adopted
first — missing tables and nullable columns of the baseline are added, then it is stamped at the
baseline — and upgraded like any other.

Adding a migration: change :mod:`c360.contracts.serving`, then write the revision in
``versions/`` (``alembic revision`` with this folder as ``script_location`` gives the skeleton,
``--autogenerate`` a draft against a migrated store). A test compares the schema every migration
produces with the contract, on SQLite and PostgreSQL, so a change without its migration fails.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.schema import CreateColumn

from c360.errors import DataError

logger = logging.getLogger(__name__)

BASELINE = "0001"
HERE = Path(__file__).parent


def config(conn: Connection) -> Config:
    """Alembic's configuration for this package's scripts, bound to ``conn``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = conn
    return cfg


def current(conn: Connection) -> str | None:
    """The revision a store is at (None: never migrated, or written before versioning)."""
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(conn: Connection) -> None:
    """Bring the store on ``conn`` to the newest revision, in the caller's transaction."""
    if current(conn) is None and inspect(conn).has_table("stream_offsets"):
        _adopt_unversioned(conn)
    command.upgrade(config(conn), "head")


def _adopt_unversioned(conn: Connection) -> None:
    """Stamp a store c360 0.1.0 wrote (``create_all`` plus added columns) at the baseline,
    after adding what an older build may lack."""
    from c360.stores.migrations.versions import _0001_baseline as baseline

    baseline.metadata.create_all(conn, checkfirst=True)
    inspector = inspect(conn)
    for table in baseline.metadata.sorted_tables:
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
    command.stamp(config(conn), BASELINE)
    logger.info("serving store: adopted an unversioned store at revision %s", BASELINE)
