"""The Profile API: the app, assembled from one router per concern.

``profiles.py`` (reads), ``health.py``, ``collector.py`` (Segment-compatible ingestion),
``zendesk_webhook.py``; ``errors.py`` gives every error one shape with a machine-readable code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from c360 import __version__
from c360.api import errors
from c360.api.collector import Collector, IngestLog, collector_router
from c360.api.health import health_router
from c360.api.profiles import profiles_router
from c360.api.zendesk_webhook import ZendeskWebhook, zendesk_router
from c360.config import Settings
from c360.logs import EventLog
from c360.stores import ServingStore, open_store


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
    skew = settings.events.max_clock_skew_seconds
    collector = Collector(settings.collector, events, max_clock_skew_seconds=skew)
    webhook = ZendeskWebhook(settings.sources.zendesk, events, max_clock_skew_seconds=skew)

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
    errors.install(app)
    app.include_router(collector_router(collector))
    app.include_router(zendesk_router(webhook))

    app.include_router(health_router(serving))
    app.include_router(profiles_router(serving))
    return app
