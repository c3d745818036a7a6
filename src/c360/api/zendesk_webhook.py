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
- a body that is not JSON: 400 ``invalid_json``; the top level must be an event payload that
  :func:`~c360.contracts.zendesk.support_event` accepts — ``{"type": "zen:event-type:ticket.*"
  | "zen:event-type:user.*", "id", "time", "detail": {...}}``, a ``time`` no later than the
  server clock plus ``events.max_clock_skew_seconds`` — else 400 ``invalid_event`` with the
  reason the speed layer would have dead-lettered it for;
- otherwise the **raw body** is appended to ``support`` (durable before the 200). A failed
  append is classified as the collector's (:class:`~c360.api.collector.IngestLog`): a
  transient log failure is a 503 with ``Retry-After`` (Zendesk retries the delivery); a
  terminal one (ACLs, log configuration, a full disk) or an unexpected error is a 500 without
  ``Retry-After`` whose body says retrying will not help.

Every error body is the collector's: ``{"success": false, "code", "detail"}`` (codes:
``invalid_json``, ``invalid_event``, ``payload_too_large``, ``unauthorized``, ``not_configured``,
``log_unavailable``, ``log_refused``, ``log_failed``).

*Key choice:* the brief keys ``support`` by requester email, but ticket events carry only the
requester's user id (the address arrives once, in ``user.created``). Records are keyed by the
requester id (``detail.requester_id``) for ticket events and by the user id (``detail.id``) for
user events, which is the same id: all events of one requester land in one partition, in order.

*Suppression* (issue 18): an event of an erased person (requester or user id, ``detail.email``,
``detail.external_id``) is answered 200 and dropped, never appended; it is counted as
``c360_collector_events_total{outcome="rejected",code="suppressed"}``.
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

from c360.api import metrics, openapi
from c360.api.collector import SUPPRESSED, IngestLog, Reject, read_body
from c360.config import DEFAULT_MAX_CLOCK_SKEW_SECONDS, ZendeskSourceSettings
from c360.contracts.zendesk import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    InvalidSupportEvent,
    sign,
    support_event,
)
from c360.privacy import SuppressionCache

TOPIC = "support"
WEBHOOK = "zendesk"  # its label in the metrics
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


def routing_key(payload: object, not_after: dt.datetime | None) -> str:
    """The ``support`` key of a valid event payload (the requester's or user's id); raises
    :class:`Reject` (400 ``invalid_event``) with the reason the speed layer would dead-letter it
    for: the webhook accepts exactly what :func:`~c360.contracts.zendesk.support_event` does."""
    try:
        return support_event(payload, not_after).user_id
    except InvalidSupportEvent as exc:
        raise Reject(400, "invalid_event", exc.reason, refused={exc.code: 1}) from None


@dataclass
class ZendeskWebhook:
    """Verifies, validates and appends one webhook request (sync: runs on the threadpool)."""

    settings: ZendeskSourceSettings
    log: IngestLog
    clock: Callable[[], float] = time.time  # seconds since the epoch
    max_clock_skew_seconds: float = DEFAULT_MAX_CLOCK_SKEW_SECONDS
    suppression: SuppressionCache | None = None
    _seen: OrderedDict[str, float] = field(default_factory=OrderedDict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def check_enabled(self) -> None:
        if self.settings.webhook_secret is None:
            raise Reject(
                503,
                "not_configured",
                "webhook secret not configured: set sources.zendesk.webhook_secret "
                "(C360_SOURCES_ZENDESK_WEBHOOK_SECRET) to the webhook's signing secret",
            )

    def _verify(self, signature: str | None, timestamp: str | None, body: bytes) -> None:
        secret = self.settings.webhook_secret
        if secret is None:  # pragma: no cover - check_enabled runs first
            raise Reject(503, "not_configured", "webhook secret not configured")
        if not signature or not timestamp:
            raise Reject(
                401,
                "unauthorized",
                f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER}",
                headers=_UNAUTHORIZED,
            )
        expected = sign(secret.get_secret_value(), timestamp, body)
        if not hmac.compare_digest(expected.encode("ascii"), signature.strip().encode("utf-8")):
            raise Reject(401, "unauthorized", "bad signature", headers=_UNAUTHORIZED)
        sent = _parse_timestamp(timestamp)
        if sent is None:
            raise Reject(
                401, "unauthorized", f"{TIMESTAMP_HEADER} is not a timestamp", headers=_UNAUTHORIZED
            )
        tolerance = self.settings.signature_tolerance_seconds
        if abs(self.clock() - sent.timestamp()) > tolerance:
            raise Reject(
                401,
                "unauthorized",
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

    def _suppressed(self, key: str, payload: dict[str, Any]) -> bool:
        """Whether the event names an erased person: its requester or user, their email or
        their shop account (``external_id``)."""
        suppression = self.suppression.current() if self.suppression is not None else None
        if not suppression:
            return False
        detail = payload.get("detail")
        detail = detail if isinstance(detail, dict) else {}
        return suppression.any_suppressed(
            [
                ("zendesk_user_id", key),
                ("email", detail.get("email")),
                ("customer_id", detail.get("external_id")),
            ]
        )

    def handle(self, body: bytes, signature: str | None, timestamp: str | None) -> dict[str, Any]:
        self._verify(signature, timestamp, body)
        assert signature is not None
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise Reject(400, "invalid_json", f"the body is not JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise Reject(
                400,
                "invalid_json",
                f"the body is not a JSON object (got {type(payload).__name__})",
            )
        latest = self.clock() + self.max_clock_skew_seconds
        key = routing_key(payload, dt.datetime.fromtimestamp(latest, dt.UTC))
        if self._already_accepted(signature.strip()):
            return {"success": True, "duplicate": True}
        if self._suppressed(key, payload):
            return {"success": True, SUPPRESSED: True}
        self.log.append(TOPIC, [(key, body)])
        self._remember(signature.strip())
        return {"success": True}


def zendesk_router(webhook: ZendeskWebhook) -> APIRouter:
    """``POST /v1/webhooks/zendesk`` (see the module docstring)."""
    router = APIRouter(tags=["webhooks"])

    @router.post(
        "/v1/webhooks/zendesk",
        openapi_extra=openapi.zendesk_body(),
        responses=openapi.ingest_responses(openapi.WebhookAccepted),
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
            for reason in reject.refused:  # one event: one reason
                metrics.webhook_event(WEBHOOK, "rejected", reject.code, reason)
            return reject.response()
        if answer.pop(SUPPRESSED, False):
            metrics.webhook_event(WEBHOOK, "suppressed", code=SUPPRESSED)
        else:
            metrics.webhook_event(WEBHOOK, "suppressed" if answer.get("duplicate") else "accepted")
        return JSONResponse(answer)

    return router
