"""Which person a real-time row belongs to, resolved when it is written: the read model.

Real-time state is kept per source identifier (a cookie, a Zendesk user), and orders per order
id. Each such row belongs to the person its identifiers lead to, by these rules (the stitching
of :mod:`c360.identity.stitching`):

- a clickstream state (``realtime_state``): its cookie's ``identity_stitch`` link, else the
  customer it last identified as (``user_id``), else its own identifier in ``identity_map``;
- an order (``realtime_order``): who was logged in when it was placed (``user_id``) comes first,
  then the cookie's link (an anonymous order of a cookie that identified later), then the
  identifier;
- a support state (``realtime_support``): its own identifier (the Zendesk user).

The person is stored in the row's ``person_id`` column rather than found at read time, so a
profile read is an indexed lookup by person instead of three branches and four joins per read.
It is set again whenever what it depends on changes, in the transaction that changes it:

- the speed layer's micro-batch commit, for the rows it wrote and the rows of the cookies it
  linked (:func:`resolve_batch`);
- :meth:`~c360.stores.ServingStore.stitch`, for the rows of the cookies linked;
- the batch publish, which replaces ``identity_map``, for every row (:func:`resolve_all`).

Each statement rewrites only the rows whose person changes. On PostgreSQL the publish fences
the speed layer (``StoreDialect.fence_publish``): a micro-batch resolving against the old map
cannot commit rows after the publish re-resolved the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection

if TYPE_CHECKING:
    from c360.speed.features import StateKey
    from c360.stores.base import StoreDialect


def _by_link(row: str) -> str:
    return f"""(SELECT m.person_id FROM identity_stitch s
        JOIN identity_map m ON m.id_type = 'customer_id' AND m.id_value = s.customer_id
        WHERE {row}.id_type = 'anonymous_id' AND s.anonymous_id = {row}.id_value)"""


def _by_user(row: str) -> str:
    return f"""(SELECT m.person_id FROM identity_map m
        WHERE m.id_type = 'customer_id' AND m.id_value = {row}.user_id)"""


def _by_id(row: str) -> str:
    return f"""(SELECT m.person_id FROM identity_map m
        WHERE m.id_type = {row}.id_type AND m.id_value = {row}.id_value)"""


# Each table's rule, in order of precedence (see the module docstring).
_RULES = {
    "realtime_state": (_by_link, _by_user, _by_id),
    "realtime_order": (_by_user, _by_link, _by_id),
    "realtime_support": (_by_id,),
}
TABLES = tuple(_RULES)


def person_of(table: str, row: str | None = None) -> str:
    """The SQL expression of the person a row of ``table`` (aliased ``row``) belongs to."""
    row = row or table
    return f"COALESCE({', '.join(rule(row) for rule in _RULES[table])}, NULL)"


def _update(table: str, where: str) -> str:
    person = person_of(table)
    return (
        f"UPDATE {table} SET person_id = {person} "
        f"WHERE {where} AND person_id IS DISTINCT FROM {person}"
    )


def resolve_all(conn: Connection) -> int:
    """Resolve every real-time row again (``identity_map`` changed); how many changed person."""
    return sum(_run(conn, _update(table, "1 = 1"), {}) for table in TABLES)


def resolve_batch(
    conn: Connection,
    dialect: StoreDialect,
    states: Sequence[StateKey] = (),
    support: Sequence[StateKey] = (),
    orders: Sequence[str] = (),
    cookies: Sequence[str] = (),
) -> int:
    """Resolve the rows a micro-batch wrote (clickstream ``states``, ``support`` states,
    ``orders`` by id) and every row of the ``cookies`` it linked; how many changed person."""
    by_value: list[tuple[str, str | None, str, Sequence[str]]] = [
        ("realtime_order", None, "order_id", orders),
        ("realtime_state", "anonymous_id", "id_value", cookies),
        ("realtime_order", "anonymous_id", "id_value", cookies),
    ]
    for table, keys in (("realtime_state", states), ("realtime_support", support)):
        by_type: dict[str, list[str]] = {}
        for id_type, id_value in keys:
            by_type.setdefault(id_type, []).append(id_value)
        by_value += [(table, t, "id_value", values) for t, values in by_type.items()]
    return sum(
        _resolve_in(conn, dialect, table, id_type, column, values)
        for table, id_type, column, values in by_value
    )


def _resolve_in(
    conn: Connection,
    dialect: StoreDialect,
    table: str,
    id_type: str | None,
    column: str,
    values: Sequence[str],
) -> int:
    """Resolve the rows of ``table`` whose ``column`` is one of ``values`` (and whose id_type
    is ``id_type``, when given), in one statement: the values go as one JSON array, which the
    index is probed with. One statement, not one per few hundred values: the speed layer's
    commit runs in a second thread, and each driver call it makes waits for the worker's
    thread to hand the GIL back (up to 5 ms)."""
    if not values:
        return 0
    where = f"{column} IN {dialect.json_values(':values')}"
    params: dict[str, Any] = {"values": orjson.dumps(list(values)).decode()}
    if id_type is not None:
        where = f"id_type = :id_type AND {where}"
        params["id_type"] = id_type
    return _run(conn, dialect.driver_sql(_update(table, where)), params)


def _run(conn: Connection, sql: str, params: dict[str, Any]) -> int:
    return max(int(conn.exec_driver_sql(sql, params).rowcount), 0)
