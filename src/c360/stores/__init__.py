"""Serving stores: SQLite (embedded default) and PostgreSQL, behind one interface."""

from c360.stores.base import ServingStore, open_store

__all__ = ["ServingStore", "open_store"]
