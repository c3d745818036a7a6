"""Health: is the process up, can it serve, which batch is serving.

- ``GET /healthz`` — liveness: the process answers (nothing else is asked; a restart is the cure
  for a failure here).
- ``GET /readyz`` — readiness: the serving store answers, and the serving batch was published
  less than ``api.readiness_max_publish_age_hours`` ago (0: the publish is not checked; a store
  never published to is not ready otherwise). 503 ``not_ready`` with the reason, else 200 with
  the batch and its age. A load balancer stops sending traffic to a process that is not ready;
  with every process reading the same store a stale batch takes them all out, so set the age
  above the longest outage of the daily batch you would rather serve through.
- ``GET /health`` — the serving batch's date and publish time (kept as it was).

None of them needs an API key: they carry no personal data, and probes send no keys. A store
error's detail (which names the store) goes to the log, not to the unauthenticated caller.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter

from c360.api.errors import ApiError, responses
from c360.api.json import JSON
from c360.config import ApiSettings
from c360.contracts.times import naive_utc_now
from c360.errors import C360Error
from c360.stores import ServingStore

logger = logging.getLogger(__name__)


def health_router(serving: ServingStore, settings: ApiSettings) -> APIRouter:
    router = APIRouter(tags=["health"])
    max_age_seconds = settings.readiness_max_publish_age_hours * 3600

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

    @router.get("/healthz", response_class=JSON)
    async def healthz() -> JSON:
        """Liveness: the process is up (the store is not asked)."""
        return JSON({"status": "ok"})

    @router.get("/readyz", responses=responses(503))
    def readyz() -> dict[str, Any]:
        """Readiness: the serving store answers and the serving batch is recent enough."""
        try:
            published = serving.latest_publish()
        except C360Error as exc:
            logger.warning("not ready: %s", exc)
            raise ApiError(503, "not_ready", "the serving store does not answer") from None
        if published is None:
            if max_age_seconds > 0:
                raise ApiError(503, "not_ready", "no batch has been published yet")
            return {"status": "ready", "batch": None, "publish_age_seconds": None}
        age = (naive_utc_now() - published["published_at"]).total_seconds()
        if max_age_seconds > 0 and age > max_age_seconds:
            raise ApiError(
                503,
                "not_ready",
                f"the serving batch ({published['batch_date']}) was published "
                f"{age / 3600:.1f} h ago, more than api.readiness_max_publish_age_hours "
                f"({settings.readiness_max_publish_age_hours:g})",
            )
        batch = {key: published[key] for key in ("batch_date", "published_at")}
        return {"status": "ready", "batch": batch, "publish_age_seconds": round(age, 1)}

    return router
