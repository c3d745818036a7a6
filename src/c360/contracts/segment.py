"""Segment messages: decode and validate one message of the Segment Spec.

:func:`decode` turns the raw bytes of one message (as sent to ``/v1/track`` … or read from the
event log) into a typed, frozen :class:`SegmentMessage`, or raises :class:`InvalidMessage`
whose ``reason`` says what is wrong (the speed layer stores it in ``dead_letter``).

Rules, beyond JSON well-formedness:

- every message: ``type`` (track, page, screen, identify, alias, group), ``messageId``,
  ``timestamp`` (an ISO-8601 string; without an offset it is taken as UTC), and ``anonymousId``
  or ``userId`` (empty strings count as absent; numbers are accepted and become strings);
- track: ``event``; alias: ``previousId`` and ``userId``; group: ``groupId``;
- identifiers fit the serving columns that hold them (``realtime_state``) and hold no NUL
  character (PostgreSQL text cannot);
- **money is plausible** (:mod:`c360.contracts.money`): the amounts the speed layer adds up —
  ``properties.total`` and ``revenue`` of ``Order Completed``, ``properties.price`` of ``Product
  Added`` / ``Product Removed`` (:data:`MONEY_FIELDS`) — are absent, null, or an amount from 0
  to :data:`~c360.contracts.money.MAX_AMOUNT`; anything else makes the message invalid, with a
  reason naming the field;
- **the event time is plausible** when the caller says when the message was received:
  ``validate(payload, not_after=…)`` refuses a ``timestamp`` later than ``not_after`` (the
  receive time plus ``events.max_clock_skew_seconds``). The collector first corrects the
  client's clock from ``sentAt`` as Segment does (:func:`corrected_timestamp`); the speed layer
  passes the record's append time (:mod:`c360.speed.events`).

Unknown extra fields are ignored: the Spec lets clients add their own.

The speed layer decodes with :func:`c360.speed.events.decode_click`: the same rules (a fast
path for the common message, :func:`validate` for the rest), a lighter result.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from c360.contracts import reasons
from c360.contracts.money import AMOUNT_RULE, plausible_amount
from c360.contracts.times import utc
from c360.errors import DataError

# Lengths of the realtime_state columns that store these values (asserted by a unit test).
MAX_ANONYMOUS_ID = 320
MAX_USER_ID = 64
MAX_MESSAGE_ID = 256

# Segment's e-commerce spec v2: the events the speed layer reads money from, and those fields.
PRODUCT_VIEWED = "Product Viewed"
PRODUCT_ADDED = "Product Added"
PRODUCT_REMOVED = "Product Removed"
ORDER_COMPLETED = "Order Completed"
MONEY_FIELDS: Mapping[str, tuple[str, ...]] = {
    ORDER_COMPLETED: ("total", "revenue"),
    PRODUCT_ADDED: ("price",),
    PRODUCT_REMOVED: ("price",),
}
# The validation context key of the latest plausible event time (an aware datetime).
NOT_AFTER: Final = "not_after"
SKEW_SETTING = "events.max_clock_skew_seconds"


class InvalidMessage(DataError):
    """A message that breaks the Segment Spec; ``reason`` is what goes to the dead letters,
    ``code`` (one of :data:`c360.contracts.reasons.CODES`) what is counted."""

    def __init__(self, reason: str, code: str) -> None:
        self.reason = reason
        self.code = code
        super().__init__(reason)


# Pydantic error types (ours, and its own) and the code of a message they make invalid.
_CODES = {
    "missing": reasons.MISSING_FIELD,
    "missing_id": reasons.MISSING_FIELD,
    "future_time": reasons.FUTURE_TIME,
    "implausible_money": reasons.IMPLAUSIBLE_MONEY,
}


def _empty_is_absent(value: object) -> object:
    return None if value == "" else value


def _iso8601(value: object) -> object:
    # pydantic also reads "1740823200" as seconds since the epoch: not ISO-8601, so not here.
    if not isinstance(value, str) or value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raise ValueError("must be an ISO-8601 string")
    return value


def _not_in_the_future(value: dt.datetime, info: ValidationInfo) -> dt.datetime:
    limit = info.context.get(NOT_AFTER) if isinstance(info.context, dict) else None
    if limit is not None and value > limit:
        raise _error("future_time", future_reason(None, value, limit))
    return value


def _error(kind: str, reason: str) -> PydanticCustomError:
    """A validation error of our own type (its code, :data:`_CODES`); the reason goes in as
    context, as it may quote the message (braces included)."""
    return PydanticCustomError(kind, "{reason}", {"reason": reason})


def future_reason(field: str | None, value: dt.datetime, limit: dt.datetime) -> str:
    """The reason an event time after ``limit`` is refused (the same words for every source)."""
    what = f"{field} " if field else ""
    return (
        f"{what}{iso_utc(value)} is after {iso_utc(limit)}: later than its receive time plus "
        f"the allowed clock skew ({SKEW_SETTING})"
    )


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


# Identifiers become keys of the serving store (PostgreSQL text cannot hold NUL).
_AnonymousIdText = Annotated[
    str,
    Field(min_length=1, max_length=MAX_ANONYMOUS_ID, coerce_numbers_to_str=True),
    AfterValidator(_no_nul),
]
_UserIdText = Annotated[
    str,
    Field(min_length=1, max_length=MAX_USER_ID, coerce_numbers_to_str=True),
    AfterValidator(_no_nul),
]


def _in_utc(value: dt.datetime) -> dt.datetime:
    try:
        return utc(value)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the calendar's start in UTC
        raise ValueError("is outside the calendar once converted to UTC") from None


EventTime = Annotated[
    dt.datetime,
    BeforeValidator(_iso8601),
    AfterValidator(_in_utc),
    AfterValidator(_not_in_the_future),
]
AnonymousId = Annotated[_AnonymousIdText | None, BeforeValidator(_empty_is_absent)]
UserId = Annotated[_UserIdText | None, BeforeValidator(_empty_is_absent)]
Name = Annotated[str, Field(min_length=1)]


class SegmentMessage(BaseModel):
    """Fields every Segment message shares; one subclass per ``type``."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    type: str
    message_id: str = Field(alias="messageId", min_length=1, max_length=MAX_MESSAGE_ID)
    timestamp: EventTime
    anonymous_id: AnonymousId = Field(None, alias="anonymousId")
    user_id: UserId = Field(None, alias="userId")
    context: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _someone(self) -> SegmentMessage:
        if self.anonymous_id is None and self.user_id is None:
            raise _error("missing_id", "needs anonymousId or userId")
        return self

    @property
    def label(self) -> str:
        """What kind of event this is: the track event name, else the message type."""
        return self.type

    @property
    def routing_key(self) -> str:
        """The event-log key: anonymousId, else userId (see :func:`routing_key`)."""
        return self.anonymous_id or self.user_id or ""


class Track(SegmentMessage):
    type: Literal["track"] = "track"
    event: Name
    properties: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _plausible_money(self) -> Track:
        problem = money_problem(self.event, self.properties)
        if problem is not None:
            raise _error("implausible_money", problem)
        return self

    @property
    def label(self) -> str:
        return self.event


def money_problem(event: str, properties: Mapping[str, Any] | None) -> str | None:
    """Why the money of a track event is implausible (the reason), or None when it is fine.

    Only the fields of :data:`MONEY_FIELDS` are checked; an absent or null field is fine (the
    speed layer then falls back, e.g. from ``total`` to ``revenue``). O(1): a dict lookup for
    every track event, one or two more for the events that carry money.
    """
    fields = MONEY_FIELDS.get(event)
    if fields is None or not properties:
        return None
    for name in fields:
        value = properties.get(name)
        if value is not None and not plausible_amount(value):
            return f"properties.{name} of {event!r} must be {AMOUNT_RULE}"
    return None


class Page(SegmentMessage):
    type: Literal["page"] = "page"
    name: str | None = None
    properties: dict[str, Any] | None = None


class Screen(SegmentMessage):
    type: Literal["screen"] = "screen"
    name: str | None = None
    properties: dict[str, Any] | None = None


class Identify(SegmentMessage):
    type: Literal["identify"] = "identify"
    traits: dict[str, Any] | None = None


class Alias(SegmentMessage):
    type: Literal["alias"] = "alias"
    previous_id: str = Field(alias="previousId", min_length=1)
    user_id: _UserIdText = Field(alias="userId")


class Group(SegmentMessage):
    type: Literal["group"] = "group"
    group_id: Annotated[str, Field(min_length=1, coerce_numbers_to_str=True)] = Field(
        alias="groupId"
    )
    traits: dict[str, Any] | None = None


MESSAGE_TYPES: dict[str, type[SegmentMessage]] = {
    cls.model_fields["type"].default: cls for cls in (Track, Page, Screen, Identify, Alias, Group)
}


def decode(raw: bytes | str, *, not_after: dt.datetime | None = None) -> SegmentMessage:
    """The typed message in ``raw`` (one JSON object); :class:`InvalidMessage` if it is not."""
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidMessage(f"not JSON: {exc}", reasons.NOT_JSON) from None
    return validate(payload, not_after=not_after)


_TYPE_WORD = re.compile(r"[a-z][a-z_]{0,31}")


def validate(payload: object, *, not_after: dt.datetime | None = None) -> SegmentMessage:
    """The typed message for an already parsed JSON value.

    ``not_after`` (aware): the latest plausible event time — the time the message was received
    plus the allowed clock skew; a later ``timestamp`` makes the message invalid. None: no check
    (the receive time is not known).
    """
    if not isinstance(payload, dict):
        raise InvalidMessage(
            f"not a JSON object (got {type(payload).__name__})", reasons.NOT_OBJECT
        )
    kind = payload.get("type")
    if kind is None:
        raise InvalidMessage("missing field 'type'", reasons.UNKNOWN_TYPE)
    model = MESSAGE_TYPES.get(kind) if isinstance(kind, str) else None
    if model is None:
        expected = ", ".join(sorted(MESSAGE_TYPES))
        # a word is named; anything else (an address sent as the type) is not written down
        shown = repr(kind) if isinstance(kind, str) and _TYPE_WORD.fullmatch(kind) else "value"
        raise InvalidMessage(
            f"unknown type {shown}; expected one of {expected}", reasons.UNKNOWN_TYPE
        )
    context = None if not_after is None else {NOT_AFTER: not_after}
    try:
        return model.model_validate(payload, context=context)
    except ValidationError as exc:
        raise InvalidMessage(f"{kind}: {_reasons(exc)}", _code(exc)) from None


def _code(exc: ValidationError) -> str:
    """The code of the first error (the one the reason names first)."""
    first = exc.errors(include_url=False)[0]["type"]
    return _CODES.get(first, reasons.INVALID_FIELD)


def _reasons(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False)[:3]:
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "required"
        parts.append(f"{where}: {message}" if where else message)
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


_CLIENT_TIME: TypeAdapter[dt.datetime] = TypeAdapter(
    Annotated[dt.datetime, BeforeValidator(_iso8601), AfterValidator(_in_utc)]
)


def client_time(value: object) -> dt.datetime | None:
    """A client's ISO-8601 time (``timestamp``, ``sentAt``) as aware UTC, or None if it is not
    one (the same rules as ``timestamp``)."""
    try:
        return _CLIENT_TIME.validate_python(value)
    except ValidationError:
        return None


def corrected_timestamp(
    timestamp: object, sent_at: object, received_at: dt.datetime
) -> dt.datetime | None:
    """Segment's clock-skew correction: ``receivedAt - (sentAt - originalTimestamp)``.

    ``sentAt`` is the client's clock when it sent the request and ``receivedAt`` the server's when
    it arrived; they are taken to be the same instant, so their difference is the client clock's
    error, and the event time read on that clock is moved by it. An event queued offline for an
    hour stays an hour before the send; a phone whose clock runs a year ahead has its events
    moved back a year. None when either time is not an ISO-8601 time, or the result is outside
    the calendar: the message keeps its timestamp (and a future one is then refused).
    """
    original, sent = client_time(timestamp), client_time(sent_at)
    if original is None or sent is None:
        return None
    try:
        return received_at - (sent - original)
    except OverflowError:
        return None


def iso_utc(value: dt.datetime) -> str:
    """An aware time as Segment writes it: ISO-8601 in UTC with ``Z``, milliseconds (or
    microseconds when it has them)."""
    spec = "milliseconds" if value.microsecond % 1000 == 0 else "microseconds"
    return value.astimezone(dt.UTC).isoformat(timespec=spec).replace("+00:00", "Z")


def routing_key(payload: object) -> str:
    """The event-log key of a parsed message, valid or not: anonymousId, else userId, else "".

    Agrees with :attr:`SegmentMessage.routing_key` for every valid message, so all events of
    one identifier land in one partition.
    """
    if not isinstance(payload, Mapping):
        return ""
    for field in ("anonymousId", "userId"):
        value = payload.get(field)
        if isinstance(value, bool):
            continue
        if isinstance(value, str) and value:
            return value
        if isinstance(value, int | float):
            return str(value)
    return ""
