"""Leases in the serving store (``batch_lock``): work that must not run twice at once.

A lease is one row: its name, its owner and when it expires. Taking one is a single upsert
that succeeds when the row is absent, expired or already the taker's own — atomic on SQLite
(one writer at a time) and on PostgreSQL (``ON CONFLICT`` locks the row it meets, so a second
taker waits for the first to commit and then sees its lease). The holder renews it while it
works; a holder that died stops renewing, and its lease is taken over once it has expired.
Times come from the database's clock, not the callers', so hosts whose clocks disagree still
agree on who holds a lease.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    delete,
    literal_column,
    or_,
    select,
    update,
)

from c360.contracts import serving
from c360.contracts.times import from_epoch_ms

if TYPE_CHECKING:
    from c360.stores.base import StoreDialect


@dataclass(frozen=True)
class Lease:
    """Who holds a lease, since when and until when (UTC, by the database's clock)."""

    name: str
    owner: str
    acquired_at: dt.datetime
    expires_at: dt.datetime


def _now_ms(dialect: StoreDialect) -> ColumnElement[int]:
    return literal_column(f"CAST({dialect.now_ms()} AS BIGINT)", BigInteger)


def take(conn: Connection, dialect: StoreDialect, name: str, owner: str, ttl_ms: int) -> bool:
    """Take lease ``name`` for ``owner`` for ``ttl_ms``: True if it is now ``owner``'s (it was
    free, expired or ``owner``'s already), False if someone else holds it."""
    table = serving.batch_lock
    now = _now_ms(dialect)
    insert = dialect.insert(table).values(
        name=name, owner=owner, acquired_ms=now, expires_ms=now + ttl_ms
    )
    taken = insert.on_conflict_do_update(
        index_elements=[table.c.name],
        set_={
            "owner": insert.excluded.owner,
            "acquired_ms": insert.excluded.acquired_ms,
            "expires_ms": insert.excluded.expires_ms,
        },
        where=or_(
            table.c.expires_ms <= insert.excluded.acquired_ms,
            table.c.owner == insert.excluded.owner,
        ),
    ).returning(table.c.owner)
    return conn.execute(taken).first() is not None


def renew(conn: Connection, dialect: StoreDialect, name: str, owner: str, ttl_ms: int) -> bool:
    """Push the expiry of ``owner``'s lease to ``ttl_ms`` from now; False if ``owner`` no longer
    holds it (it expired and was taken over)."""
    table = serving.batch_lock
    renewed = (
        update(table)
        .where(table.c.name == name, table.c.owner == owner)
        .values(expires_ms=_now_ms(dialect) + ttl_ms)
    )
    return conn.execute(renewed).rowcount == 1


def release(conn: Connection, name: str, owner: str) -> bool:
    """Give ``owner``'s lease up; False if ``owner`` did not hold it."""
    table = serving.batch_lock
    released = delete(table).where(table.c.name == name, table.c.owner == owner)
    return conn.execute(released).rowcount == 1


def holder(conn: Connection, name: str) -> Lease | None:
    """The lease's row as it stands (possibly expired), or None."""
    table = serving.batch_lock
    row = conn.execute(select(table).where(table.c.name == name)).first()
    if row is None:
        return None
    return Lease(row.name, row.owner, from_epoch_ms(row.acquired_ms), from_epoch_ms(row.expires_ms))
