"""Outbound webhooks: the body of a segment event and its signature (docs/webhooks.md).

A delivery is ``POST <webhooks.url>`` with a JSON body::

    {"id": "<event id>", "type": "segment.entered" | "segment.exited",
     "occurred_at": "2026-12-06T10:15:00Z", "segment": "abandoned-cart",
     "person_id": "p_…", "email": "…"}

and the headers

- ``C360-Event-Id``: the event id, the same on every retry of the event — the receiver's
  idempotency key (also sent as ``Idempotency-Key``);
- ``C360-Signature``: ``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>``.

A receiver verifies with :func:`verify` (or the few lines in docs/webhooks.md): recompute the
HMAC over the timestamp, a dot and the raw body bytes, compare in constant time, and refuse a
timestamp older than its tolerance (a replay).
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "C360-Signature"
EVENT_ID_HEADER = "C360-Event-Id"
IDEMPOTENCY_HEADER = "Idempotency-Key"
DEFAULT_TOLERANCE_SECONDS = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``"<timestamp>." + body`` under ``secret``."""
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(
    secret: str,
    header: str | None,
    body: bytes,
    now: float,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """Whether ``header`` (a ``C360-Signature`` value) signs ``body`` under ``secret`` with a
    timestamp within ``tolerance_seconds`` of ``now`` (unix seconds)."""
    if not header:
        return False
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts.get("t", ""))
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance_seconds:
        return False
    given = parts.get("v1", "")
    return hmac.compare_digest(given, signature(secret, timestamp, body))
