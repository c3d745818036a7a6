"""Reading source files that may or may not be gzip-compressed (told by content, not name)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import BinaryIO, cast

GZIP_MAGIC = b"\x1f\x8b"


def open_bytes(path: Path) -> BinaryIO:
    """``path`` opened for binary reading, decompressed when it is gzip."""
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == GZIP_MAGIC:
        return cast(BinaryIO, gzip.open(path, "rb"))
    return path.open("rb")
