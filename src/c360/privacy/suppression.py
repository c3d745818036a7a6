"""The suppression list: keyed hashes of erased identifiers, checked where data comes in.

After an erasure, events that carry any erased identifier are dropped at the collector and the
Zendesk webhook, and the daily ingestion drops the sources' rows keyed by one
(:data:`RAW_COLUMNS`), so the person does not come back from the next extract.

**What "comes back" means.** A person comes back only as a new shop account: a ``customers`` or
``orders`` row whose ``customer_id`` is not suppressed is kept even when its email is (they
signed up again); every other row carrying a suppressed identifier — the old customer id, an
old order id, a cookie, a Zendesk or Mailchimp id, or an email on a row without an account of
its own (a Mailchimp member, a Zendesk user, a guest order) — is dropped. Lifting a suppression
is an operator's decision, not the platform's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from c360.errors import C360Error
from c360.identity.normalise import map_distinct
from c360.privacy.identifiers import ORDER, identifier_hash

logger = logging.getLogger(__name__)

# The columns of the raw zone whose values are identifiers, per (source, table): what ingestion
# checks against the suppression list and what lake erasure matches beside the generic column
# names (c360.pipeline.erasure).
RAW_COLUMNS: Mapping[tuple[str, str], Mapping[str, str]] = {
    ("shop", "customers"): {"customer_id": "customer_id", "email": "email"},
    ("shop", "orders"): {"customer_id": "customer_id", "order_id": ORDER, "email": "email"},
    ("shop", "order_items"): {"order_id": ORDER},
    ("mailchimp", "members"): {"email_address": "email", "euid": "mailchimp_id"},
    ("mailchimp", "email_activity"): {"email_address": "email"},
    ("zendesk", "events"): {
        "user_id": "zendesk_user_id",
        "requester_id": "zendesk_user_id",
        "email": "email",
    },
    ("events", "clickstream"): {"anonymous_id": "anonymous_id", "user_id": "customer_id"},
    ("events", "support"): {"key": "zendesk_user_id"},
}
# Tables whose rows are a shop account: an unsuppressed customer id there is a new account,
# kept whatever its email (see the module docstring).
ACCOUNT_COLUMN: Mapping[tuple[str, str], str] = {
    ("shop", "customers"): "customer_id",
    ("shop", "orders"): "customer_id",
}


@dataclass(frozen=True)
class SuppressionList:
    """The store's salt and the hashes of every erased identifier (no values); ``generation``
    counts the list's additions (a reader can tell the list it holds is no longer current)."""

    salt: bytes
    hashes: frozenset[str]
    generation: int = 0

    def __bool__(self) -> bool:
        return bool(self.hashes)

    def suppressed(self, id_type: str, value: object) -> bool:
        if not self.hashes or value is None or value == "":
            return False
        return identifier_hash(self.salt, id_type, str(value)) in self.hashes

    def any_suppressed(self, pairs: Iterable[tuple[str, object]]) -> bool:
        return bool(self.hashes) and any(self.suppressed(t, v) for t, v in pairs)

    def column_mask(self, values: pa.Array | pa.ChunkedArray, id_type: str) -> pa.Array:
        """True where the value is a suppressed identifier of ``id_type`` (hashed once per
        distinct value)."""
        if values.type != pa.string():
            values = pc.cast(values, pa.string())

        def hashed(value: str) -> str | None:
            return "1" if self.suppressed(id_type, value) else None

        return pc.is_valid(map_distinct(values, hashed))

    def filter_raw(
        self, source: str, table: str, rows: pa.RecordBatch | pa.Table
    ) -> tuple[pa.RecordBatch | pa.Table, int]:
        """The rows of a raw table not keyed by a suppressed identifier, and how many went."""
        columns = RAW_COLUMNS.get((source, table))
        if not self.hashes or not columns or rows.num_rows == 0:
            return rows, 0
        names = set(rows.schema.names)
        account = ACCOUNT_COLUMN.get((source, table))
        drop = pa.array([False] * rows.num_rows, pa.bool_())
        for column, id_type in columns.items():
            if column not in names:
                continue
            mask = pc.fill_null(self.column_mask(rows.column(column), id_type), False)
            if id_type == "email" and account in names:  # a new account keeps its email
                assert account is not None
                new_account = pc.and_(
                    pc.is_valid(rows.column(account)),
                    pc.invert(self.column_mask(rows.column(account), "customer_id")),
                )
                mask = pc.and_(mask, pc.invert(pc.fill_null(new_account, False)))
            drop = pc.or_(drop, mask)
        dropped = pc.sum(drop).as_py() or 0
        return (rows.filter(pc.invert(drop)) if dropped else rows), int(dropped)


NO_SUPPRESSION = SuppressionList(b"", frozenset())

Loader = Callable[[], SuppressionList]


class SuppressionCache:
    """The suppression list of a long-lived process (the API's collector and webhook): read
    from the store at most every ``refresh_seconds`` on use, so the hot path is a set lookup;
    a failed re-read keeps the list it has (and is retried at the next refresh)."""

    def __init__(self, load: Loader, refresh_seconds: float = 10.0) -> None:
        self._load = load
        self._refresh = refresh_seconds
        self._current = NO_SUPPRESSION
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def current(self) -> SuppressionList:
        if time.monotonic() - self._loaded_at >= self._refresh:
            self.reload()
        return self._current

    def reload(self) -> None:
        with self._lock:
            try:
                self._current = self._load()
            except C360Error as exc:  # keep the list we have; the store will be back
                logger.warning("could not refresh the suppression list: %s", exc)
            self._loaded_at = time.monotonic()
