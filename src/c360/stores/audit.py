"""The read audit (``read_audit``): who read whose profile, when, through which route.

Rows are appended in batches by the API's buffer (:mod:`c360.api.audit`) and read newest
first by an admin (``GET /v1/audit``, ``c360 audit``). :func:`erase` removes a person's rows:
the erasure's registry calls it, and its receipt keeps only a hash of the identifiers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, NamedTuple

import orjson
from sqlalchemy import Connection, select

from c360.contracts.serving import read_audit

if TYPE_CHECKING:
    from c360.stores.base import StoreDialect

_WRITTEN = ("read_at", "key_id", "person_id", "route")  # the id is the table's to give


class Read(NamedTuple):
    """One recorded read: the key's id (never its secret), the person, the route template.
    A tuple rather than a dataclass: the API makes thousands a second."""

    read_at: dt.datetime  # naive UTC
    key_id: str
    person_id: str
    route: str
    id: int | None = None  # the row's id once stored (the order of recording)

    def public(self) -> dict[str, object]:
        return {
            "id": self.id,
            "read_at": self.read_at.replace(tzinfo=dt.UTC).isoformat(),
            "key_id": self.key_id,
            "person_id": self.person_id,
            "route": self.route,
        }


def insert_reads(conn: Connection, dialect: StoreDialect, reads: Sequence[Read]) -> None:
    """Append the reads, in the order given, in one call to the database where it can
    (:meth:`~c360.stores.base.StoreDialect.append_rows`): the flush runs beside the API's
    event loop, in its process."""
    rows = [(r.read_at, r.key_id, r.person_id, r.route) for r in reads]
    dialect.append_rows(conn, read_audit, rows, _WRITTEN)


def reads(
    conn: Connection,
    person_id: str | None,
    key_id: str | None,
    limit: int,
    before: int | None = None,
) -> list[Read]:
    """Up to ``limit`` reads, newest first (by row id, below ``before`` when given), of a
    person and/or by a key (either or both)."""
    t = read_audit
    query = select(t).order_by(t.c.id.desc()).limit(limit)
    if person_id is not None:
        query = query.where(t.c.person_id == person_id)
    if key_id is not None:
        query = query.where(t.c.key_id == key_id)
    if before is not None:
        query = query.where(t.c.id < before)
    return [Read(r.read_at, r.key_id, r.person_id, r.route, int(r.id)) for r in conn.execute(query)]


def erase(conn: Connection, dialect: StoreDialect, person_ids: Collection[str]) -> int:
    """Delete every read of these persons; how many rows went. The persons go as one JSON
    array, the index probed with each (as :func:`.erasure.erased_persons` sends hashes): one
    bound parameter per person fails past PostgreSQL's 65,535."""
    if not person_ids:
        return 0
    statement = (
        f"DELETE FROM {read_audit.name} WHERE person_id IN {dialect.json_values(':persons')}"
    )
    persons = orjson.dumps(list(person_ids)).decode()
    done = conn.exec_driver_sql(dialect.driver_sql(statement), {"persons": persons})
    return max(int(done.rowcount), 0)
