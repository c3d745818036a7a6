"""``DELETE /v1/persons/{person_id}`` (scope ``admin``): erase a person everywhere.

The same erasure as ``c360 forget --person`` (:mod:`c360.pipeline.erasure`): the answer is
the receipt (hashes and counts, never a value). It runs on the threadpool and takes as long
as the lake's rewrites (seconds to a minute on a large lake). This process's suppression list
is re-read at once, so its collector and webhook drop the person's events from the answer on;
other processes within ``api.key_refresh_seconds``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from c360.api.auth import requires
from c360.api.collector import IngestLog
from c360.api.errors import ApiError, responses
from c360.config import Settings
from c360.errors import NotFoundError
from c360.pipeline.erasure import forget
from c360.privacy import SuppressionCache
from c360.stores import ServingStore

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
            )
        except NotFoundError:
            raise ApiError(404, "not_found", "no such person") from None
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
