"""The API process's Prometheus metrics (``prometheus-client``), served as text at ``/metrics``.

- ``c360_http_requests_total{route, method, status}`` and
  ``c360_http_request_duration_seconds{route, method}``: every answer, by the *route template*
  (``/v1/profiles/{person_id}``, never the path: paths carry person ids and emails; a path no
  route matches is ``unmatched``), so the labels stay few and free of personal data;
- ``c360_rate_limited_requests_total``: requests a key's rate limit refused (429);
- ``c360_audit_dropped_total``: profile reads the read audit could not record (its buffer was
  full: :mod:`c360.api.audit`);
- ``c360_collector_events_total{outcome, code, reason}``: Segment messages the collector took
  (``accepted``) or refused (``rejected``, with the error code of its answer and, for an
  invalid message, its reason code: :data:`c360.contracts.reasons.CODES`; code ``suppressed``:
  an erased person's, dropped);
- ``c360_webhook_events_total{webhook, outcome, code, reason}``: the Zendesk webhook's events,
  ``accepted``, ``suppressed`` (a replay of one already accepted: acknowledged, not stored) or
  ``rejected`` (by error code and, for an invalid event, reason code); an erased person's
  events count as ``suppressed`` with code ``suppressed``;
- ``c360_profile_cache_lookups_total{result}``: the profile reads' lookups in the process's
  cache of the batch's parts (:class:`c360.stores.profiles.BatchCache`): ``hit`` (only the
  real-time part was read) or ``miss`` (the whole profile was; every lookup, with
  ``api.profile_cache_size = 0``). The store counts them in plain integers, on the hot path;
  they are added to the counter when ``/metrics`` is scraped (:class:`CacheLookups`), so a read
  pays nothing more for the metric.

With ``c360 serve --workers N`` each process counts its own requests; ``serve`` then points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder and ``/metrics`` sums every worker's files
(the library's multiprocess mode), whichever worker answers the scrape; the cache's counts
are then also added every :data:`CACHE_SYNC_SECONDS` by each worker (a scrape reaches one
worker, and Prometheus keeps its connection: the others would never be asked), so a scrape is
at most that far behind the other workers' lookups. ``/metrics`` needs no
key (it holds no personal data) and is left out of the OpenAPI document.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.requests import Request
from starlette.responses import Response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# From a website lookup (~1 ms) to a request stuck behind a slow store.
_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"

HTTP_REQUESTS = Counter(
    "c360_http_requests", "Requests answered, by route template, method and status",
    ["route", "method", "status"],
)  # fmt: skip
HTTP_LATENCY = Histogram(
    "c360_http_request_duration_seconds", "Time to answer a request, by route template and method",
    ["route", "method"], buckets=_BUCKETS,
)  # fmt: skip
RATE_LIMITED = Counter("c360_rate_limited_requests", "Requests refused by a key's rate limit")
AUDIT_DROPPED = Counter(
    "c360_audit_dropped", "Profile reads not audited: the audit buffer was full"
)
COLLECTED = Counter(
    "c360_collector_events",
    "Segment messages the collector accepted or rejected, by error code and reason code",
    ["outcome", "code", "reason"],
)


PROFILE_CACHE = Counter(
    "c360_profile_cache_lookups",
    "Profile reads' lookups in the process's cache of batch parts: hit (only the real-time "
    "part read) or miss (the whole profile read)",
    ["result"],
)
_CACHE_HIT, _CACHE_MISS = PROFILE_CACHE.labels("hit"), PROFILE_CACHE.labels("miss")
CACHE_SYNC_SECONDS = 1.0  # with several workers: how far behind a scrape may be


WEBHOOK_EVENTS = Counter(
    "c360_webhook_events",
    "Webhook events accepted, suppressed (a replay) or rejected, by error code and reason code",
    ["webhook", "outcome", "code", "reason"],
)


def webhook_event(webhook: str, outcome: str, code: str = "", reason: str = "") -> None:
    WEBHOOK_EVENTS.labels(webhook, outcome, code, reason).inc()


def collected(accepted: int = 0, refused: Mapping[str, int] | None = None, code: str = "") -> None:
    """Count messages the collector took and refused (``code``: the refusal's error code;
    ``refused``: how many by reason code, "" when the whole request was refused)."""
    if accepted:
        COLLECTED.labels("accepted", "", "").inc(accepted)
    for reason, count in (refused or {}).items():
        if count:
            COLLECTED.labels("rejected", code, reason).inc(count)


class MetricsMiddleware:
    """Counts and times every HTTP answer by route template (a plain ASGI middleware: 3-4 µs a
    request on the benchmark machine, docs/benchmarks.md)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app fails before answering

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope["method"] if scope["method"] in _METHODS else "other"
            requests, latency = _series(route, method, status)
            requests.inc()
            latency.observe(time.perf_counter() - started)


# Each (route, method, status)'s series, found once: the library's labels() lookup cost 4 of
# the middleware's 10 µs a request. Bounded like the labels: route templates, not paths.
_SERIES: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def _series(route: str, method: str, status: int) -> tuple[Counter, Histogram]:
    key = (route, method, status)
    found = _SERIES.get(key)
    if found is None:  # two threads may both look it up: labels() gives both the same series
        found = HTTP_REQUESTS.labels(route, method, str(status)), HTTP_LATENCY.labels(route, method)
        _SERIES[key] = found
    return found


class CacheCounts(Protocol):
    """What :class:`CacheLookups` reads: a profile cache's running counts."""

    hits: int
    misses: int


class CacheLookups:
    """Adds what a profile cache counted since the last time to :data:`PROFILE_CACHE`, when
    ``/metrics`` is scraped (and, with several workers, every :data:`CACHE_SYNC_SECONDS`): the
    store counts on its hot path in plain integers, never through the metrics library."""

    def __init__(self, cache: CacheCounts) -> None:
        self._cache = cache
        self._hits, self._misses = cache.hits, cache.misses  # counted before: not the API's
        self._lock = threading.Lock()  # apps of one process (tests) scrape each other's

    def add(self) -> None:
        with self._lock:
            hits, misses = self._cache.hits, self._cache.misses
            if hits > self._hits:
                _CACHE_HIT.inc(hits - self._hits)
            if misses > self._misses:
                _CACHE_MISS.inc(misses - self._misses)
            self._hits, self._misses = hits, misses

    async def add_forever(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            self.add()


_COUNTED: set[CacheLookups] = set()  # added to the counter before each scrape


@contextlib.asynccontextmanager
async def counting(cache: CacheCounts) -> AsyncIterator[None]:
    """Count ``cache``'s lookups in :data:`PROFILE_CACHE` until the block exits (the app's
    lifespan), then add what is left."""
    lookups = CacheLookups(cache)
    _COUNTED.add(lookups)
    task = None
    if _multiprocess():
        task = asyncio.create_task(lookups.add_forever(CACHE_SYNC_SECONDS), name="c360-cache")
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        lookups.add()
        _COUNTED.discard(lookups)


def _multiprocess() -> bool:
    return "PROMETHEUS_MULTIPROC_DIR" in os.environ


def exposition() -> bytes:
    """The metrics in Prometheus's text format: this process's, or every worker's."""
    for lookups in list(_COUNTED):
        lookups.add()
    if _multiprocess():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


async def metrics_endpoint(_: Request) -> Response:
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)
