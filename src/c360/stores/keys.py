"""The Profile API's keys in the serving store (``api_key``): the SQL behind
``ServingStore.add_api_key``, ``api_keys``, ``find_api_key`` and ``revoke_api_key``.

A key is stored without its secret: ``secret_sha256`` only (:mod:`c360.access.keys`). Scopes are
one space-separated text, sorted. Revoking keeps the row (``revoked_at`` set), so a revoked key
stays listed and its id is never handed out again.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, select

from c360.access.keys import ApiKey
from c360.contracts import serving

_TABLE = serving.api_key


def _row(key: ApiKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "name": key.name,
        "scopes": " ".join(sorted(key.scopes)),
        "secret_sha256": key.secret_sha256,
        "rate_limit_per_s": key.rate_limit_per_s,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }


def _key(row: Any) -> ApiKey:
    return ApiKey(
        key_id=row.key_id,
        name=row.name,
        scopes=frozenset(row.scopes.split()),
        secret_sha256=row.secret_sha256,
        rate_limit_per_s=row.rate_limit_per_s,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def add(conn: Connection, key: ApiKey) -> None:
    conn.execute(_TABLE.insert().values(**_row(key)))


def every(conn: Connection) -> list[ApiKey]:
    """Every key, revoked ones included, oldest first."""
    query = select(_TABLE).order_by(_TABLE.c.created_at, _TABLE.c.key_id)
    return [_key(row) for row in conn.execute(query)]


def find(conn: Connection, key_id: str) -> ApiKey | None:
    row = conn.execute(select(_TABLE).where(_TABLE.c.key_id == key_id)).first()
    return None if row is None else _key(row)


def revoke(conn: Connection, key_id: str, at: dt.datetime) -> ApiKey | None:
    """Revoke a key (a revoked key keeps its first ``revoked_at``); the key, or None."""
    conn.execute(
        _TABLE.update()
        .where(_TABLE.c.key_id == key_id, _TABLE.c.revoked_at.is_(None))
        .values(revoked_at=at)
    )
    return find(conn, key_id)
