"""Real-time segment membership end to end: events through the HTTP collector and the event log,
the stream worker commits them — and, in the same transaction, the persons' segment
entered/exited events — and the webhook dispatcher delivers those to a local receiver that
verifies each signature the way docs/webhooks.md tells a receiver to. Retries keep the event id;
every attempt is recorded; a person without marketing consent is never sent; re-reading the log
makes no second event. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from c360.api.app import create_app
from c360.api.server import serve_in_thread
from c360.config import Settings, WebhookSettings
from c360.logs.local import LocalLog
from c360.pipeline.stream_worker import run
from c360.pipeline.webhooks import Dispatcher
from c360.stores import ServingStore

KEY = "wk_segments"
SECRET = "whsec-test-0123456789"
DAY = dt.date(2026, 12, 5)


@dataclass
class Receiver:
    """A webhook receiver: verifies the signature as docs/webhooks.md shows, answers the
    scripted statuses first, then 200."""

    statuses: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, headers: Any, raw: bytes) -> int:
        signed = headers.get("C360-Signature", "")
        parts = dict(p.split("=", 1) for p in signed.split(","))
        expected = hmac.new(
            SECRET.encode(), parts["t"].encode() + b"." + raw, hashlib.sha256
        ).hexdigest()
        with self.lock:
            self.received.append(
                {
                    "event_id": headers.get("C360-Event-Id"),
                    "idempotency_key": headers.get("Idempotency-Key"),
                    "valid": hmac.compare_digest(parts["v1"], expected),
                    "body": json.loads(raw),
                }
            )
            return self.statuses.pop(0) if self.statuses else 200


@pytest.fixture
def receiver() -> Iterator[tuple[str, Receiver]]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            status = state.handle(self.headers, raw)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks", state
    finally:
        server.shutdown()
        server.server_close()


def publish(store: ServingStore) -> None:
    store.publish_batch(
        DAY,
        {
            "person": pa.table({"person_id": ["p_1", "p_2"], "email": ["a@x.com", "b@x.com"]}),
            "identity_map": pa.table(
                {
                    "id_type": ["customer_id", "customer_id"],
                    "id_value": ["42", "43"],
                    "person_id": ["p_1", "p_2"],
                }
            ),
            "batch_profile": pa.table(
                {
                    "person_id": ["p_1", "p_2"],
                    "total_lifetime_spend": [400.0, 900.0],
                    "marketing_consent": [True, False],  # p_2 said no
                }
            ),
        },
    )


def event(kind: str, mid: str, cookie: str, minutes_ago: float, **fields: Any) -> dict[str, Any]:
    when = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes_ago)
    return {
        "type": kind,
        "messageId": mid,
        "anonymousId": cookie,
        "timestamp": when.isoformat().replace("+00:00", "Z"),
        **fields,
    }


def added(cart: str, price: float) -> dict[str, Any]:
    return {"cart_id": cart, "product_id": "sku-1", "price": price, "quantity": 1}


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC).timestamp()

    def __call__(self) -> float:
        return self.now


def test_entered_and_exited_reach_a_verifying_receiver(
    store: ServingStore, tmp_path: Path, receiver: tuple[str, Receiver]
) -> None:
    url, received = receiver
    publish(store)
    store.create_segment("abandoned-cart", "cart_value > 100 and total_lifetime_spend > 100")
    store.create_segment("big-batch-only", "total_lifetime_spend > 100")  # not real time
    settings = Settings.model_validate({"collector": {"write_keys": [KEY]}})
    with (
        LocalLog(tmp_path / "log", 3) as log,
        serve_in_thread(create_app(settings, store=store, log=log)) as api,
        httpx.Client(base_url=api, auth=(KEY, "")) as http,
    ):

        def send(*events: dict[str, Any]) -> None:
            answer = http.post("/v1/batch", json={"batch": list(events)})
            assert answer.status_code == 200, answer.text

        send(
            event("identify", "m1", "cookie-a", 10, userId="42"),
            event("track", "m2", "cookie-a", 9, event="Product Added",
                  properties=added("k1", 150.0)),
            event("identify", "m3", "cookie-b", 10, userId="43"),
            event("track", "m4", "cookie-b", 9, event="Product Added",
                  properties=added("k2", 300.0)),
            event("track", "m5", "cookie-c", 9, event="Product Added",  # nobody we know
                  properties=added("k3", 500.0)),
        )  # fmt: skip
        run(log, store, topics=("clickstream",), stop_when_caught_up=True)
        events = store.query("SELECT person_id, kind FROM segment_event ORDER BY person_id")
        assert events == [
            {"person_id": "p_1", "kind": "segment.entered"},
            {"person_id": "p_2", "kind": "segment.entered"},
        ]
        members = store.query("SELECT segment, person_id FROM segment_live_member")
        assert sorted(m["person_id"] for m in members) == ["p_1", "p_2"]
        assert store.segment("abandoned-cart").live_members == 2
        assert store.segment("big-batch-only").live_members is None

        clock = Clock()
        hooks = WebhookSettings(url=url, secret=SECRET, backoff_base_seconds=30)
        dispatcher = Dispatcher(hooks, store, clock=clock, rng=random.Random(1))
        received.statuses = [503]  # the first delivery fails
        first = dispatcher.round()
        assert (first.retrying, first.withheld, first.delivered) == (1, 1, 0)
        assert dispatcher.round().handled == 0  # not due yet: backoff
        clock.now += 60
        second = dispatcher.round()
        assert second.delivered == 1
        assert [r["valid"] for r in received.received] == [True, True]
        ids = {r["event_id"] for r in received.received}
        assert len(ids) == 1  # the retry carries the same id
        assert {r["idempotency_key"] for r in received.received} == ids
        body = received.received[-1]["body"]
        assert (body["type"], body["segment"], body["person_id"], body["email"]) == (
            "segment.entered",
            "abandoned-cart",
            "p_1",
            "a@x.com",
        )
        attempts = store.webhook_deliveries(body["id"])
        assert [(a["attempt"], a["status_code"], a["succeeded"]) for a in attempts] == [
            (1, 503, False),
            (2, 200, True),
        ]

        # p_1 checks out: the cart empties, p_1 exits; p_2's event was never sent.
        send(event("track", "m6", "cookie-a", 5, event="Order Completed",
                   properties={"order_id": "o-1", "total": 150.0}))  # fmt: skip
        run(log, store, topics=("clickstream",), stop_when_caught_up=True)
        clock.now += 1
        assert dispatcher.round().delivered == 1
        dispatcher.close()
    kinds = [(r["body"]["type"], r["body"]["person_id"]) for r in received.received]
    assert kinds[-1] == ("segment.exited", "p_1")
    assert all(r["body"]["person_id"] != "p_2" for r in received.received)
    assert all("b@x.com" not in json.dumps(r["body"]) for r in received.received)
    statuses = store.query("SELECT person_id, kind, status FROM segment_event ORDER BY occurred_at")
    assert {(s["person_id"], s["kind"], s["status"]) for s in statuses} == {
        ("p_1", "segment.entered", "delivered"),
        ("p_2", "segment.entered", "withheld"),
        ("p_1", "segment.exited", "delivered"),
    }


def test_a_delivery_that_keeps_failing_is_given_up_and_recorded(
    store: ServingStore, tmp_path: Path, receiver: tuple[str, Receiver]
) -> None:
    url, received = receiver
    publish(store)
    store.create_segment("carts", "cart_value > 100")
    with LocalLog(tmp_path / "log", 1) as log:
        identify = event("identify", "m1", "cookie-a", 3, userId="42")
        add = event(
            "track", "m2", "cookie-a", 2, event="Product Added", properties=added("k1", 120)
        )
        log.append("clickstream", [("cookie-a", json.dumps(m).encode()) for m in (identify, add)])
        run(log, store, topics=("clickstream",), stop_when_caught_up=True)
        run(log, store, topics=("clickstream",), stop_when_caught_up=True)  # nothing new
    assert store.query("SELECT count(*) AS n FROM segment_event") == [{"n": 1}]
    received.statuses = [500, 500, 500]
    clock = Clock()
    hooks = WebhookSettings(url=url, secret=SECRET, max_attempts=3, backoff_base_seconds=1)
    dispatcher = Dispatcher(hooks, store, clock=clock, rng=random.Random(2))
    outcomes = []
    for _ in range(3):
        outcomes.append(dispatcher.round())
        clock.now += 10
    dispatcher.close()
    assert [(o.retrying, o.failed) for o in outcomes] == [(1, 0), (1, 0), (0, 1)]
    event_id = received.received[0]["event_id"]
    assert [a["status_code"] for a in store.webhook_deliveries(event_id)] == [500, 500, 500]
    assert store.query("SELECT status FROM segment_event") == [{"status": "failed"}]


def test_an_abandoned_cart_enters_after_its_silence_with_no_event(
    store: ServingStore, tmp_path: Path
) -> None:
    publish(store)
    store.create_segment(
        "abandoned-cart", "cart_value > 100 and time_since_last_event_seconds > 1800"
    )
    with LocalLog(tmp_path / "log", 1) as log:

        def stream(*messages: dict[str, Any]) -> None:
            log.append("clickstream", [("cookie-a", json.dumps(m).encode()) for m in messages])
            run(log, store, topics=("clickstream",), stop_when_caught_up=True)

        stream(
            event("identify", "m1", "cookie-a", 6, userId="42"),
            event("track", "m2", "cookie-a", 5, event="Product Added",
                  properties=added("k1", 180.0)),
        )  # fmt: skip
        assert store.query("SELECT count(*) AS n FROM segment_event") == [{"n": 0}]  # active
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        assert store.sweep_live_segments(now) == 0  # 5 minutes of silence: not yet
        later = now + dt.timedelta(minutes=26)
        assert store.sweep_live_segments(later) == 1  # 31 minutes: abandoned
        assert store.sweep_live_segments(later) == 0  # once
        preview = store.preview_segment("time_since_last_event_seconds > 60 and cart_value > 100")
        assert [r["person_id"] for r in preview.sample] == ["p_1"]
        assert preview.sample[0]["time_since_last_event_seconds"] > 290
        stream(event("page", "m3", "cookie-a", 0.1))  # back: no longer abandoned
    kinds = store.query("SELECT person_id, kind FROM segment_event ORDER BY kind")
    assert kinds == [  # entered (as of the sweep's time, ahead of the clock), then exited
        {"person_id": "p_1", "kind": "segment.entered"},
        {"person_id": "p_1", "kind": "segment.exited"},
    ]


def test_the_idle_stream_worker_sweeps(
    store: ServingStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from c360.pipeline import stream_worker

    monkeypatch.setattr(stream_worker, "SWEEP_EVERY_S", 0.0)
    swept: list[int] = []
    original = store.sweep_live_segments

    def counting(*args: Any, **kwargs: Any) -> int:
        swept.append(original(*args, **kwargs))
        return swept[-1]

    monkeypatch.setattr(store, "sweep_live_segments", counting)
    with LocalLog(tmp_path / "log", 1) as log:
        run(log, store, topics=("clickstream",), stop_when_caught_up=False, poll_interval=0.01,
            should_stop=lambda: len(swept) >= 2)  # fmt: skip
    assert swept == [0, 0]


class Crash(Exception):
    pass


def _cart_stream(log: LocalLog) -> None:
    """Two customers' carts cross 100 and fall back, one micro-batch of 2 records at a time."""
    messages = [
        ("cookie-a", event("identify", "c1", "cookie-a", 9, userId="42")),
        ("cookie-b", event("identify", "c2", "cookie-b", 9, userId="43")),
        ("cookie-a", event("track", "c3", "cookie-a", 8, event="Product Added",
                           properties=added("k1", 150.0))),
        ("cookie-b", event("track", "c4", "cookie-b", 8, event="Product Added",
                           properties=added("k2", 250.0))),
        ("cookie-a", event("track", "c5", "cookie-a", 7, event="Order Completed",
                           properties={"order_id": "o-1", "total": 150.0})),
        ("cookie-b", event("track", "c6", "cookie-b", 7, event="Order Completed",
                           properties={"order_id": "o-2", "total": 250.0})),
    ]  # fmt: skip
    log.append("clickstream", [(key, json.dumps(m).encode()) for key, m in messages])


EXPECTED_EVENTS = sorted(
    (person, kind) for person in ("p_1", "p_2") for kind in ("segment.entered", "segment.exited")
)


def _events(store: ServingStore) -> list[tuple[str, str]]:
    rows = store.query("SELECT person_id, kind FROM segment_event")
    return sorted((r["person_id"], r["kind"]) for r in rows)


@pytest.mark.parametrize("where", ["inside the transaction", "after the commit"])
def test_a_crash_neither_loses_nor_repeats_an_event(
    store: ServingStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    from c360.stores import live_segments

    publish(store)
    store.create_segment("carts", "cart_value > 100")
    real = live_segments.evaluate
    calls = 0

    def crash_in_the_second_batch(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        changes = real(*args, **kwargs)  # its events are written in the batch's transaction
        if calls == 2:
            raise Crash
        return changes

    def crash_after_the_second_commit(result: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise Crash

    with LocalLog(tmp_path / "log", 1) as log:
        _cart_stream(log)
        with pytest.raises(Crash):
            if where == "inside the transaction":
                monkeypatch.setattr(live_segments, "evaluate", crash_in_the_second_batch)
                run(log, store, topics=("clickstream",), stop_when_caught_up=True, batch_size=2)
            else:
                run(log, store, topics=("clickstream",), stop_when_caught_up=True, batch_size=2,
                    on_commit=crash_after_the_second_commit)  # fmt: skip
        monkeypatch.undo()
        before = _events(store)
        assert before == [] if where == "inside the transaction" else len(before) == 2
        run(log, store, topics=("clickstream",), stop_when_caught_up=True, batch_size=2)
    assert _events(store) == EXPECTED_EVENTS  # each change once


def test_a_dispatcher_that_dies_after_sending_resends_with_the_same_id(
    store: ServingStore,
    tmp_path: Path,
    receiver: tuple[str, Receiver],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from click.testing import CliRunner

    from c360.cli.main import cli

    url, received = receiver
    publish(store)
    store.create_segment("carts", "cart_value > 100")
    with LocalLog(tmp_path / "log", 1) as log:
        _cart_stream(log)
        run(log, store, topics=("clickstream",), stop_when_caught_up=True, batch_size=2)
    clock = Clock()
    hooks = WebhookSettings(url=url, secret=SECRET)
    dispatcher = Dispatcher(hooks, store, clock=clock, rng=random.Random(3))

    record = store.record_delivery

    def dies(attempt: Any) -> bool:
        if attempt.succeeded:
            raise Crash  # the request went out and was answered; its record did not
        return record(attempt)

    monkeypatch.setattr(store, "record_delivery", dies)
    with pytest.raises(Crash):
        dispatcher.round()
    monkeypatch.undo()
    dispatcher.close()
    first_id = received.received[0]["event_id"]

    # The command line delivers what is due (everything: the record of the first was lost).
    url_env = {
        "C360_SERVING_URL": str(store.engine.url.render_as_string(hide_password=False)),
        "C360_WEBHOOKS_URL": url,
        "C360_WEBHOOKS_SECRET": SECRET,
    }
    done = CliRunner().invoke(cli, ["webhooks", "deliver", "--once", "--json"], env=url_env)
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["delivered"] == 2
    statuses = store.query("SELECT person_id, status FROM segment_event")
    assert sorted((r["person_id"], r["status"]) for r in statuses) == [
        ("p_1", "delivered"),
        ("p_1", "delivered"),
        ("p_2", "withheld"),  # no marketing consent: never sent
        ("p_2", "withheld"),
    ]
    ids = [r["event_id"] for r in received.received]
    assert ids.count(first_id) == 2  # sent again, with the same id: the receiver dedupes
    assert len(set(ids)) == 2 and all(r["valid"] for r in received.received)
    assert SECRET not in done.output
