"""Reading source files that may or may not be gzip-compressed (told by content, not name)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import BinaryIO, cast

from c360.errors import DataError, classify_os_error

GZIP_MAGIC = b"\x1f\x8b"


def open_bytes(path: Path, key: str | None = None) -> BinaryIO:
    """``path`` opened for binary reading, decompressed when it is gzip.

    With ``key`` (the setting that names the file, e.g. ``sources.zendesk.path``) a file that
    cannot be opened is classified here: missing, a :class:`~c360.errors.DataError` naming the
    setting; otherwise as :func:`~c360.errors.classify_os_error` says.
    """
    try:
        with path.open("rb") as probe:
            magic = probe.read(2)
    except FileNotFoundError:
        if key is None:
            raise
        raise DataError(f"source file not found: {path} (set {key})") from None
    except OSError as exc:
        if key is None:
            raise
        raise classify_os_error(exc, f"cannot read {path}", key) from exc
    if magic == GZIP_MAGIC:
        return cast(BinaryIO, gzip.open(path, "rb"))
    return path.open("rb")
