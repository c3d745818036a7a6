"""Zendesk's event webhook: how a request is signed, and the event the ``support`` topic carries.

The webhook (``POST /v1/webhooks/zendesk``) checks :func:`sign` and appends the raw body to the
``support`` topic; :func:`decode_support` decodes one such record for the speed layer.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from typing import NamedTuple

import orjson

from c360.contracts import reasons
from c360.contracts.segment import future_reason
from c360.contracts.times import utc
from c360.errors import DataError

SIGNATURE_HEADER = "X-Zendesk-Webhook-Signature"
TIMESTAMP_HEADER = "X-Zendesk-Webhook-Signature-Timestamp"
EVENT_PREFIX = "zen:event-type:"


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """Zendesk's signature of ``body`` sent at ``timestamp``: base64(HMAC-SHA256)."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    digest = hmac.new(key, timestamp.encode("utf-8") + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


class InvalidSupportEvent(DataError):
    """A ``support`` record that is not a usable Zendesk event; ``reason`` is dead-lettered,
    ``code`` (one of :data:`c360.contracts.reasons.CODES`) counted."""

    def __init__(self, reason: str, code: str) -> None:
        self.reason = reason
        self.code = code
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
MAX_SAFE_INTEGER = 2**53 - 1  # the largest integer a double (JavaScript's number) holds exactly


def _id(value: object) -> str | None:
    """A non-empty string, or an integer JSON parsers all read exactly (|n| < 2**53, as
    Zendesk's ids are: JavaScript reads its numbers as doubles), as text; no NUL (PostgreSQL text
    cannot hold it). The OpenAPI document states the same range."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 7.0 is an integer to JSON Schema, so to us
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        return None
    if isinstance(value, int) and not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
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
        return utc(parsed)
    except (ValueError, OverflowError):
        return None


def support_event(payload: object, not_after: dt.datetime | None) -> SupportEvent:
    """The event in a parsed webhook payload (the rules of ``POST /v1/webhooks/zendesk``), or
    :class:`InvalidSupportEvent` with the reason.

    ``not_after`` (aware): the latest plausible event time — the time the event was received
    plus ``events.max_clock_skew_seconds``; a later ``time`` is refused (Zendesk stamps events
    with its own servers' clock, so there is nothing to correct). None: no check.

    ``status`` is ``event.current`` for ``ticket.status_changed`` (a string, or an object with
    ``status``) and otherwise the ticket's ``detail.status``.
    """
    if not isinstance(payload, dict):
        raise InvalidSupportEvent(
            f"not a JSON object (got {type(payload).__name__})", reasons.NOT_OBJECT
        )
    kind = payload.get("type")
    if not isinstance(kind, str) or not kind.startswith(EVENT_PREFIX):
        raise InvalidSupportEvent(
            f"'type' must be a Zendesk event type ({EVENT_PREFIX}…)", reasons.UNKNOWN_TYPE
        )
    kind = kind.removeprefix(EVENT_PREFIX)
    event_id = _id(payload.get("id"))
    if event_id is None:
        raise InvalidSupportEvent("'id' (the event id) is required", reasons.MISSING_FIELD)
    time = _utc_time(payload.get("time"))
    if time is None:
        raise InvalidSupportEvent("'time' must be an ISO-8601 timestamp", reasons.INVALID_FIELD)
    if not_after is not None and time > not_after:
        raise InvalidSupportEvent(future_reason("'time'", time, not_after), reasons.FUTURE_TIME)
    detail = payload.get("detail")
    if not isinstance(detail, dict):
        raise InvalidSupportEvent("'detail' must be an object", reasons.INVALID_FIELD)
    if kind.startswith("ticket."):
        user_id, ticket_id = _id(detail.get("requester_id")), _id(detail.get("id"))
        if user_id is None:
            raise InvalidSupportEvent(f"{kind} needs detail.requester_id", reasons.MISSING_FIELD)
        if ticket_id is None:
            raise InvalidSupportEvent(
                f"{kind} needs detail.id (the ticket id)", reasons.MISSING_FIELD
            )
        status = _status(detail.get("status"))
        if kind == "ticket.status_changed":
            change = payload.get("event")
            current = change.get("current") if isinstance(change, dict) else None
            if isinstance(current, dict):
                current = current.get("status")
            status = _status(current) or status
        if len(user_id) > MAX_USER_ID:
            raise InvalidSupportEvent(
                f"detail.requester_id is longer than {MAX_USER_ID}", reasons.INVALID_FIELD
            )
        return SupportEvent(event_id, kind, time, user_id, ticket_id, status)
    if kind.startswith("user."):
        user_id = _id(detail.get("id"))
        if user_id is None:
            raise InvalidSupportEvent(
                f"{kind} needs detail.id (the user id)", reasons.MISSING_FIELD
            )
        if len(user_id) > MAX_USER_ID:
            raise InvalidSupportEvent(
                f"detail.id is longer than {MAX_USER_ID}", reasons.INVALID_FIELD
            )
        return SupportEvent(event_id, kind, time, user_id, None, None)
    raise InvalidSupportEvent(
        f"unsupported event type {kind!r}: expected ticket.* or user.*", reasons.UNKNOWN_TYPE
    )


def decode_support(raw: bytes | str, not_after: dt.datetime | None) -> SupportEvent:
    """:func:`support_event` of one raw ``support`` record."""
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidSupportEvent(f"not JSON: {exc}", reasons.NOT_JSON) from None
    return support_event(payload, not_after)
