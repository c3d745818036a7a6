"""The speed layer's Segment decoder: raw bytes from the event log → a light :class:`ClickEvent`.

:func:`decode_click` accepts and rejects exactly what :func:`c360.contracts.segment.decode` does
(the collector's rules), with the same reasons, but answers the common well-formed message
from a fast path and gives the speed layer only what it reads, with the event time already in
integer epoch **microseconds** (the pure updates compare and add integers, never datetimes).

The fast path: msgspec checks the common shapes in C and skips what the speed layer does not
read (``context``, ``traits`` and page properties are only checked to be objects); the timestamp
is checked to be one of the forms Segment's libraries send (``YYYY-MM-DDTHH:MM:SS``, then
nothing, ``.fff`` or ``.ffffff``, then ``Z`` or ``+00:00``) by its length and a few fixed
characters, and parsed by ``datetime.fromisoformat`` (in C). Anything it cannot vouch for goes
through pydantic (:func:`~c360.contracts.segment.validate`), so the answer is the same either
way; a unit test holds the two paths to that. (One known difference: a track property beyond a
64-bit integer stays an int where orjson gives a float.)

**Plausibility.** Every decoder takes ``not_after``, the latest plausible event time in epoch
microseconds: an event time after it is refused with the schema's reason (the fast path hands
such a message to pydantic, which words it), as is implausible money
(:func:`~c360.contracts.segment.money_problem`, checked by both paths: a dict lookup per track
event). The stream worker passes each record's **append time** in the log plus
``events.max_clock_skew_seconds``, not the wall clock: the append time is stored with the
record, so every decode of a record — the live one, a retry after a crash, a state rebuild from
offset 0 a month later — gives the same answer, which the exactly-once argument of
:mod:`c360.pipeline.stream_worker` needs (``update`` must recompute the very same rows); live,
the append time is the receive time give or take the log's latency. Replays of history are
appended now with event times in the past and pass. :data:`NO_LIMIT` turns the check off (a
record whose append time is unknown).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any

import msgspec
import orjson

from c360.contracts import reasons
from c360.contracts.money import MAX_AMOUNT, plausible_amount
from c360.contracts.segment import (
    MAX_ANONYMOUS_ID,
    MAX_MESSAGE_ID,
    MAX_USER_ID,
    MONEY_FIELDS,
    InvalidMessage,
    SegmentMessage,
    Track,
    validate,
)
from c360.contracts.times import EPOCH, epoch_us, from_epoch_us

NO_PROPERTIES: Mapping[str, Any] = MappingProxyType({})
_EPOCH = EPOCH
_US = dt.timedelta(microseconds=1)
_MAX_AMOUNT = float(MAX_AMOUNT)
# Beyond any event time (datetime.max): ``not_after`` that checks nothing.
NO_LIMIT = epoch_us(dt.datetime.max.replace(tzinfo=dt.UTC))


class ClickEvent(msgspec.Struct, frozen=True, gc=False):
    """The fields of a valid Segment message the speed layer reads (built in C, immutable)."""

    type: str
    message_id: str
    at: int  # the message timestamp, epoch microseconds (UTC)
    anonymous_id: str | None
    user_id: str | None
    label: str  # the track event name, else the message type
    properties: Mapping[str, Any]  # a track event's properties, else NO_PROPERTIES; read-only

    @classmethod
    def of(cls, message: SegmentMessage) -> ClickEvent:
        properties = message.properties if isinstance(message, Track) else None
        return cls(
            message.type,
            message.message_id,
            epoch_us(message.timestamp),
            message.anonymous_id,
            message.user_id,
            message.label,
            properties if properties is not None else NO_PROPERTIES,
        )


class _Object(msgspec.Struct):
    """Any JSON object; its fields are skipped."""


class _Fast(msgspec.Struct, tag_field="type", kw_only=True):
    messageId: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_MESSAGE_ID)]
    timestamp: Annotated[str, msgspec.Meta(min_length=20, max_length=32)]
    anonymousId: Annotated[str, msgspec.Meta(max_length=MAX_ANONYMOUS_ID)] | None = None
    userId: Annotated[str, msgspec.Meta(max_length=MAX_USER_ID)] | None = None
    context: _Object | None = None
    # populate_by_name: pydantic also reads these field names; such payloads take the slow path.
    message_id: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    anonymous_id: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    user_id: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class _FastTrack(_Fast, tag="track"):
    event: Annotated[str, msgspec.Meta(min_length=1)]
    # Integers beyond 64 bits stay int here (orjson makes them float); the speed layer's
    # property readers treat both alike.
    properties: dict[str, Any] | None = None


class _FastPage(_Fast, tag="page"):
    name: str | None = None
    properties: _Object | None = None


class _FastScreen(_Fast, tag="screen"):
    name: str | None = None
    properties: _Object | None = None


class _FastIdentify(_Fast, tag="identify"):
    traits: _Object | None = None


class _FastAlias(_Fast, tag="alias"):
    previousId: Annotated[str, msgspec.Meta(min_length=1)]
    previous_id: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


_KINDS: dict[type[_Fast], str] = {
    _FastTrack: "track",
    _FastPage: "page",
    _FastScreen: "screen",
    _FastIdentify: "identify",
    _FastAlias: "alias",
}
_DECODER = msgspec.json.Decoder(_FastTrack | _FastPage | _FastScreen | _FastIdentify | _FastAlias)
_UNSET = msgspec.UNSET
_fromisoformat = dt.datetime.fromisoformat
# By length: the characters at 4, 7, 10, 13, 16 and 19 (text[4:20:3]) and the zone suffix.
_UTC_FORMS = {
    20: ("--T::Z", "Z"),  # 2025-03-01T10:00:00Z
    24: ("--T::.", "Z"),  # 2025-03-01T10:00:00.250Z
    27: ("--T::.", "Z"),  # 2025-03-01T10:00:00.250000Z
    25: ("--T::+", "+00:00"),  # 2025-03-01T10:00:00+00:00
    29: ("--T::.", "+00:00"),
    32: ("--T::.", "+00:00"),
}


def fast_click(raw: bytes | str, not_after: int) -> ClickEvent | None:
    """The event of a common, valid message; None when :func:`validate` must decide.

    ``not_after``: the latest plausible event time, epoch microseconds (see the module docs).
    """
    try:
        message = _DECODER.decode(raw)
    except (msgspec.DecodeError, RecursionError):  # not JSON, another type, too deep, ...
        return None
    if (
        message.message_id is not _UNSET
        or message.anonymous_id is not _UNSET
        or message.user_id is not _UNSET
    ):
        return None
    text = message.timestamp  # one of the forms of _UTC_FORMS, else pydantic decides
    form = _UTC_FORMS.get(len(text))
    if form is None or text[4:20:3] != form[0] or not text.endswith(form[1]):
        return None
    try:
        # Only digits are left unchecked: fromisoformat's C parser wants ASCII digits in
        # valid ranges, as pydantic does.
        at = (_fromisoformat(text) - _EPOCH) // _US
    except ValueError:  # e.g. month 13: pydantic words the reason
        return None
    if at > not_after:  # in the future: pydantic words the reason
        return None
    anonymous_id = message.anonymousId or None  # empty is absent
    user_id = message.userId or None
    if anonymous_id is None:
        if user_id is None or "\x00" in user_id:
            return None
    elif "\x00" in anonymous_id or (user_id is not None and "\x00" in user_id):
        return None
    if type(message) is _FastTrack:
        properties = message.properties
        if properties and message.event in MONEY_FIELDS:
            for name in MONEY_FIELDS[message.event]:
                value = properties.get(name)
                if value is None or (type(value) is float and 0.0 <= value <= _MAX_AMOUNT):
                    continue  # absent, or the common case, without a call
                if not plausible_amount(value):
                    return None  # implausible money: pydantic words the reason
        return ClickEvent(
            "track",
            message.messageId,
            at,
            anonymous_id,
            user_id,
            message.event,
            properties if properties is not None else NO_PROPERTIES,
        )
    kind = _KINDS[type(message)]
    if isinstance(message, _FastAlias) and (user_id is None or message.previous_id is not _UNSET):
        return None  # an alias without userId: pydantic words the reason
    return ClickEvent(kind, message.messageId, at, anonymous_id, user_id, kind, NO_PROPERTIES)


def decode_click(raw: bytes | str, not_after: int) -> ClickEvent:
    """The speed layer's event of one raw message; :class:`InvalidMessage` (with the reason
    :func:`~c360.contracts.segment.decode` gives) if the message breaks the Segment Spec or is
    implausible (an event time after ``not_after``, epoch microseconds; money out of range)."""
    return fast_click(raw, not_after) or slow_click(raw, not_after)


def slow_click(raw: bytes | str, not_after: int) -> ClickEvent:
    """:func:`decode_click` through pydantic only (what the fast path hands over)."""
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidMessage(f"not JSON: {exc}", reasons.NOT_JSON) from None
    limit = None if not_after >= NO_LIMIT else from_epoch_us(not_after)
    return ClickEvent.of(validate(payload, not_after=limit))
