"""Opaque pagination cursors: a route's position, as a URL-safe token the client hands back.

A cursor is base64url (unpadded) of a small JSON list whose first element names the route that
gave it, so a cursor of one route (or of another query) is refused with a clear message
rather than silently read as something else. The content is not secret — it holds the last
row's sort key — only opaque: clients must not build or edit cursors.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from c360.api.errors import ApiError


def encode(kind: str, *values: Any) -> str:
    """The cursor of a position of route ``kind``."""
    raw = orjson.dumps([kind, *values])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode(parameter: str, kind: str, token: str, types: tuple[type, ...]) -> list[Any]:
    """The values of a cursor of route ``kind`` (one of each of ``types``); a 422 naming
    ``parameter`` when ``token`` is not such a cursor."""
    try:
        padded = token + "=" * (-len(token) % 4)
        values = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeEncodeError, orjson.JSONDecodeError):
        values = None
    if not (
        isinstance(values, list)
        and len(values) == len(types) + 1
        and values[0] == kind
        and all(
            isinstance(value, type_) and not isinstance(value, bool)
            for value, type_ in zip(values[1:], types, strict=True)
        )
    ):
        raise ApiError(
            422,
            "invalid_request",
            f"{parameter}: not a cursor of this route; pass the value a previous page returned",
        )
    return values[1:]
