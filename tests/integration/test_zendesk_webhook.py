"""The signed Zendesk webhook, against a real server and a real local event log."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY

from c360.api.app import create_app
from c360.api.server import serve_in_thread
from c360.config import Settings
from c360.contracts.zendesk import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from c360.errors import TerminalError, TransientError
from c360.logs import Record, open_log
from c360.simulator.writers import zendesk as simulated

SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="
PATH = "/v1/webhooks/zendesk"


def make_settings(root: Path, secret: str | None = SECRET) -> Settings:
    return Settings.model_validate(
        {
            "log": {"url": f"local://{root}/log", "partitions": 3},
            "serving": {"url": f"sqlite:///{root}/serving.db"},
            "sources": {"zendesk": {"webhook_secret": secret}},
        }
    )


def support_records(settings: Settings) -> list[Record]:
    with open_log(settings.log.url, settings.log.partitions) as log:
        out: list[Record] = []
        for partition in range(log.partitions("support")):
            out.extend(log.read("support", partition, 0, 100_000))
    return out


def stamp(offset_seconds: float = 0) -> str:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset_seconds)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def signed(body: bytes, timestamp: str | None = None, secret: str = SECRET) -> dict[str, str]:
    timestamp = timestamp or stamp()
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }


_counter = iter(range(10**9))


def ticket_created(requester_id: int = 7001) -> bytes:
    """A simulator-shaped ``ticket.created`` payload (pretty-printed: the raw body is kept)."""
    ticket = simulated.Ticket(
        id=500 + next(_counter),
        requester_id=requester_id,
        assignee_id=90,
        created_at="2025-03-01T10:00:00Z",
        subject="Where is my order?",
        description="It has not arrived.",
        priority="NORMAL",
        type="QUESTION",
        channel="WEB",
    )
    payload = simulated.ticket_event(
        "created",
        f"evt-{next(_counter)}",
        "2025-03-01T10:00:00Z",
        ticket,
        status="NEW",
        actor_id=requester_id,
        tags=[],
        assigned=False,
        event={},
    )
    return orjson.dumps(payload, option=orjson.OPT_INDENT_2)


def user_created(user_id: int = 7001) -> bytes:
    # the user resource's phone rides in the detail, appended raw with the rest
    payload = simulated.user_created(
        f"evt-{next(_counter)}", "2025-03-01T09:59:00Z", user_id, "ann@example.com", "Ann", None,
        phone="+49 151 23456789",
    )  # fmt: skip
    return orjson.dumps(payload)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, httpx.Client]]:
    settings = make_settings(tmp_path_factory.mktemp("zendesk"))
    with serve_in_thread(create_app(settings)) as url, httpx.Client(base_url=url) as client:
        yield settings, client


def test_a_signed_event_is_appended_raw_keyed_by_the_requester(
    server: tuple[Settings, httpx.Client],
) -> None:
    settings, client = server
    before = len(support_records(settings))
    user, ticket = user_created(8001), ticket_created(8001)
    for body in (user, ticket):
        response = client.post(PATH, content=body, headers=signed(body))
        assert response.status_code == 200, response.text
        assert response.json() == {"success": True}
    records = support_records(settings)[before:]
    by_value = {r.value: r for r in records}
    assert set(by_value) == {user, ticket}  # byte for byte, indentation included
    assert by_value[user].key == by_value[ticket].key == "8001"
    assert by_value[user].partition == by_value[ticket].partition


@pytest.mark.parametrize(
    "kind", ["ticket.status_changed", "ticket.comment_added", "ticket.priority_changed"]
)
def test_other_ticket_events_are_accepted(server: tuple[Settings, httpx.Client], kind: str) -> None:
    _, client = server
    payload = orjson.loads(ticket_created(8002))
    payload["type"] = f"zen:event-type:{kind}"
    payload["event"] = {"current": "OPEN", "previous": "NEW"}
    body = orjson.dumps(payload)
    assert client.post(PATH, content=body, headers=signed(body)).status_code == 200


def _headers_cases(body: bytes) -> dict[str, dict[str, str]]:
    good = signed(body)
    # a second before the signed one, from it: stamp(-1) could cross into the signed second
    signed_at = dt.datetime.strptime(good[TIMESTAMP_HEADER], "%Y-%m-%dT%H:%M:%SZ")
    another = (signed_at - dt.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "wrong secret": signed(body, secret="not-the-secret"),
        "tampered signature": {**good, SIGNATURE_HEADER: good[SIGNATURE_HEADER][:-4] + "AAA="},
        "signature of another timestamp": {**good, TIMESTAMP_HEADER: another},
        "no signature": {k: v for k, v in good.items() if k != SIGNATURE_HEADER},
        "no timestamp": {k: v for k, v in good.items() if k != TIMESTAMP_HEADER},
        "no headers": {"Content-Type": "application/json"},
        "stale": signed(body, stamp(-301)),
        "future": signed(body, stamp(+301)),
        "not a timestamp": signed(body, "yesterday"),
    }


@pytest.mark.parametrize("case", list(_headers_cases(b"")))
def test_bad_missing_or_stale_signatures_are_401(
    server: tuple[Settings, httpx.Client], case: str
) -> None:
    settings, client = server
    body = ticket_created(8003)
    before = len(support_records(settings))
    response = client.post(PATH, content=body, headers=_headers_cases(body)[case])
    assert response.status_code == 401, response.text
    assert response.json()["success"] is False
    assert len(support_records(settings)) == before


def test_a_tampered_body_is_401(server: tuple[Settings, httpx.Client]) -> None:
    _, client = server
    body = ticket_created(8004)
    headers = signed(body)
    tampered = body.replace(b"8004", b"8005")
    assert client.post(PATH, content=tampered, headers=headers).status_code == 401


def test_within_the_tolerance_is_accepted(server: tuple[Settings, httpx.Client]) -> None:
    _, client = server
    for offset in (-290, 290):
        body = ticket_created(8006)
        response = client.post(PATH, content=body, headers=signed(body, stamp(offset)))
        assert response.status_code == 200, response.text


def _counted(outcome: str, code: str = "", reason: str = "") -> float:
    labels = {"webhook": "zendesk", "outcome": outcome, "code": code, "reason": reason}
    return REGISTRY.get_sample_value("c360_webhook_events_total", labels) or 0.0


def test_an_exact_replay_is_acknowledged_but_stored_once(
    server: tuple[Settings, httpx.Client],
) -> None:
    settings, client = server
    body = ticket_created(8007)
    headers = signed(body)
    before = len(support_records(settings))
    accepted, suppressed = _counted("accepted"), _counted("suppressed")
    first = client.post(PATH, content=body, headers=headers)
    again = client.post(PATH, content=body, headers=headers)
    assert first.json() == {"success": True}
    assert again.status_code == 200
    assert again.json() == {"success": True, "duplicate": True}
    assert len(support_records(settings)) == before + 1
    assert (_counted("accepted") - accepted, _counted("suppressed") - suppressed) == (1, 1)


def test_refused_events_are_counted_by_reason_code(server: tuple[Settings, httpx.Client]) -> None:
    _, client = server
    no_requester = orjson.loads(ticket_created()) | {"detail": {"id": "9"}}
    body = orjson.dumps(no_requester)
    missing = ("rejected", "invalid_event", "missing_field")
    before, unsigned = _counted(*missing), _counted("rejected", "unauthorized")
    assert client.post(PATH, content=body, headers=signed(body)).status_code == 400
    assert client.post(PATH, content=body).status_code == 401
    assert _counted(*missing) - before == 1
    assert _counted("rejected", "unauthorized") - unsigned == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"type": "zen:event-type:ticket.created", ', "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"id": "1", "time": "2025-03-01T10:00:00Z", "detail": {}}', "'type'"),
        (
            b'{"type": "zen:event-type:ticket.created", "time": "2025-03-01T10:00:00Z", '
            b'"detail": {"requester_id": "1"}}',
            "'id'",
        ),
        (
            b'{"type": "zen:event-type:ticket.created", "id": "e", "time": "soon", '
            b'"detail": {"requester_id": "1"}}',
            "'time'",
        ),
        (
            b'{"type": "zen:event-type:ticket.created", "id": "e", "time": "2025-03-01T10:00:00Z"}',
            "'detail'",
        ),
        (
            b'{"type": "zen:event-type:ticket.created", "id": "e", '
            b'"time": "2025-03-01T10:00:00Z", "detail": {"id": "9"}}',
            "detail.requester_id",
        ),
        (
            b'{"type": "zen:event-type:organization.created", "id": "e", '
            b'"time": "2025-03-01T10:00:00Z", "detail": {"id": "9"}}',
            "unsupported event type",
        ),
        # What the speed layer would dead-letter is refused here already.
        (
            b'{"type": "zen:event-type:ticket.created", "id": "e", '
            b'"time": "2025-03-01T10:00:00Z", "detail": {"requester_id": "9"}}',
            "needs detail.id (the ticket id)",
        ),
    ],
)
def test_malformed_payloads_are_400_with_the_reason(
    server: tuple[Settings, httpx.Client], body: bytes, reason: str
) -> None:
    settings, client = server
    before = len(support_records(settings))
    response = client.post(PATH, content=body, headers=signed(body))
    assert response.status_code == 400, response.text
    assert reason in response.json()["detail"]
    assert response.json()["code"] in ("invalid_json", "invalid_event")
    assert len(support_records(settings)) == before


def test_an_event_time_beyond_the_clock_plus_the_skew_is_400_and_not_stored(
    server: tuple[Settings, httpx.Client],
) -> None:
    settings, client = server
    before = len(support_records(settings))
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    future = orjson.loads(user_created()) | {"time": "2999-01-01T00:00:00Z"}
    body = orjson.dumps(future)
    response = client.post(PATH, content=body, headers=signed(body))
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_event"
    assert "(events.max_clock_skew_seconds)" in response.json()["detail"]
    body = orjson.dumps(future | {"time": soon})
    assert client.post(PATH, content=body, headers=signed(body)).status_code == 200
    assert len(support_records(settings)) == before + 1


def test_without_a_secret_the_webhook_is_503(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, secret=None)
    body = ticket_created()
    with serve_in_thread(create_app(settings)) as url, httpx.Client(base_url=url) as client:
        response = client.post(PATH, content=body, headers=signed(body))
    assert response.status_code == 503
    assert "webhook secret not configured" in response.json()["detail"]
    assert response.json()["code"] == "not_configured"


@pytest.mark.parametrize(
    ("failure", "status", "retry_after"),
    [
        (TransientError("support/1: broker not available"), 503, "5"),
        (TerminalError("support: topic authorization failed (check the Kafka ACLs)"), 500, None),
        (RuntimeError("unclassified"), 500, None),
    ],
    ids=["transient", "terminal", "unexpected"],
)
def test_a_log_failure_is_a_503_only_when_a_retry_can_help(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failure: Exception,
    status: int,
    retry_after: str | None,
) -> None:
    settings = make_settings(tmp_path)
    log = open_log(settings.log.url, settings.log.partitions)

    def failing(topic: str, records: object) -> None:
        raise failure

    monkeypatch.setattr(log, "append", failing)
    body = ticket_created()
    try:
        with serve_in_thread(create_app(settings, log=log)) as url, httpx.Client(base_url=url) as c:
            response = c.post(PATH, content=body, headers=signed(body))
            # not remembered as accepted: the retried delivery is appended, not a duplicate
            monkeypatch.undo()
            again = c.post(PATH, content=body, headers=signed(body))
    finally:
        log.close()
    assert response.status_code == status, response.text
    assert response.headers.get("retry-after") == retry_after
    assert response.json()["success"] is False
    if status == 500:
        assert "retrying will not help" in response.json()["detail"]
    assert again.json() == {"success": True}
    assert len(support_records(settings)) == 1


def test_the_signature_matches_zendesks_documented_recipe() -> None:
    # base64(HMAC-SHA256(secret, TIMESTAMP + BODY)), computed independently
    import base64
    import hashlib
    import hmac

    body, timestamp = b'{"a": 1}', "2021-03-25T05:09:27Z"
    digest = hmac.new(SECRET.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    assert sign(SECRET, timestamp, body) == base64.b64encode(digest).decode()
