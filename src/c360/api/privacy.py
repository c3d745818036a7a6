"""Privacy routes: consent decided now, and the read audit.

Consent also arrives with the collector: an identify message stating it (the trait
``marketing_consent``, or Segment's ``context.consent.categoryPreferences.marketing``) is stored
at once once the log has it (:func:`record_segment_consents`, the collector's ``on_identify``).

- ``PUT /v1/persons/{person_id}/consent`` (scope ``admin``): a consent decision for a person —
  given or withdrawn, as of ``decided_at`` (default: now) — stored at once in the serving store
  under each of the person's identifiers (:mod:`c360.stores.consent`). From the answer on,
  every exit (exports, syncs, webhooks, the Profile API's marketing fields) honours it, until a
  newer decision — the next batch's, if a source says so later — replaces it.
- ``POST /v1/webhooks/mailchimp?secret=…``: Mailchimp's webhook (form-encoded, as Mailchimp
  sends it: ``type=unsubscribe|cleaned|subscribe``, ``fired_at``, ``data[email]``,
  ``data[list_id]``). An unsubscribe or a cleaned address withdraws the consent of that email,
  a subscribe gives it, as of ``fired_at`` (UTC); other types and other lists are acknowledged
  and ignored. Mailchimp signs nothing: the URL carries a secret
  (``sources.mailchimp.webhook_secret``, compared in constant time; masked in every log line);
  with no secret configured the route answers 503. ``GET`` on the same URL answers 200:
  Mailchimp checks the URL that way when the webhook is set up.
- ``GET /v1/audit`` (scope ``admin``): who read whose profile (:mod:`c360.api.audit`), newest
  first, by ``person_id`` and/or ``key_id``, paged with ``before``.
"""

from __future__ import annotations

import datetime as dt
import hmac
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Body, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from c360.access.consent import Decision
from c360.api.auth import requires
from c360.api.collector import Reject, read_body
from c360.api.errors import ApiError, responses
from c360.config import MailchimpSourceSettings
from c360.contracts.times import naive_utc, naive_utc_now, utc
from c360.identity.normalise import normalise
from c360.stores import ServingStore

MAX_FORM_BYTES = 64 * 1024
MAX_AUDIT_PAGE = 1000
DEFAULT_AUDIT_PAGE = 100
MAX_ROW_ID = 2**62
MAX_EMAIL = 320
# The audit's parameters, read by the route itself (a repeated one is refused, not
# silently the last), declared here.
_AUDIT_QUERY = [
    {
        "name": "person_id",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "maxLength": 40},
        "description": "Only reads of this person.",
    },
    {
        "name": "key_id",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "maxLength": 32},
        "description": "Only reads by this API key (its id, as `c360 keys list` shows).",
    },
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_AUDIT_PAGE, "default": 100},
    },
    {
        "name": "before",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ROW_ID},
        "description": "`next_before` of the previous page.",
    },
]
_CODES = {400: "bad_request", 422: "invalid_request"}
_WITHDRAWN = {"unsubscribe": False, "cleaned": False, "subscribe": True}
_SECRET = {
    "name": "secret",
    "in": "query",
    "required": True,
    "schema": {"type": "string"},
    "description": "`sources.mailchimp.webhook_secret`, as set in the webhook's URL.",
}
_MAILCHIMP_FORM = {
    "required": True,
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": {
                "type": "object",
                "required": ["type"],
                "properties": {
                    "type": {"type": "string", "example": "unsubscribe"},
                    "fired_at": {
                        "type": "string",
                        "format": "date-time",
                        "description": "UTC; Mailchimp writes `2026-12-06 10:00:00`. Not "
                        "later than now plus `events.max_clock_skew_seconds`.",
                    },
                    "data[email]": {"type": "string", "maxLength": MAX_EMAIL},
                    "data[list_id]": {"type": "string"},
                },
                # the events that decide consent need the address
                "if": {
                    "required": ["type"],
                    "properties": {"type": {"enum": list(_WITHDRAWN)}},
                },
                "then": {
                    "required": ["data[email]"],
                    "properties": {
                        "data[email]": {"type": "string", "format": "email", "maxLength": MAX_EMAIL}
                    },
                },
            }
        }
    },
}


class ConsentIn(BaseModel):
    consent: bool = Field(description="true: the person agrees to marketing; false: withdrawn.")
    decided_at: dt.datetime | None = Field(
        None,
        description="When the person decided (ISO 8601; default: now). The newest decision "
        "wins, the batch's included; a time in the future is refused.",
    )


class ConsentOut(BaseModel):
    person_id: str = Field(description="The person the decision was stored for (a survivor).")
    consent: bool
    decided_at: dt.datetime
    source: Literal["api"]


class AuditRead(BaseModel):
    id: int
    read_at: dt.datetime
    key_id: str = Field(description="The API key's id (never its secret).")
    person_id: str
    route: str = Field(description="The route template the person was read through.")


class AuditPage(BaseModel):
    reads: list[AuditRead]
    next_before: int | None = Field(description="Pass as `before` for the next (older) page.")


class MailchimpAnswer(BaseModel):
    recorded: bool = Field(description="Whether the event changed a consent decision.")


def privacy_router(
    serving: ServingStore, mailchimp: MailchimpSourceSettings, max_clock_skew_seconds: float
) -> APIRouter:
    router = APIRouter(tags=["privacy"])
    skew = dt.timedelta(seconds=max_clock_skew_seconds)

    def when(decided_at: dt.datetime | None, name: str, status: int) -> dt.datetime:
        now = naive_utc_now()
        if decided_at is None:
            return now
        if naive_utc(decided_at) > now + skew:
            raise ApiError(status, _CODES[status], f"{name}: later than now")
        return naive_utc(decided_at)

    @router.put(
        "/v1/persons/{person_id}/consent",
        response_model=ConsentOut,
        responses=responses(400, 404, 422, 500, 503),
        dependencies=[requires("admin")],
    )
    async def put_consent(person_id: str, body: Annotated[ConsentIn, Body()]) -> dict[str, Any]:
        """Record a person's marketing consent now: every exit honours it at once."""
        decision = Decision(body.consent, when(body.decided_at, "decided_at", 422), "api")
        stored = await run_in_threadpool(serving.record_consent, person_id, decision)
        if stored is None:
            raise ApiError(404, "not_found", "no person with that id")
        return {
            "person_id": stored,
            "consent": decision.consent,
            "decided_at": utc(decision.decided_at),
            "source": "api",
        }

    @router.get(
        "/v1/audit",
        response_model=AuditPage,
        responses=responses(422, 500, 503),
        dependencies=[requires("admin")],
        openapi_extra={"parameters": _AUDIT_QUERY},
    )
    async def audit(request: Request) -> dict[str, Any]:
        """Recorded profile and timeline reads, newest first: of a person and/or by a key."""
        person_id = _one(request, "person_id", 40)
        key_id = _one(request, "key_id", 32)
        limit = _number(request, "limit", 1, MAX_AUDIT_PAGE) or DEFAULT_AUDIT_PAGE
        before = _number(request, "before", 1, MAX_ROW_ID)
        reads = await run_in_threadpool(serving.audited_reads, person_id, key_id, limit + 1, before)
        page = reads[:limit]
        return {
            "reads": [r.public() for r in page],
            "next_before": page[-1].id if len(reads) > limit else None,
        }

    def check_secret(request: Request) -> None:
        secret = mailchimp.webhook_secret
        if secret is None:
            raise ApiError(503, "not_configured", "sources.mailchimp.webhook_secret is not set")
        given = request.query_params.get("secret", "")
        if not hmac.compare_digest(given.encode(), secret.get_secret_value().encode()):
            raise ApiError(401, "unauthorized", "wrong or missing secret")

    @router.get(
        "/v1/webhooks/mailchimp",
        response_model=MailchimpAnswer,
        responses=responses(401, 503),
        openapi_extra={"parameters": [_SECRET]},
    )
    async def mailchimp_check(request: Request) -> dict[str, Any]:
        """Mailchimp's check of the URL when the webhook is set up."""
        check_secret(request)
        return {"recorded": False}

    @router.post(
        "/v1/webhooks/mailchimp",
        response_model=MailchimpAnswer,
        responses=responses(400, 401, 500, 503),
        openapi_extra={"parameters": [_SECRET], "requestBody": _MAILCHIMP_FORM},
    )
    async def mailchimp_event(request: Request) -> dict[str, Any]:
        """An unsubscribe (or a cleaned address) withdraws consent now; a subscribe gives it."""
        check_secret(request)
        try:
            raw = await read_body(request, MAX_FORM_BYTES, "the form")
        except Reject as exc:
            raise ApiError(exc.status, exc.code, exc.detail) from None
        form = _mailchimp_form(request, raw)
        fired_at = when(_fired_at(form.get("fired_at")), "fired_at", 400)  # absent: now
        consent = _WITHDRAWN.get(form["type"])
        wanted = mailchimp.list_id
        if consent is None or (wanted is not None and form.get("data[list_id]") != wanted):
            return {"recorded": False}
        email = normalise("email", form.get("data[email]", ""), None)
        local, _, domain = email.rpartition("@")
        if not local or not domain:
            raise ApiError(400, "bad_request", "data[email]: missing or not an address")
        decision = Decision(consent, fired_at, "mailchimp")
        await run_in_threadpool(serving.record_identifier_consent, "email", email, decision)
        return {"recorded": True}

    return router


def segment_consent(message: dict[str, Any]) -> tuple[list[tuple[str, str]], Decision] | None:
    """The consent an identify message states, for its identifiers, as of its timestamp: the
    trait ``marketing_consent`` (true or false), else Segment's consent context
    (``context.consent.categoryPreferences``, a category named ``marketing`` in any case).
    Identifiers: ``userId`` (the shop's customer id) and ``traits.email``. None: it states none."""
    traits = message.get("traits") or {}
    said = traits.get("marketing_consent")
    if not isinstance(said, bool):
        context = message.get("context") or {}
        consent = context.get("consent") if isinstance(context, dict) else None
        preferences = consent.get("categoryPreferences") if isinstance(consent, dict) else None
        said = (
            next((v for k, v in (preferences or {}).items() if k.lower() == "marketing"), None)
            if isinstance(preferences, dict)
            else None
        )
    if not isinstance(said, bool):
        return None
    identifiers = []
    if message.get("userId") not in (None, ""):
        identifiers.append(("customer_id", str(message["userId"]).strip()))
    email = traits.get("email")
    if isinstance(email, str) and "@" in email:
        identifiers.append(("email", normalise("email", email, None)))
    if not identifiers:
        return None
    at = dt.datetime.fromisoformat(str(message["timestamp"]).replace("Z", "+00:00"))
    return identifiers, Decision(said, naive_utc(at), "segment")


def record_segment_consents(serving: ServingStore, messages: list[dict[str, Any]]) -> None:
    """Store the consent every identify message states (see :func:`segment_consent`)."""
    for message in messages:
        stated = segment_consent(message)
        if stated is not None:
            identifiers, decision = stated
            for id_type, id_value in identifiers:
                serving.record_identifier_consent(id_type, id_value, decision)


def _mailchimp_form(request: Request, raw: bytes) -> dict[str, str]:
    """The webhook's form (the last of a repeated field), checked as the document says."""
    if set(request.query_params) - {"secret"}:
        raise ApiError(400, "bad_request", "unknown query parameter")
    pairs = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    form = {k: v[-1] for k, v in pairs.items()}
    if "type" not in form:
        raise ApiError(400, "bad_request", "type: missing (Mailchimp sends a form with one)")
    if len(form.get("data[email]", "")) > MAX_EMAIL:
        raise ApiError(400, "bad_request", f"data[email]: at most {MAX_EMAIL} characters")
    return form


def _one(request: Request, name: str, max_length: int) -> str | None:
    """A query parameter given at most once, of at most ``max_length`` characters."""
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise ApiError(422, "invalid_request", f"{name}: give it once")
    if values and len(values[0]) > max_length:
        raise ApiError(422, "invalid_request", f"{name}: at most {max_length} characters")
    return values[0] if values else None


def _number(request: Request, name: str, low: int, high: int) -> int | None:
    value = _one(request, name, 20)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
        raise ApiError(422, "invalid_request", f"{name}: a whole number from {low} to {high}")
    return int(value)


def _fired_at(value: str | None) -> dt.datetime | None:
    """Mailchimp's ``fired_at`` (``2009-03-26 21:35:57``, UTC), or None (then: now)."""
    if value is None:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(400, "bad_request", "fired_at: not a time") from None
