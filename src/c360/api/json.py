"""JSON responses written by orjson (dates, datetimes, decimals included), for every route.

FastAPI's own ``ORJSONResponse`` is deprecated; this is the same few lines. Datetimes go out
as ISO 8601; naive ones (the serving store's UTC) without an offset, as the store holds them.
"""

from __future__ import annotations

import decimal
from typing import Any

import orjson
from starlette.responses import JSONResponse

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(content: Any) -> bytes:
    return orjson.dumps(content, default=_default, option=_OPTIONS)


class JSON(JSONResponse):
    """``application/json`` rendered by orjson."""

    def render(self, content: Any) -> bytes:
        return dumps(content)
