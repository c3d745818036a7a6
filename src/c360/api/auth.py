"""API keys on the Profile API: ``requires(scope)``, the key cache, rate limits, OpenAPI.

**For route authors**: a route (or a whole router) that returns personal data declares the
scope it needs, and that is all::

    from c360.api.auth import requires

    router = APIRouter(tags=["search"], dependencies=[requires("profiles:search")])

The request must then carry ``Authorization: Bearer <key>`` (a key from ``c360 keys create``)
whose scopes include the one named (``admin`` implies every scope). The answers: no key → 401
``unauthorized`` with ``WWW-Authenticate: Bearer``; an unknown, malformed or revoked key → 401
(``Bearer error="invalid_token"``); a key without the scope → 403 ``forbidden``
(``Bearer error="insufficient_scope"``); a key over its rate limit → 429 ``rate_limited`` with
``Retry-After`` (whole seconds). The OpenAPI document declares the bearer scheme (``ApiKey``);
each protected operation lists its scope in its security requirement and in its description,
and documents 401/403/429 (added by :func:`document`, so no route can forget them).

**Cheap on the hot path** (the Profile API answers every page view): the check runs on the event
loop (an ``async`` dependency: no thread hop), and nothing in it touches the store:

- *keys* are cached in each process (:class:`KeyCache`): every key, revoked ones included, read
  at startup and again every ``api.key_refresh_seconds`` (default 5) by a background task. A
  **revoked key stops working within that time** (plus one read of the key table) in every
  process; a new key works at once: a key id the cache does not know makes it re-read the table,
  at most every ``MISS_RELOAD_SECONDS`` per process whatever the traffic (misses arriving
  meanwhile wait for that one read), so a flood of made-up keys costs the store two reads a
  second. If the store cannot be read, the cache keeps the keys it has (and logs why);
- a request checks the key's SHA-256 in constant time (:mod:`c360.access.keys`), then its scope,
  then takes a token from the key's bucket (:mod:`c360.access.ratelimit`); a request with two
  ``requires`` (router and route) takes one token.

**Several server processes** (``c360 serve --workers N``): each has its own cache and its own
buckets, so a key may make up to N times its rate per second in all; set the limit per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, cast

import fastapi.routing
from fastapi import Depends, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.dependencies.models import Dependant

from c360.access.keys import ADMIN, SCOPES, ApiKey, parse
from c360.access.ratelimit import RateLimiter, retry_after
from c360.api import metrics
from c360.api.errors import ApiError, ErrorBody, responses
from c360.config import ApiSettings
from c360.errors import C360Error, raised_at
from c360.stores import ServingStore

logger = logging.getLogger(__name__)

SCHEME_NAME = "ApiKey"
MISS_RELOAD_SECONDS = 0.5
STORE_RETRY_AFTER_SECONDS = 5
# The request's ASGI scope holds the key it was authenticated with under this name (a dict
# lookup: request.state's attribute access raises and catches an AttributeError when unset).
_SCOPE_KEY = "c360.api_key"

# The OpenAPI security scheme of every protected operation (see :func:`document`).
SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "c360_<key_id>_<secret>",
    "description": "An API key made with `c360 keys create --scope S`, sent as "
    "`Authorization: Bearer <key>`. Scopes: "
    + "; ".join(f"`{scope}`: {what}" for scope, what in SCOPES.items())
    + ".",
}


class KeyCache:
    """Every API key of the store, in memory; see the module docstring for when it re-reads.

    ``get`` is a dict lookup. ``find`` (async, on the event loop) re-reads the table on a miss;
    the table is read on the threadpool, and the new map replaces the old in one assignment.
    """

    def __init__(
        self,
        store: ServingStore,
        refresh_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        on_load: Callable[[list[ApiKey]], None] | None = None,
    ) -> None:
        self._store = store
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._on_load = on_load
        self._keys: dict[str, ApiKey] = {}
        self._queued: asyncio.Future[None] | None = None  # a miss re-read not started yet
        self._last_miss_read = -MISS_RELOAD_SECONDS
        self.loaded_at: float | None = None  # when the installed read started
        self._lock = threading.Lock()

    def get(self, key_id: str) -> ApiKey | None:
        return self._keys.get(key_id)

    def load(self) -> None:
        """Read every key now (blocking; raises the store's errors). Of two reads that overlap
        (the periodic one and a miss's), the one that started last is kept."""
        started = self._clock()
        keys = self._store.api_keys()
        with self._lock:
            if self.loaded_at is not None and started < self.loaded_at:
                return  # a read that started later has already been installed
            self._keys = {key.key_id: key for key in keys}
            self.loaded_at = started
        if self._on_load is not None:
            self._on_load(keys)

    async def find(self, key_id: str) -> ApiKey | None:
        """The key, re-reading the table once if it is not cached (a key made since)."""
        key = self._keys.get(key_id)
        if key is not None:
            return key
        if self._queued is None:
            self._queued = asyncio.ensure_future(self._miss_read())
            self._queued.add_done_callback(_retrieve)
        await asyncio.shield(self._queued)
        return self._keys.get(key_id)

    async def _miss_read(self) -> None:
        wait = self._last_miss_read + MISS_RELOAD_SECONDS - self._clock()
        if wait > 0:
            await asyncio.sleep(wait)
        self._queued = None  # misses from now on need a read that starts after them
        self._last_miss_read = self._clock()
        await run_in_threadpool(self.load)

    async def refresh_forever(self) -> None:
        """Re-read every ``refresh_seconds`` until cancelled; a failed read keeps the keys."""
        while True:
            await asyncio.sleep(self._refresh_seconds)
            try:
                await run_in_threadpool(self.load)
            except C360Error as exc:
                logger.warning("API keys not refreshed, keeping the cached ones: %s", exc)
            except Exception as exc:  # unclassified: its message is not logged
                logger.error(
                    "API keys not refreshed (%s raised at %s), keeping the cached ones",
                    type(exc).__name__,
                    raised_at(exc),
                )


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a miss read's error as seen even when every waiter has gone (no asyncio warning)."""
    if not future.cancelled():
        future.exception()


class Access:
    """The keys and rate limits of one app (one server process)."""

    def __init__(
        self,
        settings: ApiSettings,
        store: ServingStore,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limiter = RateLimiter(settings.rate_limit_per_s)
        self.keys = KeyCache(
            store,
            settings.key_refresh_seconds,
            clock,
            on_load=lambda keys: self.limiter.keep_only(k.key_id for k in keys if k.active),
        )
        self._clock = clock

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Read the keys, then keep them fresh until the block exits (the app's lifespan)."""
        self.keys.load()
        task = asyncio.create_task(self.keys.refresh_forever(), name="c360-api-keys")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def authenticate(self, token: str | None) -> ApiKey:
        """The active key a bearer token belongs to, else a 401 :class:`ApiError`."""
        if not token:
            raise ApiError(
                401,
                "unauthorized",
                "an API key is required: send Authorization: Bearer <key> "
                "(keys are made with c360 keys create)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        parsed = parse(token)
        key = None
        if parsed is not None:
            key_id, secret = parsed
            try:
                key = self.keys.get(key_id) or await self.keys.find(key_id)
            except C360Error as exc:
                logger.warning("an API key could not be looked up: %s", exc)
                raise ApiError(
                    503,
                    "unavailable",
                    "the serving store cannot answer now; retry later",
                    headers={"Retry-After": str(STORE_RETRY_AFTER_SECONDS)},
                ) from None
            if key is not None and not key.verifies(secret):
                key = None
        if key is None:
            raise _invalid("unknown API key")
        if not key.active:
            raise _invalid("this API key was revoked")
        return key

    def authorize(self, key: ApiKey, scopes: list[str]) -> None:
        """A 403 :class:`ApiError` unless ``key`` grants every scope in ``scopes``."""
        missing = [scope for scope in scopes if not key.allows(scope)]
        if missing:
            raise ApiError(
                403,
                "forbidden",
                f"this API key lacks the scope {missing[0]} (or {ADMIN})",
                headers={
                    "WWW-Authenticate": f'Bearer error="insufficient_scope", '
                    f'scope="{" ".join(missing)}"'
                },
            )

    def throttle(self, key: ApiKey) -> None:
        """Take a token from the key's bucket, else a 429 :class:`ApiError` with Retry-After."""
        wait = self.limiter.take(key, self._clock())
        if wait > 0:
            metrics.RATE_LIMITED.inc()
            seconds = retry_after(wait)
            rate = self.limiter.rate_of(key)
            raise ApiError(
                429,
                "rate_limited",
                f"this API key is limited to {rate:g} requests per second; retry after {seconds} s",
                headers={"Retry-After": str(seconds)},
            )


def _invalid(message: str) -> ApiError:
    return ApiError(
        401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
    )


def install(app: FastAPI, access: Access) -> None:
    """Give ``app``'s routes their access control and the OpenAPI document its security."""
    app.state.access = access
    document(app)


def _bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (the scheme in any case)."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


@functools.cache
def _guard(scope: str) -> Callable[[Request], Awaitable[None]]:
    """The dependency behind ``requires(scope)`` (401, 403, 429 as the module docstring says).

    A plain function of the request: FastAPI's security classes (``HTTPBearer``,
    ``SecurityScopes``) cost a hundred microseconds a request in dependency solving, more than
    a profile read's queries; :func:`document` declares the scheme in OpenAPI instead.
    """

    async def guard(request: Request) -> None:
        access: Access | None = getattr(request.app.state, "access", None)
        if access is None:
            raise RuntimeError("the app has no access control: build it with create_app")
        key: ApiKey | None = request.scope.get(_SCOPE_KEY)
        if key is None:  # the first requires() of this request: authenticate, count it once
            key = await access.authenticate(_bearer_token(request))
            access.authorize(key, [scope])
            access.throttle(key)
            request.scope[_SCOPE_KEY] = key
            if request.scope.get("query_string"):
                _refuse_unknown_parameters(request)
        else:
            access.authorize(key, [scope])

    guard.c360_scope = scope  # type: ignore[attr-defined]  # read by document()
    return guard


class GuardedRoute(fastapi.routing.APIRoute):
    """A route whose endpoint reads the request itself (``async def f(request)``) and whose only
    dependencies are :func:`requires` guards: each request awaits the guards, then the
    endpoint — FastAPI's dependency solving (tens of microseconds a request, more than the
    guards themselves) is skipped. The route is documented as any other (its dependant is
    built as usual). Any other shape of route falls back to FastAPI's handler, so a router can
    take this class for all its routes: ``APIRouter(route_class=GuardedRoute, …)``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        guards = _guards_only(self._effective_dependant())
        if guards is None:
            return super().get_route_handler()
        endpoint = self.endpoint

        async def handler(request: Request) -> Response:
            for guard in guards:
                await guard(request)
            response: Response = await endpoint(request)
            return response

        return handler

    def _effective_dependant(self) -> Dependant:
        """The dependant FastAPI would solve: an included router's context may extend it."""
        context_var = getattr(fastapi.routing, "_effective_route_context_var", None)
        context = context_var.get() if context_var is not None else None
        if context is not None and getattr(context, "original_route", None) is self:
            return cast(Dependant, context.dependant)
        return self.dependant


def _guards_only(dependant: Dependant) -> list[Callable[[Request], Awaitable[None]]] | None:
    """The guards of a route that takes nothing but the request and :func:`requires` guards,
    in order; None for any other route."""
    if not inspect.iscoroutinefunction(dependant.call) or _takes_more_than_request(dependant):
        return None
    guards = []
    for dependency in dependant.dependencies:
        guard = dependency.call
        if guard is None or getattr(guard, "c360_scope", None) is None or dependency.dependencies:
            return None
        guards.append(cast(Callable[[Request], Awaitable[None]], guard))
    return guards


def _takes_more_than_request(dependant: Dependant) -> bool:
    params = (
        dependant.path_params,
        dependant.query_params,
        dependant.header_params,
        dependant.cookie_params,
        dependant.body_params,
    )
    return any(params) or dependant.request_param_name is None


_DECLARED: dict[int, frozenset[str]] = {}  # id(route) -> its declared query parameters


def _declared(route: Any) -> frozenset[str]:
    names = {p.alias for p in route.dependant.query_params}
    extra = (getattr(route, "openapi_extra", None) or {}).get("parameters", [])
    names |= {p["name"] for p in extra if p.get("in") == "query"}
    return frozenset(names)


def _refuse_unknown_parameters(request: Request) -> None:
    """A 422 for a query parameter the route does not declare (a typo such as ``feilds=``
    would otherwise be ignored silently)."""
    route = request.scope.get("route")
    if route is None or getattr(route, "dependant", None) is None:
        return
    declared = _DECLARED.get(id(route))
    if declared is None:
        declared = _DECLARED[id(route)] = _declared(route)
    if not declared.issuperset(request.query_params):  # the name is not echoed: it may be data
        takes = ", ".join(sorted(declared)) or "none"
        raise ApiError(
            422, "invalid_request", f"an unknown query parameter; this route takes: {takes}"
        )


def request_key(request: Request) -> ApiKey:
    """The key a request was authenticated with (by a ``requires`` of its route)."""
    key: ApiKey | None = request.scope.get(_SCOPE_KEY)
    if key is None:
        raise RuntimeError("the route has no requires(scope): no key was checked")
    return key


def requires(scope: str) -> Any:
    """A dependency demanding an API key with ``scope`` (``admin`` implies every scope): put it
    in a route's or a router's ``dependencies=[...]``; see the module docstring."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; accepted: {', '.join(SCOPES)}")
    return Depends(_guard(scope))


def _routes(app: FastAPI) -> list[Any]:
    """Every route of ``app`` with its path, methods and dependencies as served (FastAPI 0.16x
    keeps included routers nested and flattens them with ``iter_route_contexts``)."""
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    return list(flatten(app.routes)) if flatten is not None else list(app.routes)


def _scopes(dependant: Dependant) -> set[str]:
    """The scopes the ``requires`` in a route's dependency tree demand."""
    found = {getattr(dependant.call, "c360_scope", None)} - {None}
    for dependency in dependant.dependencies:
        found |= _scopes(dependency)
    return {scope for scope in found if isinstance(scope, str)}


def document(app: FastAPI) -> None:
    """Complete the OpenAPI document: every operation with an ``ApiKey`` security requirement
    documents 401, 403 and 429 (the error body) and names its scopes in its description."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {})
        models = components.setdefault("schemas", {})
        body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in {**body.pop("$defs", {}), "ErrorBody": body}.items():
            models.setdefault(name, definition)
        components.setdefault("securitySchemes", {})[SCHEME_NAME] = SECURITY_SCHEME
        for route in _routes(app):
            dependant = getattr(route, "dependant", None)
            if dependant is None or not (scopes := _scopes(dependant)):
                continue
            operations = schema.get("paths", {}).get(route.path_format or "", {})
            for method in route.methods or ():
                operation = operations.get(method.lower())
                if operation is not None:
                    operation["security"] = [{SCHEME_NAME: sorted(scopes)}]
                    _document_operation(operation)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document_operation(operation: dict[str, Any]) -> None:
    requirements = [r for r in operation.get("security", []) if SCHEME_NAME in r]
    if not requirements:
        return
    scopes = sorted({scope for requirement in requirements for scope in requirement[SCHEME_NAME]})
    answers = operation.setdefault("responses", {})
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for status, spec in responses(401, 403, 429).items():
        answers.setdefault(str(status), {"description": spec["description"], "content": content})
    needed = " and ".join(f"`{scope}`" for scope in scopes)
    note = f"Needs an API key with the scope {needed} (or `{ADMIN}`)."
    operation["description"] = (
        f"{operation['description']}\n\n{note}" if operation.get("description") else note
    )
