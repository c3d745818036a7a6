"""Zendesk event-webhook payloads (``zen:event-type:ticket.*`` and ``user.*``) to Arrow rows.

Each row keeps the raw payload next to the few fields every consumer needs, so nothing the
source sent is lost and later steps can extract more without re-ingesting.

:func:`decode_support` decodes one record of the ``support`` topic (the raw webhook body the
API appended) for the speed layer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
import pyarrow as pa

from c360.errors import DataError


@dataclass(frozen=True)
class Rejected:
    """A source line that failed validation, kept with the reason."""

    line: int
    reason: str
    raw: bytes


EVENT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("type", pa.string()),
        ("time", pa.timestamp("us", tz="UTC")),
        ("ticket_id", pa.string()),
        ("user_id", pa.string()),
        ("requester_id", pa.string()),
        ("status", pa.string()),
        ("email", pa.string()),
        ("name", pa.string()),
        ("payload", pa.string()),
    ]
)


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
            yield pa.RecordBatch.from_pylist(rows, schema=EVENT_SCHEMA)
            rows = []
    if rows:
        yield pa.RecordBatch.from_pylist(rows, schema=EVENT_SCHEMA)


# -- the speed layer's decoder for the ``support`` topic ----------------------------------------

EVENT_PREFIX = "zen:event-type:"


class InvalidSupportEvent(DataError):
    """A ``support`` record that is not a usable Zendesk event; ``reason`` is dead-lettered."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class SupportEvent(NamedTuple):
    """The fields of one Zendesk event-webhook payload the speed layer reads."""

    event_id: str
    kind: str  # the type without its prefix: "ticket.created", "ticket.status_changed", "user.…"
    time: dt.datetime  # aware UTC
    user_id: str  # the requester (ticket events) or the user (user events): the state key
    ticket_id: str | None  # ticket events only
    status: str | None  # the ticket's status after this event, upper case, when the event says


MAX_USER_ID = 320  # realtime_support.id_value


def _id(value: object) -> str | None:
    """A non-empty string or integer id as text (no NUL: PostgreSQL text cannot hold it)."""
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        return None
    text = str(value)
    return None if "\x00" in text else text


def _status(value: object) -> str | None:
    return value.upper() if isinstance(value, str) and value else None


def _utc_time(value: object) -> dt.datetime | None:
    """An ISO-8601 time as aware UTC (no offset: UTC), or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        return None


def support_event(payload: object) -> SupportEvent:
    """The event in a parsed webhook payload (the rules of ``POST /v1/webhooks/zendesk``), or
    :class:`InvalidSupportEvent` with the reason.

    ``status`` is ``event.current`` for ``ticket.status_changed`` (a string, or an object with
    ``status``) and otherwise the ticket's ``detail.status``.
    """
    if not isinstance(payload, dict):
        raise InvalidSupportEvent(f"not a JSON object (got {type(payload).__name__})")
    kind = payload.get("type")
    if not isinstance(kind, str) or not kind.startswith(EVENT_PREFIX):
        raise InvalidSupportEvent(f"'type' must be a Zendesk event type ({EVENT_PREFIX}…)")
    kind = kind.removeprefix(EVENT_PREFIX)
    event_id = _id(payload.get("id"))
    if event_id is None:
        raise InvalidSupportEvent("'id' (the event id) is required")
    time = _utc_time(payload.get("time"))
    if time is None:
        raise InvalidSupportEvent("'time' must be an ISO-8601 timestamp")
    detail = payload.get("detail")
    if not isinstance(detail, dict):
        raise InvalidSupportEvent("'detail' must be an object")
    if kind.startswith("ticket."):
        user_id, ticket_id = _id(detail.get("requester_id")), _id(detail.get("id"))
        if user_id is None:
            raise InvalidSupportEvent(f"{kind} needs detail.requester_id")
        if ticket_id is None:
            raise InvalidSupportEvent(f"{kind} needs detail.id (the ticket id)")
        status = _status(detail.get("status"))
        if kind == "ticket.status_changed":
            change = payload.get("event")
            current = change.get("current") if isinstance(change, dict) else None
            if isinstance(current, dict):
                current = current.get("status")
            status = _status(current) or status
        if len(user_id) > MAX_USER_ID:
            raise InvalidSupportEvent(f"detail.requester_id is longer than {MAX_USER_ID}")
        return SupportEvent(event_id, kind, time, user_id, ticket_id, status)
    if kind.startswith("user."):
        user_id = _id(detail.get("id"))
        if user_id is None:
            raise InvalidSupportEvent(f"{kind} needs detail.id (the user id)")
        if len(user_id) > MAX_USER_ID:
            raise InvalidSupportEvent(f"detail.id is longer than {MAX_USER_ID}")
        return SupportEvent(event_id, kind, time, user_id, None, None)
    raise InvalidSupportEvent(f"unsupported event type {kind!r}: expected ticket.* or user.*")


def decode_support(raw: bytes | str) -> SupportEvent:
    """:func:`support_event` of one raw ``support`` record."""
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidSupportEvent(f"not JSON: {exc}") from None
    return support_event(payload)
