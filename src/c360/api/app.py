"""The Profile API: the app, assembled from one router per concern.

``profiles.py`` (reads), ``timeline.py`` and ``search.py`` (``cursors.py``: their pagination),
``segments.py`` (audiences: define, preview, delete), ``privacy.py`` (consent decided now, the
read audit, Mailchimp's unsubscribe webhook; ``audit.py`` buffers the audit), ``health.py``,
``collector.py`` (Segment-compatible ingestion), ``zendesk_webhook.py``; ``errors.py`` gives
every error one shape with a machine-readable code; ``auth.py`` the API keys
(``requires(scope)``), their rate limits and the OpenAPI security.

**CORS** (Starlette's middleware, outermost, so that 401/403/429 answers carry its headers too):
closed by default. With no ``api.cors_origins`` a browser's preflight (``OPTIONS`` with
``Origin`` and ``Access-Control-Request-Method``) is answered — 400 "Disallowed CORS origin",
without any ``Access-Control-Allow-*`` header, so the browser refuses the call and its console
says why — rather than 405 from the router. A listed origin (or ``*``) may send GET and POST
with ``Authorization`` and ``Content-Type``, and read ``Retry-After``, ``Content-Location`` and
``X-C360-Left-Out`` (a segment export's); no cookies (``allow_credentials`` off: keys travel in
a header). Mind that a key used from a
browser is visible to its users: give such a key no more than ``profiles:read``.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext

from anyio import to_thread
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from c360 import __version__
from c360.api import auth, errors, metrics
from c360.api.audit import ReadAudit
from c360.api.collector import Collector, IngestLog, collector_router
from c360.api.erasure import erasure_router
from c360.api.health import health_router
from c360.api.privacy import privacy_router, record_segment_consents
from c360.api.profiles import profiles_router
from c360.api.request_id import RequestIdMiddleware
from c360.api.search import search_router
from c360.api.segments import segments_router
from c360.api.timeline import timeline_router
from c360.api.zendesk_webhook import ZendeskWebhook, zendesk_router
from c360.config import Settings
from c360.logs import EventLog
from c360.masking import install_log_masking
from c360.privacy import SuppressionCache
from c360.stores import ServingStore, open_store


def create_app(
    settings: Settings, store: ServingStore | None = None, log: EventLog | None = None
) -> FastAPI:
    """The API over the configured serving store (or a given one, e.g. in tests).

    The collector and the Zendesk webhook append to the event log of ``settings.log``, opened
    once at startup when either is enabled (a write key or a webhook secret is configured), or
    to a given ``log`` (tests), which the app then neither opens nor closes.
    """
    install_log_masking()
    owned = store is None
    serving = store or open_store(settings.serving.url)
    access = auth.Access(settings.api, serving)
    events = IngestLog(settings.log, log)
    skew = settings.events.max_clock_skew_seconds
    suppression = SuppressionCache(serving.suppression_list, settings.api.key_refresh_seconds)
    collector = Collector(
        settings.collector,
        events,
        max_clock_skew_seconds=skew,
        suppression=suppression,
        on_identify=lambda messages: record_segment_consents(serving, messages),
    )
    webhook = ZendeskWebhook(
        settings.sources.zendesk, events, max_clock_skew_seconds=skew, suppression=suppression
    )
    audit = ReadAudit(serving, settings.api.audit_buffer_size, settings.api.audit_flush_seconds)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        serving.migrate()
        # The networked store's reads run on the threadpool (SQLite's on the event loop).
        to_thread.current_default_thread_limiter().total_tokens = settings.api.store_threads
        serving.concurrent_reads(settings.api.store_threads)
        serving.cache_profiles(settings.api.profile_cache_size)
        try:
            if collector.enabled or settings.sources.zendesk.webhook_secret is not None:
                events.open()
            audit.start()
            async with access.running(), _counting_cache(settings, serving):
                yield
        finally:
            await to_thread.run_sync(audit.stop)  # the reads still buffered are written
            events.close()
            if owned:
                serving.dispose()

    app = FastAPI(title="c360 Profile API", version=__version__, lifespan=lifespan)
    errors.install(app)
    auth.install(app, access)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.api.cors_origins),
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type"],
        expose_headers=["Retry-After", "Content-Location", "X-C360-Left-Out", "X-Request-ID"],
        max_age=600,
    )
    app.add_middleware(RequestIdMiddleware)  # its id in every log line of the request
    if settings.api.metrics:
        app.add_middleware(metrics.MetricsMiddleware)  # outermost: it times everything
        app.add_route("/metrics", metrics.metrics_endpoint, include_in_schema=False)
    # The website's lookups first: FastAPI tries the routes in order.
    region = settings.identity.default_phone_region
    app.include_router(profiles_router(serving, region, audit, settings.api.profile_reads))
    app.include_router(timeline_router(serving, settings.timeline, audit))
    app.include_router(search_router(serving, region))
    app.include_router(segments_router(serving))
    app.include_router(erasure_router(settings, serving, events, suppression))
    app.include_router(health_router(serving, settings.api))
    app.include_router(collector_router(collector))
    app.include_router(zendesk_router(webhook))
    app.include_router(privacy_router(serving, settings.sources.mailchimp, skew))
    return app


def _counting_cache(settings: Settings, serving: ServingStore) -> AbstractAsyncContextManager[None]:
    """The profile cache's hits and misses counted for ``/metrics``, when it is served."""
    if settings.api.metrics:
        return metrics.counting(serving.profile_cache)
    return nullcontext()


def app_from_configuration() -> FastAPI:
    """The app of a ``c360 serve --workers N`` process: the configuration as ``c360`` resolves
    it from the file (``$C360_CONFIG``, ``./c360.toml``) and ``C360_*`` variables."""
    from c360 import logformat
    from c360.config import load_config

    settings = load_config().settings
    logformat.configure(settings.logging.format, settings.logging.level)  # a fresh process
    return serving_process_app(create_app(settings))


def serving_process_app(app: FastAPI) -> FastAPI:
    """``app`` as the one app of a server process: everything alive now (modules, the app, its
    schemas) lives as long as the process, so it is frozen out of the garbage collector's
    sight — its full passes then stay short and do not show in the latency of the request
    that happens to trigger one."""
    gc.collect()
    gc.freeze()
    return app
