"""Decoding and validating Segment messages; every failure has a reason for the dead letters."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest

from c360.contracts.segment import (
    MAX_ANONYMOUS_ID,
    MAX_USER_ID,
    Alias,
    Group,
    Identify,
    InvalidMessage,
    Page,
    Screen,
    Track,
    decode,
    routing_key,
)
from c360.contracts.serving import realtime_state

BASE = {"messageId": "m-1", "timestamp": "2025-03-01T10:00:00.250Z", "anonymousId": "anon-1"}


def _raw(**fields: Any) -> bytes:
    message = {**BASE, **fields}
    return orjson.dumps({k: v for k, v in message.items() if v is not ...})


@pytest.mark.parametrize(
    ("fields", "model"),
    [
        ({"type": "track", "event": "Product Viewed", "properties": {"sku": "A1"}}, Track),
        ({"type": "page", "name": "Home"}, Page),
        ({"type": "screen"}, Screen),
        ({"type": "identify", "userId": "42", "traits": {"email": "a@b.c"}}, Identify),
        ({"type": "identify", "anonymousId": ..., "userId": "42"}, Identify),
        ({"type": "alias", "previousId": "anon-1", "userId": "42"}, Alias),
        ({"type": "group", "groupId": "g1"}, Group),
    ],
)
def test_valid_messages_decode_to_their_type(fields: dict[str, Any], model: type) -> None:
    message = decode(_raw(**fields))
    assert type(message) is model
    assert message.message_id == "m-1"
    assert message.timestamp == dt.datetime(2025, 3, 1, 10, 0, 0, 250_000, tzinfo=dt.UTC)


def test_fields_and_labels() -> None:
    track = decode(_raw(type="track", event="Order Completed", userId="42", extra={"x": 1}))
    assert isinstance(track, Track)
    assert (track.label, track.anonymous_id, track.user_id) == ("Order Completed", "anon-1", "42")
    assert decode(_raw(type="page")).label == "page"
    alias = decode(_raw(type="alias", previousId="anon-0", userId="42"))
    assert isinstance(alias, Alias)
    assert (alias.previous_id, alias.user_id) == ("anon-0", "42")


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("2025-03-01T12:00:00+02:00", dt.datetime(2025, 3, 1, 10, tzinfo=dt.UTC)),
        ("2025-03-01T10:00:00", dt.datetime(2025, 3, 1, 10, tzinfo=dt.UTC)),  # no offset: UTC
        ("2025-03-01", dt.datetime(2025, 3, 1, tzinfo=dt.UTC)),
    ],
)
def test_timestamps_become_utc(timestamp: str, expected: dt.datetime) -> None:
    assert decode(_raw(type="page", timestamp=timestamp)).timestamp == expected


def test_numeric_ids_become_strings_and_empty_ids_are_absent() -> None:
    message = decode(_raw(type="page", anonymousId="", userId=42))
    assert (message.anonymous_id, message.user_id, message.routing_key) == (None, "42", "42")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "not JSON: "),
        (b"\x00\xff", "not JSON: "),
        (b"", "not JSON: "),
        (b"[1, 2]", "not a JSON object (got list)"),
        (b'"track"', "not a JSON object (got str)"),
        (_raw(type=...), "missing field 'type'"),
        (_raw(type="purchase"), "unknown type 'purchase'; expected one of alias, group, identify"),
        (_raw(type=7), "unknown type value; expected"),
        (_raw(type="a@b.example"), "unknown type value; expected"),
        (_raw(type="track"), "track: event: required"),
        (_raw(type="track", event=""), "track: event: String should have at least 1 character"),
        (_raw(type="page", messageId=...), "page: messageId: required"),
        (_raw(type="page", timestamp=...), "page: timestamp: required"),
        (_raw(type="page", timestamp="yesterday"), "page: timestamp: Input should be a valid"),
        (_raw(type="page", timestamp=1740823200), "page: timestamp: must be an ISO-8601 string"),
        (_raw(type="page", timestamp="2025-02-30T00:00:00Z"), "page: timestamp: Input should"),
        (_raw(type="page", anonymousId=...), "page: needs anonymousId or userId"),
        (_raw(type="identify", anonymousId="", userId=""), "identify: needs anonymousId or userId"),
        (_raw(type="identify", anonymousId=..., userId={"id": 1}), "identify: userId: Input"),
        (_raw(type="alias", userId="42"), "alias: previousId: required"),
        (_raw(type="alias", previousId="anon-1"), "alias: userId: required"),
        (_raw(type="group"), "group: groupId: required"),
        (_raw(type="page", anonymousId="x" * 321), "page: anonymousId: String should have at most"),
        (_raw(type="page", userId="9" * 65), "page: userId: String should have at most 64"),
        (
            _raw(type="track", messageId=..., timestamp=..., userId=[1]),
            "track: messageId: required; timestamp: required; userId: Input should be a valid "
            "string (and 1 more)",
        ),
    ],
)
def test_invalid_messages_have_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidMessage) as caught:
        decode(raw)
    assert caught.value.reason.startswith(reason), caught.value.reason


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        ({"anonymousId": "a", "userId": "u"}, "a"),
        ({"anonymousId": "", "userId": "u"}, "u"),
        ({"userId": 42}, "42"),
        ({"anonymousId": True}, ""),
        ({"anonymousId": None}, ""),
        ([1], ""),
        ("text", ""),
    ],
)
def test_routing_key_of_any_payload(payload: object, key: str) -> None:
    assert routing_key(payload) == key


def test_routing_key_agrees_with_the_decoded_message() -> None:
    for fields in ({}, {"anonymousId": "", "userId": "u"}, {"userId": 7, "anonymousId": "a"}):
        raw = _raw(type="page", **fields)
        assert routing_key(orjson.loads(raw)) == decode(raw).routing_key


def test_id_limits_fit_the_realtime_state_columns() -> None:
    columns = realtime_state.c
    assert (columns.id_value.type.length, columns.user_id.type.length) == (
        MAX_ANONYMOUS_ID,
        MAX_USER_ID,
    )
