"""The Segment-compatible collector, against a real server and a real local event log."""

from __future__ import annotations

import datetime as dt
import gzip
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from c360.api.app import create_app
from c360.api.server import serve_in_thread
from c360.config import Settings
from c360.errors import TerminalError, TransientError
from c360.logs import Record, open_log
from ports import free_port

KEY = "wk_test_1"
OTHER_KEY = "wk_test_2"
T0 = "2025-03-01T10:00:00.000Z"


def make_settings(root: Path, **collector: Any) -> Settings:
    return Settings.model_validate(
        {
            "log": {"url": f"local://{root}/log", "partitions": 3},
            "serving": {"url": f"sqlite:///{root}/serving.db"},
            "collector": {"write_keys": [KEY, OTHER_KEY], **collector},
        }
    )


def read_topic(settings: Settings, topic: str = "clickstream") -> list[Record]:
    with open_log(settings.log.url, settings.log.partitions) as log:
        out: list[Record] = []
        for partition in range(log.partitions(topic)):
            out.extend(log.read(topic, partition, 0, 1_000_000))
    return out


def logged(settings: Settings) -> dict[str, tuple[Record, dict[str, Any]]]:
    """messageId → (record, message) of every clickstream record."""
    out = {}
    for record in read_topic(settings):
        message = orjson.loads(record.value)
        out[message["messageId"]] = (record, message)
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, str]]:
    settings = make_settings(tmp_path_factory.mktemp("collector"))
    with serve_in_thread(create_app(settings)) as url:
        yield settings, url


@pytest.fixture
def client(server: tuple[Settings, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server[1], auth=(KEY, ""), timeout=10) as http:
        yield http


def uid(prefix: str) -> str:
    return f"{prefix}-{time.monotonic_ns()}"


VALID = {
    "track": {"anonymousId": "anon-1", "event": "Product Viewed", "properties": {"sku": "A"}},
    "page": {"anonymousId": "anon-1", "name": "Home"},
    "screen": {"userId": "42", "name": "Cart"},
    "identify": {"anonymousId": "anon-1", "userId": "42", "traits": {"firstName": "Ann"}},
    "alias": {"previousId": "anon-1", "userId": "42"},
    "group": {"userId": "42", "groupId": "g-1"},
}


@pytest.mark.parametrize("kind", sorted(VALID))
def test_each_endpoint_appends_a_valid_message_before_answering(
    server: tuple[Settings, str], client: httpx.Client, kind: str
) -> None:
    settings, _ = server
    message_id = uid(kind)
    body = {**VALID[kind], "messageId": message_id, "timestamp": T0}
    response = client.post(f"/v1/{kind}", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}

    record, stored = logged(settings)[message_id]
    assert stored["type"] == kind
    assert stored["timestamp"] == T0
    assert stored["receivedAt"].endswith("Z")
    assert record.key == (body.get("anonymousId") or body["userId"])


def test_short_paths_and_body_write_key_as_analytics_js_sends_them(
    server: tuple[Settings, str],
) -> None:
    settings, url = server
    message_id = uid("short")
    body = {**VALID["track"], "messageId": message_id, "writeKey": OTHER_KEY, "timestamp": T0}
    with httpx.Client(base_url=url) as anonymous:
        response = anonymous.post(
            "/v1/t", content=orjson.dumps(body), headers={"Content-Type": "text/plain"}
        )
    assert response.status_code == 200, response.text
    _, stored = logged(settings)[message_id]
    assert "writeKey" not in stored  # never stored
    assert stored["type"] == "track"


def test_missing_message_id_and_timestamp_are_filled(
    server: tuple[Settings, str], client: httpx.Client
) -> None:
    settings, _ = server
    marker = uid("fill")
    response = client.post("/v1/page", json={"anonymousId": marker, "name": "Home"})
    assert response.status_code == 200, response.text
    [(_, stored)] = [v for v in logged(settings).values() if v[1].get("anonymousId") == marker]
    assert len(stored["messageId"]) == 36  # a uuid4
    assert stored["timestamp"] == stored["receivedAt"]


@pytest.mark.parametrize(
    ("auth", "headers"),
    [
        (None, {}),
        (("wrong", ""), {}),
        (None, {"Authorization": "Bearer " + KEY}),
    ],
)
def test_a_write_key_is_required(
    server: tuple[Settings, str], auth: tuple[str, str] | None, headers: dict[str, str]
) -> None:
    settings, url = server
    message_id = uid("auth")
    body = {**VALID["track"], "messageId": message_id, "timestamp": T0}
    with httpx.Client(base_url=url, auth=auth) as http:
        response = http.post("/v1/track", json=body, headers=headers)
        wrong_in_body = http.post("/v1/track", json={**body, "writeKey": "nope"})
    assert response.status_code == 401, response.text
    assert wrong_in_body.status_code == 401
    assert response.json()["success"] is False
    assert message_id not in logged(settings)


def test_basic_auth_without_the_colon_is_accepted(server: tuple[Settings, str]) -> None:
    _, url = server
    import base64

    token = base64.b64encode(KEY.encode()).decode()
    with httpx.Client(base_url=url) as http:
        response = http.post(
            "/v1/track",
            json={**VALID["track"], "timestamp": T0},
            headers={"Authorization": f"Basic {token}"},
        )
    assert response.status_code == 200, response.text


def test_size_limits_are_400_with_the_reason(client: httpx.Client) -> None:
    big = {**VALID["track"], "timestamp": T0, "properties": {"blob": "x" * 33_000}}
    single = client.post("/v1/track", json=big)
    assert single.status_code == 400
    assert "exceeds the 32768-byte limit" in single.json()["detail"]

    item = client.post("/v1/batch", json={"batch": [{**big, "type": "track"}]})
    assert item.status_code == 400
    assert "batch item 0" in item.json()["detail"]

    small = {**VALID["track"], "type": "track", "timestamp": T0, "properties": {"b": "y" * 20_000}}
    whole = client.post("/v1/batch", json={"batch": [small] * 30})  # ~600 KB
    assert whole.status_code == 400
    assert "exceeds the 512000-byte limit" in whole.json()["detail"]


@pytest.mark.parametrize(
    ("path", "content", "reason"),
    [
        ("/v1/track", {"anonymousId": "a", "timestamp": T0}, "event: required"),
        ("/v1/page", {"name": "x", "timestamp": T0}, "needs anonymousId or userId"),
        ("/v1/alias", {"userId": "1", "timestamp": T0}, "previousId: required"),
        ("/v1/page", {"anonymousId": "a", "timestamp": 17}, "ISO-8601"),
        ("/v1/page", b"{not json", "not JSON"),
        ("/v1/page", b"[1, 2]", "not a JSON object"),
        ("/v1/batch", {"items": []}, "'batch' array"),
    ],
)
def test_invalid_messages_are_400_with_the_reason(
    client: httpx.Client, path: str, content: dict[str, Any] | bytes, reason: str
) -> None:
    body = content if isinstance(content, bytes) else orjson.dumps(content)
    response = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert reason in response.json()["detail"]


def test_batch_items_land_in_order_with_the_shared_context(
    server: tuple[Settings, str], client: httpx.Client
) -> None:
    settings, _ = server
    anon = uid("anon")
    ids = [uid(f"b{i}") for i in range(50)]
    batch = [
        {
            "type": "page" if i % 2 else "track",
            "event": "Product Viewed",
            "anonymousId": anon,
            "messageId": message_id,
            "timestamp": T0,
            "context": {"page": {"path": f"/{i}"}},
        }
        for i, message_id in enumerate(ids)
    ]
    response = client.post(
        "/v1/batch",
        json={"batch": batch, "context": {"library": {"name": "test"}}, "sentAt": T0},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "success": True,
        "accepted": 50,
        "rejected": [],
        "rejected_count": 0,
    }
    records = sorted(
        (r for r in read_topic(settings) if r.key == anon), key=lambda r: (r.partition, r.offset)
    )
    assert len({r.partition for r in records}) == 1
    stored = [orjson.loads(r.value) for r in records]
    assert [m["messageId"] for m in stored] == ids
    assert stored[3]["context"] == {"library": {"name": "test"}, "page": {"path": "/3"}}
    assert stored[0]["sentAt"] == T0
    assert len({m["receivedAt"] for m in stored}) == 1


def test_a_batch_keeps_its_valid_items_and_lists_the_invalid_ones(
    server: tuple[Settings, str], client: httpx.Client
) -> None:
    settings, _ = server
    good = [uid("good"), uid("good")]
    batch = [
        {"type": "page", "anonymousId": "a", "messageId": good[0], "timestamp": T0},
        {"type": "track", "anonymousId": "a", "messageId": uid("bad"), "timestamp": T0},
        "not an object",
        {"type": "page", "anonymousId": "a", "messageId": good[1], "timestamp": T0},
    ]
    response = client.post("/v1/batch", json={"batch": batch})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["accepted"] == 2
    assert [r["index"] for r in answer["rejected"]] == [1, 2]
    assert "event: required" in answer["rejected"][0]["reason"]
    assert set(good) <= logged(settings).keys()

    only_bad = client.post("/v1/batch", json={"batch": batch[1:3]})
    assert only_bad.status_code == 400
    assert only_bad.json()["rejected_count"] == 2


def test_gzip_bodies_are_accepted(server: tuple[Settings, str], client: httpx.Client) -> None:
    settings, _ = server
    message_id = uid("gzip")
    body = gzip.compress(orjson.dumps({**VALID["page"], "messageId": message_id, "timestamp": T0}))
    response = client.post(
        "/v1/page",
        content=body,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert message_id in logged(settings)

    bomb = gzip.compress(b" " * 40_000 + b"{}")  # small on the wire, over the limit inflated
    response = client.post("/v1/page", content=bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert "limit" in response.json()["detail"]


def post_to_a_failing_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> tuple[Settings, list[httpx.Response]]:
    """A message and a batch posted to a collector whose log's appends raise ``failure``."""
    settings = make_settings(tmp_path)
    log = open_log(settings.log.url, settings.log.partitions)

    def broken(topic: str, records: object) -> None:
        raise failure

    monkeypatch.setattr(log, "append", broken)
    try:
        with (
            serve_in_thread(create_app(settings, log=log)) as url,
            httpx.Client(base_url=url, auth=(KEY, "")) as http,
        ):
            one = http.post("/v1/track", json={**VALID["track"], "timestamp": T0})
            many = http.post("/v1/batch", json={"batch": [{**VALID["page"], "type": "page"}]})
    finally:
        log.close()
    return settings, [one, many]


def test_a_failing_log_is_a_503_with_retry_after_and_nothing_claimed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failure = TransientError("disk on fire (clickstream)")
    settings, responses = post_to_a_failing_log(tmp_path, monkeypatch, failure)
    for response in responses:
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == "5"
        assert response.json()["success"] is False
        assert response.json()["code"] == "log_unavailable"
    assert read_topic(settings) == []


@pytest.mark.parametrize(
    ("failure", "logged"),
    [
        (TerminalError("topic clickstream: not authorized (check the Kafka ACLs)"), "ACLs"),
        (KeyError("anon-1"), "KeyError raised at"),  # unclassified: its message is not logged
    ],
    ids=["terminal", "unexpected"],
)
def test_a_log_that_cannot_take_events_is_a_500_without_retry_after(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    failure: Exception,
    logged: str,
) -> None:
    caplog.set_level(logging.INFO, logger="c360")
    settings, responses = post_to_a_failing_log(tmp_path, monkeypatch, failure)
    for response in responses:
        assert response.status_code == 500, response.text
        assert "retry-after" not in response.headers
        assert response.json()["success"] is False
        assert "retrying will not help" in response.json()["detail"]
    errors = [r.getMessage() for r in caplog.records if r.name == "c360.api.collector"]
    assert len(errors) == 2 and all(logged in message for message in errors)  # once a request
    assert "anon-1" not in caplog.text and KEY not in caplog.text and "Product" not in caplog.text
    assert read_topic(settings) == []


def test_no_write_key_configured_disables_the_collector(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, write_keys=[])
    with (
        serve_in_thread(create_app(settings)) as url,
        httpx.Client(base_url=url, auth=(KEY, "")) as http,
    ):
        response = http.post("/v1/track", json={**VALID["track"], "timestamp": T0})
        health = http.get("/health")
    assert response.status_code == 503
    assert "collector.write_keys" in response.json()["detail"]
    assert response.json()["code"] == "not_configured"
    assert health.status_code == 200
    assert not (tmp_path / "log").exists()  # the log is not even opened


# -- every 200 is durable: SIGKILL the server in the middle of a load ------------------------

THREADS = 4
BATCHES_PER_THREAD = 20
BATCH = 25  # 4 x 20 x 25 = 2,000 events


@pytest.mark.slow
def test_every_acknowledged_event_survives_a_sigkill_of_the_server(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("C360_")}
    env |= {
        "C360_LOG_URL": settings.log.url,
        "C360_LOG_PARTITIONS": str(settings.log.partitions),
        "C360_SERVING_URL": settings.serving.url,
        "C360_COLLECTOR_WRITE_KEYS": KEY,
        "C360_API_HOST": "127.0.0.1",
        "C360_API_PORT": str(port),
    }
    url = f"http://127.0.0.1:{port}"
    with (tmp_path / "server.err").open("wb") as errors:
        server = subprocess.Popen(
            [sys.executable, "-m", "c360", "serve"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert server.poll() is None, (tmp_path / "server.err").read_text()
            assert time.monotonic() < deadline, "the server did not come up"
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)

        acked: list[str] = []
        failures: list[str] = []
        lock = threading.Lock()

        def load(worker: int) -> None:
            with httpx.Client(base_url=url, auth=(KEY, ""), timeout=5) as http:
                for n in range(BATCHES_PER_THREAD):
                    ids = [f"w{worker}-b{n}-m{i}" for i in range(BATCH)]
                    batch = [
                        {
                            "type": "track",
                            "event": "Product Viewed",
                            "anonymousId": f"anon-{worker}-{i % 7}",
                            "messageId": message_id,
                            "timestamp": T0,
                        }
                        for i, message_id in enumerate(ids)
                    ]
                    try:
                        response = http.post("/v1/batch", json={"batch": batch})
                    except httpx.TransportError as exc:
                        with lock:
                            failures.append(exc.__class__.__name__)
                        return
                    if response.status_code == 200:
                        with lock:
                            acked.extend(ids)

        threads = [threading.Thread(target=load, args=(w,)) for w in range(THREADS)]
        for thread in threads:
            thread.start()
        total = THREADS * BATCHES_PER_THREAD * BATCH
        deadline = time.monotonic() + 20
        while len(acked) < total // 4 and time.monotonic() < deadline:
            time.sleep(0.001)
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        for thread in threads:
            thread.join(15)
        assert not any(thread.is_alive() for thread in threads)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)

    assert server.returncode == -signal.SIGKILL
    assert acked, "no request was acknowledged before the kill"
    assert failures, "the load finished before the kill; nothing was tested mid-flight"
    in_log = logged(settings)
    missing = [message_id for message_id in acked if message_id not in in_log]
    assert missing == [], f"{len(missing)} acknowledged events are not in the log"
    assert len(acked) < total


# -- client clocks and plausibility ------------------------------------------------------------


def _iso(when: dt.datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_a_skewed_client_clock_is_corrected_from_sent_at_as_segment_does(
    server: tuple[Settings, str], client: httpx.Client
) -> None:
    """timestamp = receivedAt - (sentAt - originalTimestamp): a phone a year ahead, whose event
    happened 10 s before it sent it, gets an event time 10 s before the server received it."""
    settings, _ = server
    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
    message_id = uid("skewed")
    body = {
        **VALID["track"],
        "messageId": message_id,
        "timestamp": _iso(ahead - dt.timedelta(seconds=10)),
        "sentAt": _iso(ahead),
    }
    response = client.post("/v1/track", json=body)
    assert response.status_code == 200, response.text
    _, stored = logged(settings)[message_id]
    received = dt.datetime.fromisoformat(stored["receivedAt"])
    assert stored["originalTimestamp"] == body["timestamp"]
    assert dt.datetime.fromisoformat(stored["timestamp"]) == received - dt.timedelta(seconds=10)

    # A replay of history (sentAt = now) keeps its times, to within the request's transit.
    batch_id = uid("replayed")
    replayed = {**VALID["page"], "type": "page", "messageId": batch_id, "timestamp": T0}
    sent = client.post("/v1/batch", json={"batch": [replayed], "sentAt": _iso(now())})
    assert sent.status_code == 200, sent.text
    _, stored = logged(settings)[batch_id]
    moved = dt.datetime.fromisoformat(stored["timestamp"]) - dt.datetime.fromisoformat(T0)
    assert dt.timedelta(0) <= moved < dt.timedelta(seconds=5)
    assert stored["originalTimestamp"] == T0


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def test_an_uncorrectable_future_time_and_implausible_money_are_refused_with_a_code(
    server: tuple[Settings, str], client: httpx.Client
) -> None:
    settings, _ = server
    future = {**VALID["track"], "messageId": uid("future"), "timestamp": "2999-01-01T00:00:00Z"}
    response = client.post("/v1/track", json=future)
    assert response.status_code == 400
    answer = response.json()
    assert (answer["success"], answer["code"]) == (False, "invalid_message")
    assert "(events.max_clock_skew_seconds)" in answer["detail"]

    soon = {**VALID["page"], "messageId": uid("soon"), "timestamp": _iso(now() + MINUTE)}
    assert client.post("/v1/page", json=soon).status_code == 200  # within the skew

    order = {
        "type": "track",
        "event": "Order Completed",
        "anonymousId": "anon-1",
        "timestamp": T0,
        "properties": {"order_id": "o-1", "total": 1e300},
    }
    cart = {**order, "event": "Product Added", "properties": {"price": 1e308}}
    fine = {**order, "messageId": uid("fine"), "properties": {"order_id": "o-2", "total": 20}}
    batch = [order, cart, {**future, "type": "track"}, fine]
    response = client.post("/v1/batch", json={"batch": batch})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["accepted"] == 1
    reasons = [r["reason"] for r in answer["rejected"]]
    assert "properties.total of 'Order Completed' must be an amount from 0" in reasons[0]
    assert "properties.price of 'Product Added' must be an amount from 0" in reasons[1]
    assert "(events.max_clock_skew_seconds)" in reasons[2]
    assert fine["messageId"] in logged(settings)
    assert future["messageId"] not in logged(settings)


MINUTE = dt.timedelta(minutes=1)


@pytest.mark.parametrize(
    ("content", "headers", "status", "code"),
    [
        (b"{not json", {}, 400, "invalid_json"),
        (b'{"anonymousId": "a", "timestamp": 17}', {}, 400, "invalid_message"),
        (b"x" * 40_000, {}, 400, "payload_too_large"),
        (b"{}", {"Content-Encoding": "br"}, 400, "invalid_encoding"),
        (b"{}", {"Authorization": "Basic bm9wZTo="}, 401, "unauthorized"),
    ],
)
def test_every_error_carries_a_machine_readable_code_beside_segments_detail(
    server: tuple[Settings, str],
    content: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    _, url = server
    auth = None if "Authorization" in headers else (KEY, "")
    with httpx.Client(base_url=url, auth=auth) as http:
        response = http.post("/v1/page", content=content, headers=headers)
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["success"] is False and answer["code"] == code and answer["detail"]
