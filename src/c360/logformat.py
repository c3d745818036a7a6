"""How c360's processes write their logs: readable text by default, JSON lines by configuration.

One event per line on stderr, with the ``component`` (the logger's name), the level, the
message and what the line is about, from context variables the code sets around its work:
``request_id`` (the API: from a sane ``X-Request-ID`` header, else made up, and echoed in the
answer), ``batch_date`` (the daily batch), ``consumer_group`` (a stream worker). Messages are
masked by :func:`c360.masking.install_log_masking` before they get here; c360 writes no person's
identifiers into log lines (the API keeps no access log: its paths carry them).

``logging.format = "json"`` (``C360_LOGGING_FORMAT=json``) suits a log shipper; ``text`` suits
a terminal. This module is a bottom layer: it imports only :mod:`c360.masking`.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import orjson

from c360.masking import install_log_masking

CONTEXT_FIELDS = ("request_id", "batch_date", "consumer_group")
_context: dict[str, contextvars.ContextVar[str | None]] = {
    name: contextvars.ContextVar(f"c360_{name}", default=None) for name in CONTEXT_FIELDS
}
_HANDLER_NAME = "c360"


@contextmanager
def log_context(**values: str) -> Iterator[None]:
    """Within the ``with``, every log line carries these fields (names of CONTEXT_FIELDS)."""
    tokens = [(_context[name], _context[name].set(value)) for name, value in values.items()]
    try:
        yield
    finally:
        for variable, token in reversed(tokens):
            variable.reset(token)


def set_context(name: str, value: str | None) -> contextvars.Token[str | None]:
    """Set one field for the current context (an ASGI request), to be reset with its token."""
    return _context[name].set(value)


def reset_context(name: str, token: contextvars.Token[str | None]) -> None:
    _context[name].reset(token)


def _fields() -> dict[str, str]:
    return {name: value for name, var in _context.items() if (value := var.get()) is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO), level, component, message, the context, and the
    exception's text when one was logged."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "component": record.name,
            "message": record.getMessage(),
            **_fields(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        return orjson.dumps(line).decode()


class TextFormatter(logging.Formatter):
    """``time level component [context] message``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(context)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields()
        record.context = (
            " [" + " ".join(f"{k}={v}" for k, v in fields.items()) + "]" if fields else ""
        )
        return super().format(record)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a line is written (a test runner swaps it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, _: IO[str]) -> None:
        pass


def configure(
    log_format: str = "text", level: str = "WARNING", stream: IO[str] | None = None
) -> None:
    """c360's handler on the root logger (replacing an earlier one of ours; others stay), with
    secrets masked in every record; ``stream`` defaults to the process's stderr."""
    install_log_masking()
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream) if stream is not None else _Stderr()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root.addHandler(handler)
    logging.getLogger("c360").setLevel(level.upper())
    if root.level == logging.WARNING or root.level == logging.NOTSET:
        root.setLevel(logging.WARNING)  # libraries stay quiet unless they warn
