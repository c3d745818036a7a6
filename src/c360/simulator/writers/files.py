"""Output files that appear atomically: written under a temporary name, renamed on commit.

A run that fails half way leaves the previous outputs untouched and no partial file behind.
:class:`GzipLines` compresses on a background thread (zlib releases the GIL), so compressing
one day overlaps with simulating the next.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Self

GZIP_LEVEL = 1  # measured: level 1 is ~3x faster than 6 for ~10% larger files
_QUEUE_DEPTH = 2  # chunks waiting for the compressor (each at most ~50 MB)


class AtomicFile:
    """A binary file written to ``.<name>.tmp-<pid>`` and renamed over ``path`` on commit."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self.file: IO[bytes] = open(self.tmp, "wb")  # noqa: SIM115 - closed in commit/abort
        self.done = False
        self.on_abort: list[Callable[[], object]] = []  # e.g. close a writer wrapping the file

    def write(self, data: bytes | memoryview) -> None:
        self.file.write(data)

    def commit(self) -> None:
        self.file.close()
        os.replace(self.tmp, self.path)
        self.done = True

    def abort(self) -> None:
        if self.done:
            return
        for hook in self.on_abort:
            with contextlib.suppress(Exception):
                hook()
        self.file.close()
        self.tmp.unlink(missing_ok=True)
        self.done = True


class GzipLines:
    """An atomically committed gzip file fed with chunks of lines, compressed off-thread.

    The output is a single gzip member whose bytes depend only on the input chunks (the header
    carries no name and no time), so equal runs give equal files.
    """

    def __init__(self, path: str | Path, level: int = GZIP_LEVEL) -> None:
        self.file = AtomicFile(path)
        self._zip = zlib.compressobj(level, zlib.DEFLATED, 31)
        self._queue: queue.Queue[bytes | memoryview | None] = queue.Queue(maxsize=_QUEUE_DEPTH)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="c360-gzip", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            chunk = self._queue.get()
            if chunk is None:
                return
            if self._error is not None:
                continue
            try:
                self.file.write(self._zip.compress(chunk))
            except BaseException as exc:  # surfaced on the next write or on commit
                self._error = exc

    def write(self, chunk: bytes | memoryview) -> None:
        """Queue ``chunk`` (not copied: keep it unchanged) for compression."""
        if self._error is not None:
            raise self._error
        if len(chunk):
            self._queue.put(chunk)

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def commit(self) -> None:
        self._stop()
        if self._error is not None:
            raise self._error
        self.file.write(self._zip.flush())
        self.file.commit()

    def abort(self) -> None:
        self._stop()
        self.file.abort()


class Outputs:
    """Every file of a run; commits them together or removes them all."""

    def __init__(self) -> None:
        self._files: list[AtomicFile | GzipLines] = []

    def file(self, path: str | Path) -> AtomicFile:
        out = AtomicFile(path)
        self._files.append(out)
        return out

    def gzip(self, path: str | Path) -> GzipLines:
        out = GzipLines(path)
        self._files.append(out)
        return out

    def commit(self) -> None:
        for out in self._files:
            out.commit()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for out in self._files:
            out.abort()  # a no-op for committed files
