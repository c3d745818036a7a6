"""The Profile API: the app, assembled from one router per concern.

``profiles.py`` (reads), ``health.py``, ``collector.py`` (Segment-compatible ingestion),
``zendesk_webhook.py``; ``errors.py`` gives every error one shape with a machine-readable code.
"""

from __future__ import annotations

import gc
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
    errors.install(app)
    # The website's lookups first: FastAPI tries the routes in order.
    app.include_router(profiles_router(serving))
    app.include_router(health_router(serving))
    app.include_router(collector_router(collector))
    app.include_router(zendesk_router(webhook))
    return app


def app_from_configuration() -> FastAPI:
    """The app of a ``c360 serve --workers N`` process: the configuration as ``c360`` resolves
    it from the file (``$C360_CONFIG``, ``./c360.toml``) and ``C360_*`` variables."""
    from c360.config import load_config

    return serving_process_app(create_app(load_config().settings))


def serving_process_app(app: FastAPI) -> FastAPI:
    """``app`` as the one app of a server process: everything alive now (modules, the app, its
    schemas) lives as long as the process, so it is frozen out of the garbage collector's
    sight — its full passes then stay short and do not show in the latency of the request
    that happens to trigger one."""
    gc.collect()
    gc.freeze()
    return app
