"""What the OpenAPI document says about the ingestion routes: request bodies and answers.

The collector and the webhook read raw bodies (size limits before parsing, gzip, signatures over
the exact bytes), so FastAPI cannot infer their bodies; these schemas are declared with
``openapi_extra``, built from the pydantic Segment models of :mod:`c360.contracts.segment`
(the per-type fields) and completed with the rules those models enforce in code: an
identifier may be a number (made text) and must hold no NUL; one of ``anonymousId`` and
``userId`` is needed; ``messageId`` and ``timestamp`` may be left out (the collector fills them);
the money fields of :data:`~c360.contracts.segment.MONEY_FIELDS` are plausible amounts. Two rules
no JSON Schema can state are in the descriptions: an event time no later than the receive time
plus ``events.max_clock_skew_seconds`` (after the ``sentAt`` correction), and the byte limits.

Answers: ``200`` with :class:`Accepted` / :class:`BatchAccepted`, errors in Segment's shape
with a code (:class:`CollectorError`), every status a route can answer listed by
:func:`ingest_responses`. The read routes' comma-separated list parameters, which they parse
themselves, are declared with :func:`comma_separated`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from c360.contracts.money import MAX_AMOUNT
from c360.contracts.segment import (
    MAX_ANONYMOUS_ID,
    MAX_MESSAGE_ID,
    MAX_USER_ID,
    MESSAGE_TYPES,
    MONEY_FIELDS,
)
from c360.contracts.zendesk import EVENT_PREFIX, MAX_SAFE_INTEGER
from c360.contracts.zendesk import MAX_USER_ID as MAX_ZENDESK_ID


class Accepted(BaseModel):
    """The message is durable in the event log."""

    success: Literal[True]


class Rejected(BaseModel):
    index: int = Field(description="The item's position in `batch`.")
    reason: str


class BatchAccepted(Accepted):
    """The valid items are durable in the event log; the invalid ones are listed."""

    accepted: int
    rejected: list[Rejected] = Field(description="The first 100 rejected items.")
    rejected_count: int


class WebhookAccepted(Accepted):
    duplicate: bool | None = Field(
        None, description="True: an exact replay of a request already accepted; not stored again."
    )


class CollectorError(BaseModel):
    """Segment's error body, with a machine-readable code beside its ``detail``."""

    model_config = ConfigDict(extra="allow")

    success: Literal[False]
    code: str = Field(
        description="invalid_json, invalid_encoding, payload_too_large, invalid_message, "
        "invalid_event, unauthorized, not_configured, log_unavailable, log_refused, log_failed"
    )
    detail: str = Field(description="What went wrong, for people.")
    accepted: int | None = Field(None, description="A batch with no valid item: 0.")
    rejected: list[Rejected] | None = None
    rejected_count: int | None = None


_ERRORS = {
    400: "The body is not JSON, too large, badly encoded, or not a valid message (`code`).",
    401: "No valid credentials: the write key (collector) or the signature (webhook).",
    500: "The event log refused the events (ACLs, configuration): retrying will not help.",
    503: "The route is not configured, or the event log is unavailable (then `Retry-After`).",
}


def ingest_responses(ok: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """Every status an ingestion route answers, in Segment's shape."""
    answers: dict[int | str, dict[str, Any]] = {
        200: {"model": ok, "description": ok.__doc__ or "Accepted."}
    }
    for status, description in _ERRORS.items():
        answers[status] = {"model": CollectorError, "description": description}
    return answers


# -- request bodies ------------------------------------------------------------------------------

_NO_NUL = "^[^\\u0000]*$"
# Zendesk's numeric ids: integers JSON parsers read exactly (c360.contracts.zendesk).
_JSON_INTEGER = {"type": "integer", "minimum": -MAX_SAFE_INTEGER, "maximum": MAX_SAFE_INTEGER}


def _identifier(max_length: int) -> dict[str, Any]:
    """Text without NUL, or a number (stored as text); empty or null counts as absent."""
    return {
        "anyOf": [
            {"type": "string", "maxLength": max_length, "pattern": _NO_NUL},
            {"type": "number"},
            {"type": "null"},
        ]
    }


def _present(name: str) -> dict[str, Any]:
    return {"required": [name], "properties": {name: {"not": {"enum": ["", None]}}}}


_AMOUNT = {
    "anyOf": [{"type": "number", "minimum": 0, "maximum": MAX_AMOUNT}, {"type": "null"}],
    "description": f"An amount from 0 to {MAX_AMOUNT:,}; a numeric string is read too.",
}

_TIMESTAMP_RULE = (
    "ISO-8601, within years 1-9999 once in UTC. Missing: the receive time. With `sentAt`, "
    "corrected as Segment does to `receivedAt - (sentAt - timestamp)` (the client's value "
    "kept as `originalTimestamp`); later than the receive time plus "
    "`events.max_clock_skew_seconds` is refused."
)


def _common() -> dict[str, Any]:
    return {
        "messageId": {
            "anyOf": [{"type": "string", "maxLength": MAX_MESSAGE_ID}, {"type": "null"}],
            "description": "Missing or empty: a uuid4 is given.",
        },
        "timestamp": {
            "anyOf": [{"type": "string", "format": "date-time"}, {"const": ""}, {"type": "null"}],
            "description": _TIMESTAMP_RULE,
        },
        "sentAt": {
            "description": "The client's clock when it sent the request (ISO-8601): corrects "
            "`timestamp`; any other value is kept and corrects nothing."
        },
        "anonymousId": _identifier(MAX_ANONYMOUS_ID),
        "userId": _identifier(MAX_USER_ID),
        "context": {"anyOf": [{"type": "object"}, {"type": "null"}]},
        "integrations": {"description": "Kept as sent (an object, by Segment's spec)."},
        "writeKey": {"description": "The write key when none is sent as HTTP Basic; dropped."},
    }


def _money_rules() -> list[dict[str, Any]]:
    """``if event is X then properties.F is an amount``, for each event that carries money."""
    rules = []
    for event, fields in MONEY_FIELDS.items():
        amounts = {"type": "object", "properties": dict.fromkeys(fields, _AMOUNT)}
        rules.append(
            {
                "if": {"required": ["event"], "properties": {"event": {"const": event}}},
                "then": {"properties": {"properties": {"anyOf": [amounts, {"type": "null"}]}}},
            }
        )
    return rules


def message_schema(kind: str, *, in_batch: bool) -> dict[str, Any]:
    """The JSON Schema of one ``kind`` message, from its pydantic model and the rules above."""
    model = MESSAGE_TYPES[kind]
    generated = model.model_json_schema(by_alias=True, mode="validation")
    own = {
        name: {k: v for k, v in spec.items() if k not in ("title", "default")}
        for name, spec in generated["properties"].items()
    }
    properties = {**own, **_common()}
    required = [name for name in generated.get("required", []) if name not in _common()]
    if in_batch:
        properties["type"] = {"const": kind}
        required.append("type")
    else:
        properties["type"] = {"description": f"Set by the path to {kind!r}, whatever is sent."}
    rules: list[dict[str, Any]] = []
    if kind == "alias":
        properties["userId"] = {
            "anyOf": [{"type": "string", "pattern": _NO_NUL}, {"type": "number"}]
        }
        properties["userId"]["anyOf"][0] |= {"minLength": 1, "maxLength": MAX_USER_ID}
        required.append("userId")
    else:
        rules.append({"anyOf": [_present("anonymousId"), _present("userId")]})
    if kind == "group":
        properties["groupId"] = {"anyOf": [{"type": "string", "minLength": 1}, {"type": "number"}]}
    if kind == "track":
        rules.extend(_money_rules())
    schema: dict[str, Any] = {
        "type": "object",
        "title": f"{kind.capitalize()}Message",
        "properties": properties,
        "required": sorted(set(required)),
    }
    if rules:
        schema["allOf"] = rules
    return schema


def collector_body(kind: str) -> dict[str, Any]:
    """``openapi_extra`` of ``POST /v1/<kind>``."""
    return _body(message_schema(kind, in_batch=False))


def batch_body() -> dict[str, Any]:
    """``openapi_extra`` of ``POST /v1/batch``."""
    items = [message_schema(kind, in_batch=True) for kind in MESSAGE_TYPES]
    schema = {
        "type": "object",
        "title": "Batch",
        "required": ["batch"],
        "properties": {
            "batch": {
                "type": "array",
                "description": "Messages, each with its `type`. The valid ones are stored and "
                "the others listed in `rejected` (200); none valid at all is a 400.",
                "anyOf": [{"maxItems": 0}, {"contains": {"oneOf": items}}],
            },
            "context": {"description": "An object: merged under each item's own (else ignored)."},
            "integrations": {"description": "An object: merged under each item's own."},
            "sentAt": {
                "description": "The client's clock (ISO-8601): each item's, unless its own."
            },
            "writeKey": {"description": "The write key when none is sent as HTTP Basic."},
        },
    }
    return _body(schema)


def zendesk_body() -> dict[str, Any]:
    """``openapi_extra`` of ``POST /v1/webhooks/zendesk``: one event-webhook payload."""

    def zendesk_id(max_length: int | None = None) -> dict[str, Any]:
        text: dict[str, Any] = {"type": "string", "minLength": 1, "pattern": _NO_NUL}
        if max_length is not None:
            text["maxLength"] = max_length
        return {"anyOf": [text, _JSON_INTEGER]}

    def event(kind: str, ids: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["type", "id", "time", "detail"],
            "properties": {
                "type": {"type": "string", "pattern": f"^{EVENT_PREFIX}{kind}\\."},
                "id": zendesk_id(),
                "time": {
                    "type": "string",
                    "format": "date-time",
                    "description": "Within years 1-9999 once in UTC, and no later than the "
                    "server clock plus `events.max_clock_skew_seconds`.",
                },
                "detail": {"type": "object", "required": sorted(ids), "properties": ids},
            },
        }

    ticket = event("ticket", {"id": zendesk_id(), "requester_id": zendesk_id(MAX_ZENDESK_ID)})
    user = event("user", {"id": zendesk_id(MAX_ZENDESK_ID)})
    schema = {"oneOf": [ticket, user]}
    return _body(schema | {"title": "ZendeskEvent"})


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def comma_separated(
    name: str, values: Sequence[str], description: str, example: list[str] | None = None
) -> dict[str, Any]:
    """An optional query parameter holding a comma-separated list of ``values`` (``a,b``)."""
    parameter: dict[str, Any] = {
        "name": name,
        "in": "query",
        "required": False,
        "style": "form",
        "explode": False,
        "schema": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "enum": list(values)},
        },
        "description": description,
    }
    if example is not None:
        parameter["example"] = example
    return parameter
