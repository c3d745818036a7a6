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
  character (PostgreSQL text cannot).

Unknown extra fields are ignored: the Spec lets clients add their own.

The speed layer decodes with :func:`c360.speed.events.decode_click`: the same rules (a fast
path for the common message, :func:`validate` for the rest), a lighter result.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from c360.contracts.times import utc
from c360.errors import DataError

# Lengths of the realtime_state columns that store these values (asserted by a unit test).
MAX_ANONYMOUS_ID = 320
MAX_USER_ID = 64
MAX_MESSAGE_ID = 256


class InvalidMessage(DataError):
    """A message that breaks the Segment Spec; ``reason`` is what goes to the dead letters."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def _empty_is_absent(value: object) -> object:
    return None if value == "" else value


def _iso8601(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("must be an ISO-8601 string")
    return value


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
EventTime = Annotated[dt.datetime, BeforeValidator(_iso8601), AfterValidator(utc)]
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
            raise ValueError("needs anonymousId or userId")
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

    @property
    def label(self) -> str:
        return self.event


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


def decode(raw: bytes | str) -> SegmentMessage:
    """The typed message in ``raw`` (one JSON object); :class:`InvalidMessage` if it is not."""
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidMessage(f"not JSON: {exc}") from None
    return validate(payload)


def validate(payload: object) -> SegmentMessage:
    """The typed message for an already parsed JSON value."""
    if not isinstance(payload, dict):
        raise InvalidMessage(f"not a JSON object (got {type(payload).__name__})")
    kind = payload.get("type")
    if kind is None:
        raise InvalidMessage("missing field 'type'")
    model = MESSAGE_TYPES.get(kind) if isinstance(kind, str) else None
    if model is None:
        expected = ", ".join(sorted(MESSAGE_TYPES))
        raise InvalidMessage(f"unknown type {kind!r}; expected one of {expected}")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise InvalidMessage(f"{kind}: {_reasons(exc)}") from None


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
