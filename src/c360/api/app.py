"""The Profile API: unified profiles by person id or by any identifier."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Response

from c360 import __version__
from c360.api.collector import Collector, IngestLog, collector_router
from c360.api.schema import Profile
from c360.api.zendesk_webhook import ZendeskWebhook, zendesk_router
from c360.config import Settings
from c360.identity.normalise import normalise
from c360.logs import EventLog
from c360.stores import ServingStore, open_store

IdType = Literal["customer_id", "email", "anonymous_id", "zendesk_user_id", "mailchimp_id", "phone"]


def create_app(
    settings: Settings, store: ServingStore | None = None, log: EventLog | None = None
) -> FastAPI:
    """The API over the configured serving store (or a given one, e.g. in tests).

    The collector and the Zendesk webhook append to the event log of ``settings.log``, opened
    once at startup when either is enabled (a write key or a webhook secret is configured), or
    to a given ``log`` (tests), which the app then neither opens nor closes.
    """
    owned = store is None
    serving = store or open_store(settings.serving.url)
    events = IngestLog(settings.log, log)
    collector = Collector(settings.collector, events)
    webhook = ZendeskWebhook(settings.sources.zendesk, events)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        serving.migrate()
        try:
            if collector.enabled or settings.sources.zendesk.webhook_secret is not None:
                events.open()
            yield
        finally:
            events.close()
            if owned:
                serving.dispose()

    app = FastAPI(title="c360 Profile API", version=__version__, lifespan=lifespan)
    app.include_router(collector_router(collector))
    app.include_router(zendesk_router(webhook))

    @app.get("/health")
    def health() -> dict[str, Any]:
        published = serving.latest_publish()
        batch = (
            None
            if published is None
            else {key: published[key] for key in ("batch_date", "published_at")}
        )
        return {"status": "ok", "batch": batch}

    @app.get("/v1/profiles/{person_id}", response_model=Profile)
    def profile(person_id: str, response: Response) -> dict[str, Any]:
        """A person's profile. A retired id (merged into another person) answers with the
        survivor's profile, ``redirected_from`` set and ``Content-Location`` naming the
        survivor's URL, so a client can update the id it stores."""
        found = serving.profile(person_id)
        if found is None:
            raise HTTPException(404, f"no person {person_id!r}")
        if found["redirected_from"] is not None:
            response.headers["Content-Location"] = f"/v1/profiles/{found['person_id']}"
        return found

    @app.get("/v1/profiles/by/{id_type}/{id_value}", response_model=Profile)
    def profile_by_identifier(id_type: IdType, id_value: str, response: Response) -> dict[str, Any]:
        person_id = serving.find_person(id_type, normalise(id_type, id_value))
        if person_id is None:
            raise HTTPException(404, f"no person with that {id_type}")
        return profile(person_id, response)

    return app
