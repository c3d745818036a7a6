"""Alembic's entry point: runs the migrations on the connection c360 hands over.

c360 calls Alembic from :func:`c360.stores.migrations.upgrade` with an open connection in
``config.attributes["connection"]``; there is no URL of its own to read.
"""

from __future__ import annotations

from alembic import context

from c360.contracts.serving import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "c360's migrations run through c360.stores.ServingStore.migrate() (or "
        "c360.stores.migrations.upgrade(conn)), which hands Alembic a connection"
    )
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
