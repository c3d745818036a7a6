"""The Zendesk event webhook: ``POST /v1/webhooks/zendesk`` → the ``support`` topic.

Zendesk signs every webhook request (developer.zendesk.com, "Verifying webhook authenticity"):
``X-Zendesk-Webhook-Signature`` = base64(HMAC-SHA256(signing secret, TIMESTAMP + BODY)), where
TIMESTAMP is the ``X-Zendesk-Webhook-Signature-Timestamp`` header exactly as sent (ISO 8601,
e.g. ``2021-03-25T05:09:27Z``) and BODY the raw request body, with no separator. Here:

- no secret configured (``sources.zendesk.webhook_secret``): 503 "webhook secret not
  configured" — the endpoint never accepts unsigned events;
- a missing header, a bad signature (compared with :func:`hmac.compare_digest`) or a timestamp
  further than ``sources.zendesk.signature_tolerance_seconds`` (300) from the server clock, in
  either direction: 401. The signature is checked before the body is parsed;
- an exact replay of a request already accepted (same signature, inside the tolerance window,
  same server process): 200 ``{"duplicate": true}`` and nothing appended, so Zendesk's retry
  of a delivery whose answer was lost is not stored twice;
- a body that is not JSON: 400; the top level must be an event payload ``{"type":
  "zen:event-type:ticket.*" | "zen:event-type:user.*", "id", "time", "detail": {...}}``
  (others: 400 with the reason);
- otherwise the **raw body** is appended to ``support`` (durable before the 200). A failed
  append is classified as the collector's (:class:`~c360.api.collector.IngestLog`): a
  transient log failure is a 503 with ``Retry-After`` (Zendesk retries the delivery); a
  terminal one (ACLs, log configuration, a full disk) or an unexpected error is a 500 without
  ``Retry-After`` whose body says retrying will not help.

*Key choice:* the brief keys ``support`` by requester email, but ticket events carry only the
requester's user id (the address arrives once, in ``user.created``). Records are keyed by the
requester id (``detail.requester_id``) for ticket events and by the user id (``detail.id``) for
user events, which is the same id: all events of one requester land in one partition, in order.
"""

from __future__ import annotations

import datetime as dt
import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from c360.api.collector import IngestLog, Reject, read_body
from c360.config import ZendeskSourceSettings
from c360.contracts.zendesk import EVENT_PREFIX, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

TOPIC = "support"
MAX_BODY_BYTES = 1024 * 1024
MAX_REMEMBERED = 100_000  # accepted signatures kept for the replay check
_UNAUTHORIZED = {"WWW-Authenticate": 'Signature realm="zendesk webhook"'}


def _parse_timestamp(value: str) -> dt.datetime | None:
    text = value.strip()
    try:
        if text.isdigit():  # tolerate epoch seconds
            return dt.datetime.fromtimestamp(int(text), dt.UTC)
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        return None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed


def routing_key(payload: dict[str, Any]) -> str:
    """The ``support`` key of a valid event payload; raises :class:`Reject` (400) if malformed."""
    kind = payload.get("type")
    if not isinstance(kind, str) or not kind.startswith(EVENT_PREFIX):
        raise Reject(400, f"'type' must be a Zendesk event type ({EVENT_PREFIX}…)")
    event = kind.removeprefix(EVENT_PREFIX)
    event_id = payload.get("id")
    if isinstance(event_id, bool) or not isinstance(event_id, str | int) or event_id == "":
        raise Reject(400, "'id' (the event id) is required")
    when = payload.get("time")
    if not isinstance(when, str) or _parse_timestamp(when) is None:
        raise Reject(400, "'time' must be an ISO-8601 timestamp")
    detail = payload.get("detail")
    if not isinstance(detail, dict):
        raise Reject(400, "'detail' must be an object")
    if event.startswith("ticket."):
        field_name, value = "detail.requester_id", detail.get("requester_id")
    elif event.startswith("user."):
        field_name, value = "detail.id", detail.get("id")
    else:
        raise Reject(400, f"unsupported event type {kind!r}: subscribe to ticket and user events")
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise Reject(400, f"{kind} needs {field_name}")
    return str(value)


@dataclass
class ZendeskWebhook:
    """Verifies, validates and appends one webhook request (sync: runs on the threadpool)."""

    settings: ZendeskSourceSettings
    log: IngestLog
    clock: Callable[[], float] = time.time  # seconds since the epoch
    _seen: OrderedDict[str, float] = field(default_factory=OrderedDict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def check_enabled(self) -> None:
        if self.settings.webhook_secret is None:
            raise Reject(
                503,
                "webhook secret not configured: set sources.zendesk.webhook_secret "
                "(C360_SOURCES_ZENDESK_WEBHOOK_SECRET) to the webhook's signing secret",
            )

    def _verify(self, signature: str | None, timestamp: str | None, body: bytes) -> None:
        secret = self.settings.webhook_secret
        if secret is None:  # pragma: no cover - check_enabled runs first
            raise Reject(503, "webhook secret not configured")
        if not signature or not timestamp:
            raise Reject(
                401, f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER}", headers=_UNAUTHORIZED
            )
        expected = sign(secret.get_secret_value(), timestamp, body)
        if not hmac.compare_digest(expected.encode("ascii"), signature.strip().encode("utf-8")):
            raise Reject(401, "bad signature", headers=_UNAUTHORIZED)
        sent = _parse_timestamp(timestamp)
        if sent is None:
            raise Reject(401, f"{TIMESTAMP_HEADER} is not a timestamp", headers=_UNAUTHORIZED)
        tolerance = self.settings.signature_tolerance_seconds
        if abs(self.clock() - sent.timestamp()) > tolerance:
            raise Reject(
                401,
                f"signature timestamp is more than {tolerance} s from the server clock "
                "(a replayed request, or a clock that is off)",
                headers=_UNAUTHORIZED,
            )

    def _already_accepted(self, signature: str) -> bool:
        now = self.clock()
        with self._lock:
            while self._seen and next(iter(self._seen.values())) < now:
                self._seen.popitem(last=False)
            return signature in self._seen

    def _remember(self, signature: str) -> None:
        expires = self.clock() + 2 * self.settings.signature_tolerance_seconds
        with self._lock:
            self._seen[signature] = expires
            self._seen.move_to_end(signature)
            while len(self._seen) > MAX_REMEMBERED:
                self._seen.popitem(last=False)

    def handle(self, body: bytes, signature: str | None, timestamp: str | None) -> dict[str, Any]:
        self._verify(signature, timestamp, body)
        assert signature is not None
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise Reject(400, f"the body is not JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise Reject(400, f"the body is not a JSON object (got {type(payload).__name__})")
        key = routing_key(payload)
        if self._already_accepted(signature.strip()):
            return {"success": True, "duplicate": True}
        self.log.append(TOPIC, [(key, body)])
        self._remember(signature.strip())
        return {"success": True}


def zendesk_router(webhook: ZendeskWebhook) -> APIRouter:
    """``POST /v1/webhooks/zendesk`` (see the module docstring)."""
    router = APIRouter(tags=["webhooks"])

    @router.post(
        "/v1/webhooks/zendesk",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    )
    async def zendesk_event(request: Request) -> JSONResponse:
        """Receive one signed Zendesk event (ticket.* or user.*) into the support topic."""
        try:
            webhook.check_enabled()
            body = await read_body(request, MAX_BODY_BYTES, "the webhook body")
            signature = request.headers.get(SIGNATURE_HEADER)
            timestamp = request.headers.get(TIMESTAMP_HEADER)
            answer = await run_in_threadpool(webhook.handle, body, signature, timestamp)
        except Reject as reject:
            return reject.response()
        return JSONResponse(answer)

    return router
