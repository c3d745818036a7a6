"""Serving stores: SQLite (embedded default) and PostgreSQL, behind one interface."""

from c360.stores.base import ServingStore, StoreError, StoreUnavailable, open_store
from c360.stores.leases import Lease
from c360.stores.profiles import Ambiguous
from c360.stores.realtime import (
    DeadLetter,
    MicroBatch,
    OffsetConflict,
    PreparedBatch,
    SuppressionChanged,
)
from c360.stores.runlog import StepRecord

__all__ = [
    "Ambiguous",
    "DeadLetter",
    "Lease",
    "MicroBatch",
    "OffsetConflict",
    "PreparedBatch",
    "ServingStore",
    "StepRecord",
    "StoreError",
    "StoreUnavailable",
    "SuppressionChanged",
    "open_store",
]
