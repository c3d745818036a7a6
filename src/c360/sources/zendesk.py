"""Zendesk event-webhook payloads (``zen:event-type:ticket.*`` and ``user.*``) to Arrow rows.

Each row keeps the raw payload next to the few fields every consumer needs, so nothing the
source sent is lost and later steps can extract more without re-ingesting.

The speed layer decodes the ``support`` topic with :func:`c360.contracts.zendesk.decode_support`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa

from c360.contracts.lake import ZENDESK_EVENT_SCHEMA


@dataclass(frozen=True)
class Rejected:
    """A source line that failed validation, kept with the reason."""

    line: int
    reason: str
    raw: bytes


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.UTC)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def event_row(payload: dict[str, Any], raw: bytes) -> dict[str, Any]:
    """The columns of one Zendesk webhook event (raises KeyError/ValueError when malformed)."""
    kind = payload["type"]
    detail = payload.get("detail") or {}
    is_user = kind.startswith("zen:event-type:user.")
    current = (payload.get("event") or {}).get("current")
    status = current.get("status") if isinstance(current, dict) else current
    return {
        "event_id": str(payload["id"]),
        "type": kind,
        "time": parse_time(payload["time"]),
        "ticket_id": None if is_user else _text(detail.get("id")),
        "user_id": _text(detail.get("id")) if is_user else None,
        "requester_id": _text(detail.get("requester_id")),
        "status": _text(status if isinstance(status, str) else detail.get("status")),
        "email": detail.get("email"),
        "name": detail.get("name"),
        "payload": raw.decode(),
    }


def read_events(
    lines: Iterable[bytes], quarantine: list[Rejected], chunk_rows: int = 50_000
) -> Iterator[pa.RecordBatch]:
    """Parse JSON lines into record batches; malformed lines go to ``quarantine``."""
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        raw = line.rstrip(b"\n")
        try:
            rows.append(event_row(orjson.loads(raw), raw))
        except (orjson.JSONDecodeError, KeyError, ValueError, AttributeError, TypeError) as exc:
            quarantine.append(Rejected(line=number, reason=f"{type(exc).__name__}: {exc}", raw=raw))
            continue
        if len(rows) == chunk_rows:
            yield pa.RecordBatch.from_pylist(rows, schema=ZENDESK_EVENT_SCHEMA)
            rows = []
    if rows:
        yield pa.RecordBatch.from_pylist(rows, schema=ZENDESK_EVENT_SCHEMA)
