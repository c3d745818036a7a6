"""Publish a file of Segment messages (JSON lines, plain or gzip) into the event log.

Each line becomes one record, keyed by its anonymousId, else its userId
(:func:`c360.contracts.segment.routing_key`). Lines that are not JSON are appended too, with an
empty key: the stream worker dead-letters them with the reason, so no line is lost. Only blank
lines are skipped. Lines are published in file order (the simulator writes event-time order);
``rate`` paces them at that many events per second.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from c360.contracts.segment import routing_key
from c360.errors import DataError
from c360.logs import EventLog
from c360.sources.files import open_bytes

DEFAULT_BATCH_SIZE = 1_000


@dataclass(frozen=True)
class PublishStats:
    records: int  # appended, one per non-blank line
    not_json: int  # of which not JSON (the worker dead-letters them)
    blank: int  # blank lines skipped
    appends: int  # append calls (each one durable sync)
    seconds: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _lines(path: Path) -> Iterator[bytes]:
    try:
        with open_bytes(path) as stream:
            yield from stream
    except (EOFError, gzip.BadGzipFile) as exc:
        raise DataError(
            f"{path} is not a complete gzip file ({exc}); re-create or re-copy it"
        ) from None


def publish_file(
    log: EventLog,
    path: str | Path,
    topic: str = "clickstream",
    rate: float | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> PublishStats:
    """Append every non-blank line of ``path`` to ``topic``; return the counts."""
    if rate is not None and rate <= 0:
        raise ValueError(f"rate must be > 0 events/s, got {rate}")
    if rate is not None:  # about ten appends a second, so the pace stays smooth
        batch_size = max(1, min(batch_size, int(rate / 10)))
    started = clock()
    records = not_json = blank = appends = 0
    pending: list[tuple[str, bytes]] = []

    def flush() -> None:
        nonlocal records, appends
        if not pending:
            return
        if rate is not None:  # the first record of this append is due at started + n / rate
            delay = started + records / rate - clock()
            if delay > 0:
                sleep(delay)
        log.append(topic, pending)
        records += len(pending)
        appends += 1
        pending.clear()

    for raw in _lines(Path(path)):
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            blank += 1
            continue
        try:
            key = routing_key(orjson.loads(line))
        except orjson.JSONDecodeError:
            key = ""
            not_json += 1
        pending.append((key, line))
        if len(pending) >= batch_size:
            flush()
    flush()
    return PublishStats(records, not_json, blank, appends, round(clock() - started, 3))
