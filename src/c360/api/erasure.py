"""``DELETE /v1/persons/{person_id}`` (scope ``admin``): erase a person everywhere.

The same erasure as ``c360 forget --person`` (:mod:`c360.pipeline.erasure`): the answer is
the receipt (hashes and counts, never a value). It runs on the threadpool and takes as long
as the lake's rewrites (seconds to a minute on a large lake). It holds the batch lock: while a
daily batch (or another erasure) holds it for over :data:`LOCK_WAIT`, the answer is 503
``batch_running`` with a ``Retry-After``. This process's suppression list
is re-read at once, so its collector and webhook drop the person's events from the answer on;
other processes within ``api.key_refresh_seconds``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from c360.api.auth import requires
from c360.api.collector import IngestLog
from c360.api.errors import ApiError, responses
from c360.config import Settings
from c360.errors import NotFoundError
from c360.pipeline.batch_lock import BatchLocked
from c360.pipeline.erasure import forget
from c360.privacy import SuppressionCache
from c360.stores import ServingStore

# An erasure holds the batch lock: a request waits this long for a running batch, then 503.
LOCK_WAIT = dt.timedelta(seconds=10)
LOCKED_RETRY_AFTER_SECONDS = 60

_PERSON = {"name": "person_id", "in": "path", "required": True, "schema": {"type": "string"}}


class IdentifierHash(BaseModel):
    type: str = Field(description="The identifier's type (email, customer_id, …).")
    hash: str = Field(description="HMAC-SHA256 of the identifier, keyed by the store's salt.")


class Receipt(BaseModel):
    erasure_id: str
    erased_at: str = Field(description="When the erasure finished (UTC, ISO 8601).")
    requested_by: str
    identifiers: list[IdentifierHash]
    stores: dict[str, Any] = Field(
        description="Per store (serving, lake, log): what was removed, with row and file counts."
    )
    seconds: float


def erasure_router(
    settings: Settings, serving: ServingStore, events: IngestLog, suppression: SuppressionCache
) -> APIRouter:
    router = APIRouter(tags=["privacy"])

    def erase(person_id: str) -> dict[str, Any]:
        try:
            receipt = forget(
                settings,
                serving,
                "person_id",
                person_id,
                requested_by="api",
                log=events.current,
                lock_wait=LOCK_WAIT,
            )
        except NotFoundError:
            raise ApiError(404, "not_found", "no such person") from None
        except BatchLocked:
            raise ApiError(
                503,
                "batch_running",
                "a daily batch or another erasure holds the batch lock; retry when it is done",
                headers={"Retry-After": str(LOCKED_RETRY_AFTER_SECONDS)},
            ) from None
        suppression.reload()
        return receipt

    @router.delete(
        "/v1/persons/{person_id}",
        dependencies=[requires("admin")],
        response_model=Receipt,
        responses=responses(404, 500, 503),
    )
    async def erase_person(person_id: str) -> dict[str, Any]:
        """Erase a person everywhere — serving store, lake, event log — and suppress their
        identifiers; the receipt."""
        return await run_in_threadpool(erase, person_id)

    return router
