"""Every invalid event carries one of the fixed reason codes (c360.contracts.reasons): what the
collector's and the stream worker's metrics and ``c360 status`` count by — never free text."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest

from c360.contracts import reasons
from c360.contracts.segment import InvalidMessage, decode
from c360.contracts.times import epoch_us
from c360.contracts.zendesk import InvalidSupportEvent, decode_support
from c360.speed.events import decode_click

NOW = dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC)
PAGE = {"type": "page", "messageId": "m1", "timestamp": "2025-03-01T10:00:00Z", "anonymousId": "a"}


def _page(**fields: Any) -> bytes:
    return orjson.dumps({k: v for k, v in (PAGE | fields).items() if v is not None})


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{nope", reasons.NOT_JSON),
        (b"[1, 2]", reasons.NOT_OBJECT),
        (_page(type=None), reasons.UNKNOWN_TYPE),
        (_page(type="purchase"), reasons.UNKNOWN_TYPE),
        (_page(anonymousId=None), reasons.MISSING_FIELD),
        (_page(anonymousId=""), reasons.MISSING_FIELD),
        (_page(messageId=None), reasons.MISSING_FIELD),
        (_page(type="track"), reasons.MISSING_FIELD),  # no event name
        (_page(timestamp="yesterday"), reasons.INVALID_FIELD),
        (_page(anonymousId="a" * 321), reasons.INVALID_FIELD),
        (_page(timestamp="2025-03-02T10:00:00Z"), reasons.FUTURE_TIME),
        (
            _page(type="track", event="Order Completed", properties={"total": -5}),
            reasons.IMPLAUSIBLE_MONEY,
        ),
    ],
)
def test_segment_messages_are_refused_with_a_code(raw: bytes, code: str) -> None:
    with pytest.raises(InvalidMessage) as pydantic_path:
        decode(raw, not_after=NOW)
    with pytest.raises(InvalidMessage) as speed_path:  # the stream worker's decoder
        decode_click(raw, epoch_us(NOW))
    assert pydantic_path.value.code == speed_path.value.code == code
    assert pydantic_path.value.reason == speed_path.value.reason


def _zendesk(**fields: Any) -> bytes:
    payload = {
        "type": "zen:event-type:ticket.created",
        "id": "e1",
        "time": "2025-03-01T10:00:00Z",
        "detail": {"id": "1000", "requester_id": "361"},
    }
    return orjson.dumps(payload | fields)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"nope", reasons.NOT_JSON),
        (b'"text"', reasons.NOT_OBJECT),
        (_zendesk(type="ticket.created"), reasons.UNKNOWN_TYPE),
        (_zendesk(type="zen:event-type:organization.created"), reasons.UNKNOWN_TYPE),
        (_zendesk(id=""), reasons.MISSING_FIELD),
        (_zendesk(detail={"id": "1"}), reasons.MISSING_FIELD),
        (_zendesk(time="soon"), reasons.INVALID_FIELD),
        (_zendesk(detail=[]), reasons.INVALID_FIELD),
        (_zendesk(detail={"id": "1", "requester_id": "r" * 321}), reasons.INVALID_FIELD),
        (_zendesk(time="2025-03-02T10:00:00Z"), reasons.FUTURE_TIME),
    ],
)
def test_zendesk_events_are_refused_with_a_code(raw: bytes, code: str) -> None:
    with pytest.raises(InvalidSupportEvent) as caught:
        decode_support(raw, NOW)
    assert caught.value.code == code


def test_the_codes_are_few_and_plain() -> None:
    assert len(set(reasons.CODES)) == len(reasons.CODES) <= 10
    assert all(code.isidentifier() and code.islower() for code in reasons.CODES)
