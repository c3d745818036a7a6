"""PostgreSQL serving store (scale-out; wire-compatible with Hologres)."""

from __future__ import annotations

from sqlalchemy import create_engine
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import make_url

from c360.errors import MissingDependencyError
from c360.stores.base import ServingStore


class PostgresStore(ServingStore):
    dialect_insert = staticmethod(insert)

    @classmethod
    def from_url(cls, url: str) -> PostgresStore:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise MissingDependencyError("psycopg", "postgres", "the PostgreSQL store") from None
        parsed = make_url(url)
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return cls(create_engine(parsed, pool_pre_ping=True))
