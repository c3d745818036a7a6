"""Secrets out of everything people read: the one helper that masks passwords in URLs.

Settings hold URLs with credentials in them — ``serving.url`` (``postgresql://user:pw@host/db``),
``sources.mysql.url``, an fsspec ``lake.url`` (``s3://KEY:SECRET@bucket``), a ``kafka://`` or
``http://`` URL — and such a URL ends up in ``c360 config show``, in error messages and in log
lines. :func:`mask_secrets` masks, in any text, the password of every ``scheme://user:password@``
and the value of query parameters that carry a secret (``?password=``, ``&token=``, …), whatever
the scheme: SQLAlchemy's ``render_as_string(hide_password=True)`` only knows its own URLs.

Where it is applied: the config's display (``ResolvedConfig.items``) and its validation
messages, every adapter's error message that quotes a URL (stores, lake, logs, sources), the
CLI's one-line errors, and — as a backstop for what a message may still quote — every log
record, through :func:`install_log_masking` (a log-record factory, so it covers every handler,
uvicorn's included, and the text of logged tracebacks).

This module is the bottom layer: it imports nothing from c360.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from typing import Any

MASK = "***"

# scheme://[user]:PASSWORD@ — the password may hold '@' (unencoded); it ends at the last '@'
# before the path, the query, the fragment or a blank.
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#@:]*:)[^\s/?#]*@")
# query (or key=value list) parameters that hold a secret
_PARAMETER = re.compile(
    r"(?P<head>[?&;](?:password|passwd|pwd|secret|token|access_token|api_key|apikey"
    r"|sasl\.password|secret_key|aws_secret_access_key)=)[^&;\s'\"#]*",
    re.IGNORECASE,
)


def mask_secrets(text: str) -> str:
    """``text`` with the password of every URL in it, and every secret query parameter,
    replaced by ``***``; anything else unchanged (so a URL without credentials stays as is)."""
    if "://" not in text and "=" not in text:
        return text  # the common case, without running the expressions
    text = _USERINFO.sub(rf"\g<head>{MASK}@", text)
    return _PARAMETER.sub(rf"\g<head>{MASK}", text)


_installed = threading.Lock()
_factory_installed = False


def install_log_masking() -> None:
    """Mask secrets in every log record created from now on, in this process (idempotent).

    A record factory, not a handler filter: handlers a library configures itself (uvicorn's)
    get masked records too. The message is rendered (``msg % args``) once, here, and a logged
    exception's traceback text is rendered and masked here as well (logging's formatters use a
    record's ``exc_text`` when it is set); when that text held a secret, the exception object
    itself is dropped from the record, so that a formatter reading it (a JSON formatter, such
    as PySpark's) cannot show it. Records are only created for enabled levels, so the cost is
    paid by lines that are written.
    """
    global _factory_installed
    with _installed:
        if _factory_installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _mask_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _factory_installed = True


_FORMATTER = logging.Formatter()


def _mask_record(record: logging.LogRecord) -> None:
    """Mask the arguments in place, keeping their shape (formatters such as uvicorn's unpack
    them); if the rendered message still shows a secret (in the format string, or spanning
    both), it replaces the format string and the arguments. The format string alone is never
    masked: that could eat a ``%s``."""
    if not record.args:
        if isinstance(record.msg, str):
            record.msg = mask_secrets(record.msg)
    elif isinstance(record.args, tuple):
        record.args = tuple(_masked(arg) for arg in record.args)
    elif isinstance(record.args, Mapping):
        record.args = {key: _masked(value) for key, value in record.args.items()}
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: leave it to logging's own error report
        return
    masked = mask_secrets(message)
    if masked != message:
        record.msg, record.args = masked, ()
    if record.exc_info and not record.exc_text:
        shown = _FORMATTER.formatException(record.exc_info)
        record.exc_text = mask_secrets(shown)
        if record.exc_text != shown:  # formatters that read the exception itself (JSON ones)
            record.exc_info = None  # would show the secret: they get the masked text only


def _masked(value: object) -> object:
    return mask_secrets(value) if isinstance(value, str) else value
