"""Health: is the process up, is the serving store answering, which batch is serving."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from c360.api.json import JSON
from c360.stores import ServingStore


def health_router(serving: ServingStore) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_class=JSON)
    async def healthz() -> JSON:
        """The process is up (it answers without touching the store)."""
        return JSON({"status": "ok"})

    @router.get("/health")
    def health() -> dict[str, Any]:
        """The serving batch (its date and publish time; null before the first publish)."""
        published = serving.latest_publish()
        batch = (
            None
            if published is None
            else {key: published[key] for key in ("batch_date", "published_at")}
        )
        return {"status": "ok", "batch": batch}

    return router
