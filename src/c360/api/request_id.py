"""A request id for every API request: taken from a sane ``X-Request-ID`` header (a proxy's or
the client's), else made up; echoed in the answer's ``X-Request-ID`` and carried by every log
line written while the request is served (:mod:`c360.logformat`)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from c360 import logformat

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
                   Awaitable[None]]  # fmt: skip

HEADER = b"x-request-id"
_SANE = re.compile(rb"[A-Za-z0-9._\-]{1,64}")


def request_id(scope: Scope) -> str:
    """The client's id when it is short and plain (never echo arbitrary bytes), else a new one."""
    for name, value in scope.get("headers", ()):
        if name == HEADER and _SANE.fullmatch(value):
            return str(value.decode("ascii"))
    return uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (HEADER, rid.encode())]
            await send(message)

        token = logformat.set_context("request_id", rid)
        try:
            await self.app(scope, receive, sending)
        finally:
            logformat.reset_context("request_id", token)
