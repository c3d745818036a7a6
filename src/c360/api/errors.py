"""Error answers of the Profile API: one shape, a machine-readable code, documented per route.

Every error the API answers (outside the Segment-compatible collector, which keeps Segment's own
shape) is ``{"error": {"code": "...", "message": "..."}}``: ``code`` is stable and meant for
programs (``not_found``, ``unauthorized``, ``invalid_request``, …), ``message`` is for people and
never carries a secret or personal data beyond what the caller sent. Routes list the statuses
they can answer with :func:`responses`, so the OpenAPI document tells every one of them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from c360.api.json import JSON
from c360.errors import TerminalError, TransientError

logger = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable: what went wrong.")
    message: str = Field(description="For people: what went wrong and what to do.")
    position: int | None = Field(
        None,
        description="`invalid_definition` only: the 0-based character position of the "
        "offending token in the segment definition.",
    )


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    """An answer other than 2xx: the HTTP status, a code, a message, and headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
        position: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.position = position

    def response(self) -> JSON:
        body = error_body(self.code, self.message)
        if self.position is not None:
            body["error"]["position"] = self.position
        return JSON(body, status_code=self.status, headers=self.headers)


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


# What each status means when a route documents it.
_DESCRIPTIONS = {
    400: "The request is malformed.",
    401: "No API key, or an unknown or revoked one (`Authorization: Bearer <key>`).",
    403: "The API key lacks the scope this route needs.",
    404: "Nothing matches.",
    409: "Something of that name exists already.",
    422: "A parameter is not valid.",
    429: "Too many requests for this API key; retry after `Retry-After` seconds.",
    500: "The server failed (the serving store refused the read: its log says why).",
    503: "The serving store cannot answer now; retry after `Retry-After` seconds.",
}
RETRY_AFTER_SECONDS = 5

_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "invalid_request",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a route's error statuses, all in the :class:`ErrorBody`
    shape."""
    return {s: {"model": ErrorBody, "description": _DESCRIPTIONS[s]} for s in statuses}


def install(app: FastAPI) -> None:
    """Answer every error in the one shape, and say so in the OpenAPI document."""
    _document_validation_errors(app)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSON:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSON:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        message = f"{where}: {first.get('msg', 'invalid')}" if where else "invalid request"
        return JSON(error_body("invalid_request", message), status_code=422)

    @app.exception_handler(TransientError)
    async def unavailable(_: Request, exc: TransientError) -> JSON:
        return JSON(
            error_body("unavailable", "the serving store cannot answer now; retry later"),
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    @app.exception_handler(TerminalError)
    async def failed(_: Request, exc: TerminalError) -> JSON:
        logger.error("request failed: %s", exc)  # the log masks secrets; the body says nothing
        return JSON(
            error_body("internal_error", "the server failed; its log says why"), status_code=500
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSON:
        code = _CODES.get(exc.status_code, f"http_{exc.status_code}")
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed(request))
        return JSON(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers)


def _allowed(request: Request) -> list[str]:
    """Every method some route serves at the request's path: Starlette's 405 names only those
    of the first route of the path, and a path may have several (GET and POST /v1/segments)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def _document_validation_errors(app: FastAPI) -> None:
    """FastAPI documents its 422 as ``HTTPValidationError`` (``{"detail": [...]}``); the handler
    above answers :class:`ErrorBody`. Rewrite the document so it tells what is answered."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        components = document.setdefault("components", {}).setdefault("schemas", {})
        body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(body.pop("$defs", {}))
        components.setdefault("ErrorBody", body)
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                invalid = operation.get("responses", {}).get("422")
                if invalid is not None:
                    invalid["description"] = _DESCRIPTIONS[422]
                    invalid["content"] = {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
                    }
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        return document

    app.openapi = openapi  # type: ignore[method-assign]
