"""The speed layer's decoders: Segment's fast path agrees with pydantic, Zendesk's rules."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from c360.contracts.segment import InvalidMessage, decode
from c360.contracts.times import epoch_us, from_epoch_us
from c360.contracts.zendesk import InvalidSupportEvent, SupportEvent, decode_support
from c360.speed.events import NO_LIMIT, NO_PROPERTIES, ClickEvent, decode_click, fast_click

ABSENT = object()
# The latest plausible event time of the variants: received 2026-01-01, no clock skew allowed.
LIMIT = epoch_us(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
BASE: dict[str, Any] = {
    "type": "track",
    "event": "Product Added",
    "messageId": "m-1",
    "timestamp": "2025-03-01T10:00:00.250Z",
    "anonymousId": "anon-1",
    "userId": "42",
    "context": {"ip": "1.2.3.4", "page": {"path": "/"}},
    "properties": {"product_id": "7", "price": 1.5},
}
VARIANTS: dict[str, list[Any]] = {
    "type": ["track", "page", "screen", "identify", "alias", "group", "bogus", None, 5, ABSENT],
    "event": [
        "Product Added",
        "Product Removed",
        "Order Completed",
        "Product Viewed",
        "",
        5,
        None,
        ABSENT,
    ],
    "messageId": ["m-1", "", 5, "x" * 256, "x" * 257, None, ABSENT],
    "timestamp": [
        "2025-03-01T10:00:00.250Z",
        "2025-03-01T10:00:00Z",
        "2025-03-01T10:00:00.123456Z",
        "2025-03-01T10:00:00.1Z",
        "2025-03-01T10:00:00+00:00",
        "2025-03-01T12:00:00+02:00",
        "2025-03-01T10:00:00",
        "2025-03-01 10:00:00Z",
        "2025-03-01",
        "2025-13-01T10:00:00Z",
        "2025-02-30T10:00:00Z",
        "2025-03-01T24:00:00Z",
        "2025-03-01T23:59:60Z",
        # The forms the fast path parses itself, and near misses it must hand over.
        "2025-03-01T10:00:00.250000Z",
        "2025-03-01T10:00:00.250+00:00",
        "2025-03-01T10:00:00.250000+00:00",
        "2025-03-01T10:00:00.1234567Z",
        "2025-03-01T10:00:00.9999999Z",
        "2025-03-01T10:00:00.25Z",
        "2025-03-01T10:00:00.2500Z",
        "2025-03-01T10:00:00,250Z",
        "2025-03-01T10:00:00-00:00",
        "2025-03-01T10:00:00+0000",
        "2025-03-01t10:00:00.250z",
        "2025-W09-6T10:00:00.250Z",
        "20250301T100000.250Z",
        "2025-03-01T10:00:00.2a0Z",
        "2025-03-01T1:00:00.2500Z",
        "\uff12025-03-01T10:00:00.250Z",
        "1969-12-31T23:59:59.999Z",
        "0001-01-01T00:00:00Z",
        # Outside the calendar once in UTC: a reason, not an OverflowError (found by fuzzing).
        "0001-01-01T00:00:01+01:00",
        "9999-12-31T23:59:59-01:00",
        "9999-12-31T23:59:59.999999Z",
        # Around the latest plausible time (LIMIT): at it is fine, a microsecond later is not.
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00.000001Z",
        "2025-12-31T23:59:59.999999Z",
        "2026-01-01T01:00:00+01:00",
        "2026-01-01T01:00:00.001+01:00",
        "2999-01-01T00:00:00.000Z",
        "yesterday",
        "1740823200",  # epoch seconds as text: not ISO-8601 (pydantic alone would take it)
        "0",
        1740823200,
        None,
        ABSENT,
    ],
    "anonymousId": ["anon-1", "", 42, 4.5, True, "a" * 320, "a" * 321, "a\x00", None, ABSENT],
    "userId": ["42", "", 42, False, "u" * 64, "u" * 65, "\x00", None, ABSENT],
    "context": [{"ip": "1.2.3.4"}, {}, "ctx", [], 5, None, ABSENT],
    "properties": [
        {"product_id": "7"},
        {"n": 2**70},
        {},
        [],
        "x",
        5,
        None,
        ABSENT,
        # Money: plausible, and not (dead-lettered on the events that carry it).
        {"price": 0, "total": 1_000_000_000, "revenue": "12.50"},
        {"price": None, "total": None},
        {"total": 1e300},
        {"total": -0.01},
        {"total": 1_000_000_000.01},
        {"total": 2**70},
        {"total": True},
        {"total": "lots"},
        {"total": "nan"},
        {"total": "-inf"},
        {"total": 19.99, "revenue": -5},
        {"revenue": [1]},
        {"price": 1e308},
        {"price": -1},
        {"price": "1e3"},
        {"price": {"amount": 1}},
    ],
    "traits": [{"email": "a@b.c"}, "x", [], None, ABSENT],
    "name": ["Home", 5, None, ABSENT],
    "previousId": ["anon-0", "", ABSENT],
    "groupId": ["g1", 7, "", ABSENT],
    "anonymous_id": [ABSENT, "snake"],
    "message_id": [ABSENT, "snake"],
    "user_id": [ABSENT, None],
}


def _variant(rng: random.Random) -> dict[str, Any]:
    message = dict(BASE)
    for field in rng.sample(sorted(VARIANTS), rng.randint(1, 4)):
        message[field] = rng.choice(VARIANTS[field])
    return {k: v for k, v in message.items() if v is not ABSENT}


def _slow(raw: bytes, limit: int = LIMIT) -> ClickEvent | str:
    try:
        return ClickEvent.of(decode(raw, not_after=from_epoch_us(limit)))
    except InvalidMessage as exc:
        return exc.reason


def _fast(raw: bytes, limit: int = LIMIT) -> ClickEvent | str:
    try:
        return decode_click(raw, limit)
    except InvalidMessage as exc:
        return exc.reason


def test_the_fast_path_agrees_with_pydantic_on_every_variant() -> None:
    rng = random.Random(360)
    fast_answers = 0
    for _ in range(4000):
        payload = _variant(rng)
        raw = json.dumps(payload).encode()  # orjson cannot write integers beyond 64 bits
        assert _fast(raw) == _slow(raw), payload
        fast_answers += fast_click(raw, LIMIT) is not None
    assert fast_answers > 300  # the fast path did answer a good share itself


@pytest.mark.parametrize("timestamp", VARIANTS["timestamp"])
@pytest.mark.parametrize("kind", ["track", "page", "alias"])
def test_every_timestamp_form_gets_the_same_answer(kind: str, timestamp: Any) -> None:
    payload = BASE | {"type": kind, "previousId": "anon-0", "timestamp": timestamp}
    if timestamp is ABSENT:
        del payload["timestamp"]
    raw = orjson.dumps(payload)
    assert _fast(raw) == _slow(raw)


@pytest.mark.parametrize(
    "timestamp",
    [
        "2025-03-01T10:00:00Z",
        "2025-03-01T10:00:00.250Z",
        "2025-03-01T10:00:00.250000Z",
        "2025-03-01T10:00:00+00:00",
        "2025-03-01T10:00:00.250+00:00",
        "2025-03-01T10:00:00.250000+00:00",
    ],
)
def test_the_fast_path_parses_the_forms_segment_libraries_send(timestamp: str) -> None:
    event = fast_click(orjson.dumps(BASE | {"timestamp": timestamp}), LIMIT)
    assert event is not None
    assert event.at == epoch_us(dt.datetime.fromisoformat(timestamp))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type":"page","messageId":"a","messageId":"b","timestamp":"2025-03-01T10:00:00Z",'
        b'"anonymousId":"x"}',
        b'  {"type" : "track", "event":"E", "messageId":"m", "timestamp":"2025-03-01T10:00:00Z",'
        b' "userId":"u", "properties" :  {"price": 1e400}}',
        b'{"type":"track","event":"E","messageId":"m","timestamp":"2025-03-01T10:00:00Z",'
        b'"userId":"u","properties":{"a":"\\ud800"}, "context": {"x": [1, {"y": null}]}}',
        b'{"type":"track","event":"E","messageId":"m","timestamp":"2025-03-01T10:00:00Z",'
        b'"userId":"u","properties":null,"context":null}',
        b'{"type":"identify","messageId":"m","timestamp":"2025-03-01T10:00:00Z","userId":"u"} x',
        b'\xef\xbb\xbf{"type":"page","messageId":"m","timestamp":"2025-03-01T10:00:00Z",'
        b'"userId":"u"}',
        b'{"type":"page","messageId":"m","timestamp":"2025-03-01T10:00:00Z","userId":"u",'
        b'"userId":""}',
        b'{"type":"page","messageId":"m\\u00e9","timestamp":"2025-03-01T10:00:00Z","userId":"u"}',
    ],
)
def test_edge_cases_of_json_agree(raw: bytes) -> None:
    assert _fast(raw) == _slow(raw)


def test_a_too_deeply_nested_message_is_dead_lettered_not_raised() -> None:
    deep = b"[" * 5000 + b"]" * 5000
    raw = (
        b'{"type":"page","messageId":"m","timestamp":"2025-03-01T10:00:00Z","userId":"u",'
        b'"context":{"x":' + deep + b"}}"
    )
    assert fast_click(raw, LIMIT) is None
    with pytest.raises(InvalidMessage, match="not JSON"):
        decode_click(raw, LIMIT)


def test_the_fast_path_answers_for_simulator_messages(tmp_path: Path) -> None:
    from c360.config import load_config
    from c360.simulator import generate

    overrides = {
        "simulator.customers": 30,
        "simulator.days": 5,
        "sources.mysql.url": f"sqlite:///{tmp_path / 'shop.db'}",
        "sources.clickstream.path": str(tmp_path / "clickstream.jsonl.gz"),
        "sources.zendesk.path": str(tmp_path / "zendesk.jsonl"),
        "sources.mailchimp.dir": str(tmp_path / "mailchimp"),
        "simulator.truth_dir": str(tmp_path / "truth"),
    }
    generate(load_config(environ={}, overrides=overrides).settings)
    lines = gzip.decompress((tmp_path / "clickstream.jsonl.gz").read_bytes()).splitlines()
    assert len(lines) > 50
    for line in lines:
        fast = fast_click(line, NO_LIMIT)
        assert fast is not None, line
        assert fast == ClickEvent.of(decode(line))
    for line in (tmp_path / "zendesk.jsonl").read_bytes().splitlines():
        decode_support(line, None)  # every simulated Zendesk event is a valid support event


def test_events_carry_label_time_and_properties() -> None:
    event = decode_click(orjson.dumps(BASE), LIMIT)
    assert event == ClickEvent(
        "track",
        "m-1",
        epoch_us(dt.datetime(2025, 3, 1, 10, 0, 0, 250_000, tzinfo=dt.UTC)),
        "anon-1",
        "42",
        "Product Added",
        {"product_id": "7", "price": 1.5},
    )
    identify = decode_click(orjson.dumps(BASE | {"type": "identify", "traits": {"a": 1}}), LIMIT)
    assert (identify.label, identify.properties) == ("identify", NO_PROPERTIES)
    alias = decode_click(orjson.dumps(BASE | {"type": "alias", "previousId": "p"}), LIMIT)
    assert (alias.label, alias.user_id, alias.properties) == ("alias", "42", NO_PROPERTIES)
    with pytest.raises(InvalidMessage, match="not JSON"):
        decode_click(b"{", LIMIT)


@pytest.mark.parametrize(
    ("event", "properties", "field"),
    [
        ("Order Completed", {"total": 1e300}, "total"),
        ("Order Completed", {"total": -20}, "total"),
        ("Order Completed", {"total": 10, "revenue": "lots"}, "revenue"),
        ("Product Added", {"price": 1e308}, "price"),
        ("Product Removed", {"price": "1e400"}, "price"),
    ],
)
def test_implausible_money_is_refused_with_the_field(
    event: str, properties: dict[str, Any], field: str
) -> None:
    raw = json.dumps(BASE | {"event": event, "properties": properties}).encode()
    with pytest.raises(InvalidMessage) as caught:
        decode_click(raw, LIMIT)
    assert caught.value.reason == (
        f"track: properties.{field} of {event!r} must be an amount from 0 to 1,000,000,000 "
        "(a number or a numeric string)"
    )
    # Other events may carry any price: the speed layer does not add it up.
    viewed = decode_click(
        json.dumps(BASE | {"event": "Product Viewed"} | {"properties": properties}).encode(), LIMIT
    )
    assert viewed.label == "Product Viewed"


def test_an_event_time_after_the_limit_is_refused_and_no_limit_checks_nothing() -> None:
    raw = orjson.dumps(BASE | {"timestamp": "2999-01-01T00:00:00Z"})
    with pytest.raises(InvalidMessage) as caught:
        decode_click(raw, LIMIT)
    assert caught.value.reason == (
        "track: timestamp: 2999-01-01T00:00:00.000Z is after 2026-01-01T00:00:00.000Z: later "
        "than its receive time plus the allowed clock skew (events.max_clock_skew_seconds)"
    )
    assert decode_click(raw, NO_LIMIT).at == epoch_us(dt.datetime(2999, 1, 1, tzinfo=dt.UTC))
    at_the_limit = orjson.dumps(BASE | {"timestamp": "2026-01-01T00:00:00Z"})
    assert fast_click(at_the_limit, LIMIT) is not None


# -- Zendesk --------------------------------------------------------------------------------------


def _zendesk(kind: str, **fields: Any) -> bytes:
    payload = {
        "type": f"zen:event-type:{kind}",
        "id": "e1",
        "time": "2025-01-04T15:44:28Z",
        "detail": {"id": "1000", "requester_id": "361", "status": "OPEN"},
        "event": {},
    }
    return orjson.dumps({**payload, **fields})


def test_zendesk_ticket_and_user_events() -> None:
    changed = decode_support(
        _zendesk("ticket.status_changed", event={"current": "solved", "previous": "OPEN"}), None
    )
    assert changed == SupportEvent(
        "e1",
        "ticket.status_changed",
        dt.datetime(2025, 1, 4, 15, 44, 28, tzinfo=dt.UTC),
        "361",
        "1000",
        "SOLVED",
    )
    nested = decode_support(
        _zendesk("ticket.status_changed", event={"current": {"status": "x"}}), None
    )
    assert nested.status == "X"
    fallback = decode_support(_zendesk("ticket.status_changed", event=[]), None)
    assert fallback.status == "OPEN"  # detail.status when event.current is missing
    created = decode_support(
        _zendesk("ticket.created", id=5, detail={"id": 9, "requester_id": 8}), None
    )
    assert (created.event_id, created.user_id, created.ticket_id, created.status) == (
        "5",
        "8",
        "9",
        None,
    )
    user = decode_support(_zendesk("user.created", detail={"id": "361", "email": "a@b.c"}), None)
    assert (user.kind, user.user_id, user.ticket_id) == ("user.created", "361", None)
    whole = decode_support(_zendesk("user.created", detail={"id": 7.0}), None)
    assert whole.user_id == "7"  # 7.0 is an integer to JSON Schema (the OpenAPI contract)
    naive = decode_support(_zendesk("user.created", time="2025-01-04T15:44:28"), None)
    assert naive.time == dt.datetime(2025, 1, 4, 15, 44, 28, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{nope", "not JSON"),
        (b"[1]", "not a JSON object"),
        (_zendesk("ticket.created", type="ticket.created"), "'type' must be a Zendesk event"),
        (_zendesk("ticket.created", id=""), "'id' (the event id) is required"),
        (_zendesk("ticket.created", id=True), "'id' (the event id) is required"),
        (_zendesk("ticket.created", time="soon"), "'time' must be an ISO-8601 timestamp"),
        (_zendesk("ticket.created", time=17), "'time' must be an ISO-8601 timestamp"),
        (_zendesk("ticket.created", detail=[]), "'detail' must be an object"),
        (
            _zendesk("ticket.created", detail={"id": "1"}),
            "ticket.created needs detail.requester_id",
        ),
        (_zendesk("ticket.created", detail={"requester_id": "1"}), "needs detail.id"),
        (_zendesk("user.created", detail={"email": "a"}), "user.created needs detail.id"),
        (_zendesk("organization.created"), "unsupported event type 'organization.created'"),
        (_zendesk("user.created", detail={"id": "u" * 321}), "detail.id is longer than 320"),
        # Beyond 2**53 a JSON number is not read exactly everywhere (and orjson makes it a float).
        (_zendesk("user.created", detail={"id": 2**53}), "user.created needs detail.id"),
        (_zendesk("user.created", detail={"id": 7.5}), "user.created needs detail.id"),
        (_zendesk("ticket.created", detail={"id": "1", "requester_id": "r" * 321}), "longer"),
        (_zendesk("ticket.created", detail={"id": "1", "requester_id": "a\x00"}), "requester"),
    ],
)
def test_invalid_zendesk_events_have_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidSupportEvent) as caught:
        decode_support(raw, None)
    assert reason in caught.value.reason


def test_a_zendesk_event_after_the_limit_is_refused() -> None:
    limit = dt.datetime(2025, 1, 4, 15, 44, 27, tzinfo=dt.UTC)
    with pytest.raises(InvalidSupportEvent) as caught:
        decode_support(_zendesk("ticket.created"), limit)
    assert caught.value.reason == (
        "'time' 2025-01-04T15:44:28.000Z is after 2025-01-04T15:44:27.000Z: later than its "
        "receive time plus the allowed clock skew (events.max_clock_skew_seconds)"
    )
    assert decode_support(_zendesk("ticket.created"), limit + dt.timedelta(seconds=1)).user_id
