"""The Segment-compatible collector: ``POST /v1/track|page|screen|identify|alias|group|batch``.

Existing Segment and RudderStack SDKs can point their API host at c360. What a request gets:

- **Auth**: a write key (``collector.write_keys``) as the HTTP Basic user name with an empty
  password (``Authorization: Basic base64("KEY:")``; ``base64("KEY")`` is accepted too, as
  Segment does), else as ``writeKey`` in the body. No key or a wrong one: 401. No key configured
  at all: 503 (the collector is disabled). The key is dropped before the event is stored.
- **Limits** (Segment's): a message request up to ``collector.max_message_bytes`` (32 KB), a
  batch up to ``collector.max_batch_bytes`` (500 KB) with each item up to the message limit;
  beyond: 400 with the reason. ``Content-Encoding: gzip`` bodies are accepted (limits apply to
  both the compressed and the decompressed bytes).
- **Validation**: :func:`c360.contracts.segment.validate`; an invalid message is a 400 with the
  reason. The path sets ``type`` on the single-message routes (as Segment does). A missing
  ``messageId`` is filled with a uuid4 and a missing ``timestamp`` with the receive time (Segment
  timestamps such calls itself); ``receivedAt`` (server time, UTC) is added to every message.
- **Client clocks** (Segment's rule, "Timestamps, receivedAt, sentAt, originalTimestamp"): a
  message with ``sentAt`` (its own, or the batch's) has its ``timestamp`` corrected to
  ``receivedAt - (sentAt - timestamp)`` and the client's value kept as ``originalTimestamp``:
  ``sentAt`` and ``receivedAt`` are the same instant on two clocks, so their difference is the
  client clock's error. A historical replay sends ``sentAt`` = now and keeps its times (moved by
  the request's transit time, as at Segment). Then, corrected or not, a ``timestamp`` later than
  ``receivedAt`` plus ``events.max_clock_skew_seconds`` is refused (400 ``invalid_message``; in a
  batch, that item is listed as rejected): a clock that could not be corrected (no ``sentAt``)
  must not make an event lie in the future. Money must be plausible
  (:func:`~c360.contracts.segment.money_problem`).
- **Batches**: ``{"batch": [...], "context"?, "integrations"?, "sentAt"?, "writeKey"?}``; each
  item carries its ``type``. The batch ``context``/``integrations`` are merged under each item's
  own. *Our choice:* valid items are accepted and invalid ones are listed in the 200 response
  (``rejected``: index and reason) — Segment also answers 200 and drops invalid events, and an
  SDK that gets a 400 drops the whole batch, valid events included. A batch with no valid item
  at all is a 400 listing the reasons. A batch over a size limit is rejected whole (400).
- **Durability**: the accepted messages of a request are appended to the ``clickstream`` topic
  with **one** ``append`` call (keyed by anonymousId, else userId), which is durable when it
  returns; only then is ``{"success": true}`` answered. A failed append is never a 200; the
  event log classifies its failures (:class:`IngestLog`): a transient one (a broker down, a
  busy disk) is a 503 with ``Retry-After``; a terminal one (an ACL or authorization refused,
  bad log configuration, a full or read-only disk) and any unexpected error are a 500 without
  ``Retry-After``, whose body says retrying will not help. Delivery is at least once: a retried
  request may append a message twice (the speed layer drops duplicate ``messageId``s).

- **Suppression** (issue 18): a message whose cookie, ``userId`` or email trait is an erased
  person's (:mod:`c360.privacy.suppression`) is dropped: answered 200 like an accepted one (an
  SDK must not retry it), never appended, counted as rejected with the code ``suppressed``.

**Errors** keep Segment's body, ``{"success": false, "detail": "<reason>"}``, with a
machine-readable ``code`` beside it (:class:`Reject`): ``invalid_json``, ``invalid_encoding``,
``payload_too_large`` (all 400: SDKs treat a 400 as "drop the batch"), ``invalid_message``
(400), ``unauthorized`` (401), ``not_configured`` (503, no write key), ``log_unavailable`` (503
with ``Retry-After``), ``log_refused`` and ``log_failed`` (500). The OpenAPI document describes
each route's request body (from the pydantic Segment models, :mod:`c360.api.openapi`) and every
status it answers.

Analytics.js's short paths (``/v1/t``, ``/v1/p``, … and ``/v1/b`` for its batching mode, sent as
``text/plain``) are aliases. Nothing here logs a body, an identifier or a key.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import logging
import threading
import uuid
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from c360.api import metrics, openapi
from c360.config import DEFAULT_MAX_CLOCK_SKEW_SECONDS, CollectorSettings, LogSettings
from c360.contracts import reasons
from c360.contracts.segment import (
    MESSAGE_TYPES,
    InvalidMessage,
    corrected_timestamp,
    iso_utc,
    validate,
)
from c360.errors import TerminalError, TransientError, raised_at
from c360.logs import EventLog, open_configured
from c360.privacy import SuppressionCache, SuppressionList

logger = logging.getLogger(__name__)

TOPIC = "clickstream"
RETRY_AFTER_SECONDS = 5
MAX_REJECTED_LISTED = 100
# Bytes read (and dropped) past a limit so a well-behaved client still gets its 400.
_DRAIN_BYTES = 8 * 1024 * 1024


class Reject(Exception):
    """An answer other than 200: the status, a machine-readable code, the reason (Segment's
    ``detail``) and extra response fields; ``refused``: the refused messages by reason code
    (:mod:`c360.contracts.reasons`), for the metrics — one message of no known reason by
    default."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
        refused: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers
        self.extra = extra or {}
        self.refused: Mapping[str, int] = refused or {"": 1}

    def response(self) -> JSONResponse:
        body = {"success": False, "code": self.code, "detail": self.detail, **self.extra}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


SUPPRESSED = "suppressed"


class Suppressed(Exception):
    """A message carrying an erased identifier: dropped, never stored (answered as accepted,
    so a client does not retry it; counted as rejected with the code ``suppressed``)."""


def message_identifiers(message: dict[str, Any]) -> list[tuple[str, object]]:
    """The identifiers a Segment message carries: its cookie, its user and any email trait."""
    found: list[tuple[str, object]] = [
        ("anonymous_id", message.get("anonymousId")),
        ("customer_id", message.get("userId")),
    ]
    context = message.get("context")
    for holder in (
        message.get("traits"),
        message.get("properties"),
        context.get("traits") if isinstance(context, dict) else None,
    ):
        if isinstance(holder, dict) and isinstance(holder.get("email"), str):
            found.append(("email", holder["email"]))
    return found


def suppressed(suppression: SuppressionList, message: dict[str, Any]) -> bool:
    """Whether the message carries an erased identifier (a set lookup per identifier; nothing
    at all while no one was erased)."""
    return bool(suppression) and suppression.any_suppressed(message_identifiers(message))


class IngestLog:
    """The event log of one app: opened once at startup (if an ingestion route needs it).

    Appends run on the threadpool; both log backends are thread-safe. A failed append becomes a
    :class:`Reject`, so no caller ever answers 200 for it: a :class:`TransientError` a 503 with
    ``Retry-After`` (try again soon), a :class:`TerminalError` or anything unexpected a 500
    without it (retrying will not help until the server is fixed). Each failure is logged once,
    with the topic and the record count: never a record, an identifier or a key.
    """

    def __init__(self, settings: LogSettings, log: EventLog | None = None) -> None:
        self._settings = settings
        self._log = log
        self._owned = False
        self._lock = threading.Lock()

    def open(self) -> None:
        with self._lock:
            if self._log is None:
                self._log = open_configured(self._settings)
                self._owned = True

    @property
    def current(self) -> EventLog | None:
        """The log appends go to (None until opened)."""
        return self._log

    def close(self) -> None:
        """Close the log if this object opened it (a given log belongs to the caller)."""
        with self._lock:
            if not self._owned or self._log is None:
                return
            log, self._log, self._owned = self._log, None, False
        log.close()

    def append(self, topic: str, records: Sequence[tuple[str, bytes]]) -> None:
        """Append durably, or raise a 503 (transient) or 500 (terminal) :class:`Reject`."""
        log = self._log
        if log is None:
            raise Reject(
                503, "log_unavailable", "the event log is not open", headers=_retry_after()
            )
        count = len(records)
        try:
            log.append(topic, records)
        # c360's errors name the log, topic, partition and the setting to fix; never a record
        except TransientError as exc:
            logger.error("append of %d records to %s failed: %s", count, topic, exc)
            raise Reject(
                503,
                "log_unavailable",
                f"the event log is unavailable ({topic}); retry later",
                headers=_retry_after(),
            ) from exc
        except TerminalError as exc:
            logger.error("append of %d records to %s refused: %s", count, topic, exc)
            raise Reject(
                500, "log_refused", _CANNOT_STORE.format(topic=topic, why="refused them")
            ) from exc
        except Exception as exc:  # unclassified: its message might quote a record; not logged
            logger.error(
                "append of %d records to %s failed unexpectedly: %s raised at %s",
                count,
                topic,
                type(exc).__name__,
                raised_at(exc),
            )
            raise Reject(
                500, "log_failed", _CANNOT_STORE.format(topic=topic, why="failed")
            ) from exc


_CANNOT_STORE = (
    "the event log {why} ({topic}): the events were not stored and retrying will not help; "
    "the server's log has the reason"
)


def _retry_after() -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER_SECONDS)}


async def read_body(request: Request, limit: int, what: str) -> bytes:
    """The request body, at most ``limit`` bytes (compressed and decompressed), else a 400."""
    too_large = Reject(400, "payload_too_large", f"{what} exceeds the {limit}-byte limit")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + _DRAIN_BYTES:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            if size > limit + _DRAIN_BYTES:
                raise too_large
            continue  # drain, so the client reads the answer instead of a reset
        chunks.append(chunk)
    if size > limit:
        raise too_large
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding == "gzip":
        return _gunzip(body, limit, too_large)
    if encoding not in ("", "identity"):
        raise Reject(
            400,
            "invalid_encoding",
            f"unsupported Content-Encoding {encoding!r}; send gzip or identity",
        )
    return body


def _gunzip(body: bytes, limit: int, too_large: Reject) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise Reject(400, "invalid_encoding", f"not a valid gzip body ({exc})") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise too_large
    if not inflater.eof:
        raise Reject(400, "invalid_encoding", "truncated gzip body")
    return out


def _received() -> dt.datetime:
    """The receive time: the server clock in UTC, to the millisecond (as ``receivedAt`` says)."""
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Reject(400, "invalid_json", f"{what} is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise Reject(
            400, "invalid_json", f"{what} is not a JSON object (got {type(payload).__name__})"
        )
    return payload


def basic_username(header: str | None) -> str | None:
    """The user name of an ``Authorization: Basic`` header (``KEY:`` or ``KEY``), else None."""
    if not header:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.split(":", 1)[0]


@dataclass
class Collector:
    """The collector's settings and log; the handlers below are plain (sync) methods."""

    settings: CollectorSettings
    log: IngestLog
    max_clock_skew_seconds: float = DEFAULT_MAX_CLOCK_SKEW_SECONDS
    suppression: SuppressionCache | None = None
    # identify messages' consent, handed over once they are durable in the log (the app
    # stores them in the serving store at once: c360.api.privacy.segment_consent)
    on_identify: Callable[[list[dict[str, Any]]], None] | None = None
    _keys: list[bytes] = field(init=False, repr=False)
    _skew: dt.timedelta = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._keys = [key.get_secret_value().encode("utf-8") for key in self.settings.write_keys]
        self._skew = dt.timedelta(seconds=self.max_clock_skew_seconds)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def check_enabled(self) -> None:
        if not self.enabled:
            raise Reject(
                503,
                "not_configured",
                "the collector is disabled: no write key is configured "
                "(set collector.write_keys or C360_COLLECTOR_WRITE_KEYS)",
            )

    def _authenticate(self, authorization: str | None, payload: dict[str, Any]) -> None:
        given = basic_username(authorization)
        if given is None:  # no Basic header (e.g. analytics.js, or Segment's OAuth mode)
            body_key = payload.get("writeKey")
            given = body_key if isinstance(body_key, str) else None
        if not given:
            raise Reject(
                401,
                "unauthorized",
                "a write key is required: HTTP Basic user name (empty password) or writeKey",
                headers={"WWW-Authenticate": 'Basic realm="c360 collector"'},
            )
        candidate = given.encode("utf-8")
        # compare with every key, so the time taken does not tell which one nearly matched
        matched = [hmac.compare_digest(candidate, key) for key in self._keys]
        if not any(matched):
            raise Reject(
                401,
                "unauthorized",
                "unknown write key",
                headers={"WWW-Authenticate": 'Basic realm="c360 collector"'},
            )

    def _prepare(
        self,
        message: dict[str, Any],
        received: dt.datetime,
        *,
        kind: str | None = None,
        batch: dict[str, Any] | None = None,
    ) -> tuple[str, bytes]:
        """The log record of one message (enriched), or :class:`InvalidMessage`."""
        message = dict(message)
        message.pop("writeKey", None)
        if kind is not None:
            message["type"] = kind
        if batch:
            for name in ("context", "integrations"):
                shared, own = batch.get(name), message.get(name)
                if isinstance(shared, dict) and (own is None or isinstance(own, dict)):
                    message[name] = {**shared, **(own or {})}
            if "sentAt" in batch and "sentAt" not in message:
                message["sentAt"] = batch["sentAt"]
        if message.get("messageId") in (None, ""):
            message["messageId"] = str(uuid.uuid4())
        received_at = iso_utc(received)
        given = message.get("timestamp")
        if given in (None, ""):
            message["timestamp"] = received_at
        elif message.get("sentAt") not in (None, ""):
            corrected = corrected_timestamp(given, message["sentAt"], received)
            if corrected is not None:  # Segment keeps the client's own as originalTimestamp
                message["originalTimestamp"] = given
                message["timestamp"] = iso_utc(corrected)
        message["receivedAt"] = received_at
        key = validate(message, not_after=received + self._skew).routing_key
        if self.suppression is not None and suppressed(self.suppression.current(), message):
            raise Suppressed
        return key, orjson.dumps(message)

    def single(self, kind: str, body: bytes, authorization: str | None) -> dict[str, Any]:
        payload = _json_object(body, "the message")
        self._authenticate(authorization, payload)
        try:
            record = self._prepare(payload, _received(), kind=kind)
        except InvalidMessage as exc:
            raise Reject(
                400, "invalid_message", f"invalid message: {exc.reason}", refused={exc.code: 1}
            ) from None
        except Suppressed:
            return {"success": True, SUPPRESSED: 1}
        self.log.append(TOPIC, [record])
        self._identified([record])
        return {"success": True}

    def batch(self, body: bytes, authorization: str | None) -> tuple[dict[str, Any], Counter[str]]:
        """The answer to a batch, and its refused messages by reason code."""
        payload = _json_object(body, "the batch")
        self._authenticate(authorization, payload)
        items = payload.get("batch")
        if not isinstance(items, list):
            raise Reject(400, "invalid_message", "the body needs a 'batch' array of messages")
        limit = self.settings.max_message_bytes
        for index, item in enumerate(items):
            size = len(orjson.dumps(item))
            if size > limit:
                raise Reject(
                    400,
                    "payload_too_large",
                    f"batch item {index} has {size} bytes; the limit is {limit}",
                )
        received = _received()
        records: list[tuple[str, bytes]] = []
        rejected: list[dict[str, Any]] = []
        dropped = 0
        refused: Counter[str] = Counter()
        for index, item in enumerate(items):
            try:
                if not isinstance(item, dict):
                    raise InvalidMessage(
                        f"not a JSON object (got {type(item).__name__})", reasons.NOT_OBJECT
                    )
                records.append(self._prepare(item, received, batch=payload))
            except InvalidMessage as exc:
                rejected.append({"index": index, "reason": exc.reason})
                refused[exc.code] += 1
            except Suppressed:
                dropped += 1
        report = {
            "accepted": len(records),
            "rejected": rejected[:MAX_REJECTED_LISTED],
            "rejected_count": len(rejected),
        }
        if rejected and not records and not dropped:
            raise Reject(
                400,
                "invalid_message",
                "no valid message in the batch",
                extra=report,
                refused=refused,
            )
        if records:
            self.log.append(TOPIC, records)
            self._identified(records)
        return {"success": True, **report, SUPPRESSED: dropped}, refused

    def _identified(self, records: list[tuple[str, bytes]]) -> None:
        """Hand the stored identify messages to ``on_identify`` (after the log has them)."""
        if self.on_identify is None:
            return
        found = [m for _, value in records if b'"identify"' in value
                 and (m := orjson.loads(value)).get("type") == "identify"]  # fmt: skip
        if found:
            self.on_identify(found)


Handler = Callable[[Request], Awaitable[JSONResponse]]


def collector_router(collector: Collector) -> APIRouter:
    """The collector's routes (see the module docstring)."""
    router = APIRouter(tags=["collector"])
    settings = collector.settings

    def single_route(kind: str) -> Handler:
        async def handle(request: Request) -> JSONResponse:
            try:
                collector.check_enabled()
                body = await read_body(request, settings.max_message_bytes, "the message")
                auth = request.headers.get("authorization")
                answer = await run_in_threadpool(collector.single, kind, body, auth)
            except Reject as reject:
                metrics.collected(refused=reject.refused, code=reject.code)
                return reject.response()
            if answer.pop(SUPPRESSED, 0):
                metrics.collected(refused={"": 1}, code=SUPPRESSED)
            else:
                metrics.collected(accepted=1)
            return JSONResponse(answer)

        handle.__name__ = f"collect_{kind}"
        handle.__doc__ = f"Collect one Segment `{kind}` message (Segment HTTP Tracking API)."
        return handle

    async def collect_batch(request: Request) -> JSONResponse:
        """Collect a batch of Segment messages, each with its `type`."""
        try:
            collector.check_enabled()
            body = await read_body(request, settings.max_batch_bytes, "the batch")
            auth = request.headers.get("authorization")
            answered = await run_in_threadpool(collector.batch, body, auth)
        except Reject as reject:
            metrics.collected(refused=reject.refused, code=reject.code)
            return reject.response()
        answer, refused = answered
        metrics.collected(accepted=answer["accepted"], refused=refused, code="invalid_message")
        metrics.collected(refused={"": answer.pop(SUPPRESSED)}, code=SUPPRESSED)
        return JSONResponse(answer)

    for kind in MESSAGE_TYPES:
        handler = single_route(kind)
        router.add_api_route(
            f"/v1/{kind}",
            handler,
            methods=["POST"],
            openapi_extra=openapi.collector_body(kind),
            responses=openapi.ingest_responses(openapi.Accepted),
        )
        # analytics.js posts to the first letter of the type
        router.add_api_route(f"/v1/{kind[0]}", handler, methods=["POST"], include_in_schema=False)
    router.add_api_route(
        "/v1/batch",
        collect_batch,
        methods=["POST"],
        openapi_extra=openapi.batch_body(),
        responses=openapi.ingest_responses(openapi.BatchAccepted),
    )
    router.add_api_route("/v1/b", collect_batch, methods=["POST"], include_in_schema=False)
    return router
