"""The API's Prometheus metrics over HTTP: answers counted by route template and status, the
rate limiter's and the collector's counts, no personal data in any label, and one sum over
the workers of ``c360 serve --workers 2``."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

import c360
from c360.access.keys import generate
from c360.api.app import create_app
from c360.api.server import serve_in_thread
from c360.config import load_config
from c360.stores import ServingStore, open_store
from ports import free_port

DAY = "2025-06-10"
WRITE_KEY = "wk_metrics_test"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(client: httpx.Client) -> Samples:
    """Every sample of ``/metrics`` by (name, sorted labels)."""
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def publish(store: ServingStore) -> None:
    import datetime as dt

    store.publish_batch(
        dt.date.fromisoformat(DAY),
        {
            "person": pa.table({"person_id": ["p_1"], "email": ["ann@x.com"]}),
            "identity_map": pa.table(
                {"id_type": ["email"], "id_value": ["ann@x.com"], "person_id": ["p_1"]}
            ),
            "batch_profile": pa.table({"person_id": ["p_1"], "total_lifetime_spend": [10.0]}),
        },
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ServingStore]:
    opened = open_store(f"sqlite:///{tmp_path / 'serving.db'}")
    opened.migrate()
    publish(opened)
    yield opened
    opened.dispose()


@pytest.fixture
def api(store: ServingStore, tmp_path: Path) -> Iterator[tuple[httpx.Client, str]]:
    settings = load_config(
        environ={
            "C360_LAKE_URL": str(tmp_path / "lake"),
            "C360_LOG_URL": f"local://{tmp_path / 'log'}",
            "C360_COLLECTOR_WRITE_KEYS": WRITE_KEY,
        }
    ).settings
    key = generate(["profiles:read"])
    store.add_api_key(key.record)
    with (
        serve_in_thread(create_app(settings, store=store)) as url,
        httpx.Client(base_url=url) as client,
    ):
        yield client, key.key


def test_answers_are_counted_by_route_template_never_by_path(
    api: tuple[httpx.Client, str], store: ServingStore
) -> None:
    client, key = api
    bearer = {"Authorization": f"Bearer {key}"}
    before = samples(client)
    assert client.get("/v1/profiles/p_1", headers=bearer).status_code == 200
    assert client.get("/v1/profiles/by/email/ann@x.com", headers=bearer).status_code == 200
    assert client.get("/v1/profiles/p_nobody", headers=bearer).status_code == 404
    assert client.get("/v1/profiles/p_1").status_code == 401
    assert client.get("/no/such/route/ann@x.com").status_code == 404
    after = samples(client)

    by_id = "/v1/profiles/{person_id}"
    requests = "c360_http_requests_total"
    assert delta(before, after, requests, route=by_id, method="GET", status="200") == 1
    assert delta(before, after, requests, route=by_id, method="GET", status="404") == 1
    assert delta(before, after, requests, route=by_id, method="GET", status="401") == 1
    by_email = "/v1/profiles/by/{id_type}/{id_value:path}"
    assert delta(before, after, requests, route=by_email, method="GET", status="200") == 1
    assert delta(before, after, requests, route="unmatched", method="GET", status="404") == 1
    latency = "c360_http_request_duration_seconds_count"
    assert delta(before, after, latency, route=by_id, method="GET") == 3
    # No person id, email or raw path in any label.
    labels = {value for (_, pairs) in after for _, value in pairs}
    assert not {value for value in labels if "ann@x.com" in value or "p_1" in value}
    assert not {value for value in labels if "/no/such" in value}


def test_rate_limited_and_collected_events_are_counted(
    api: tuple[httpx.Client, str], store: ServingStore
) -> None:
    client, _ = api
    slow = generate(["profiles:read"], rate_limit_per_s=1)
    store.add_api_key(slow.record)
    before = samples(client)
    statuses = [
        client.get("/v1/profiles/p_1", headers={"Authorization": f"Bearer {slow.key}"}).status_code
        for _ in range(4)
    ]
    basic = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
    page = {
        "type": "page",
        "anonymousId": "a-1",
        "name": "Home",
        "timestamp": "2025-06-10T10:00:00Z",
    }
    assert client.post("/v1/page", json=page, headers=basic).status_code == 200
    assert client.post("/v1/page", json={"name": "no ids"}, headers=basic).status_code == 400
    batch = {"batch": [page, {**page, "type": "page", "anonymousId": None, "userId": None}]}
    assert client.post("/v1/batch", json=batch, headers=basic).json()["rejected_count"] == 1
    after = samples(client)

    assert delta(before, after, "c360_rate_limited_requests_total") == statuses.count(429) >= 1
    events = "c360_collector_events_total"
    assert delta(before, after, events, outcome="accepted", code="", reason="") == 2
    # Both refused messages lack an identifier: one reason code, never the message's text.
    refused = {"outcome": "rejected", "code": "invalid_message", "reason": "missing_field"}
    assert delta(before, after, events, **refused) == 2


def test_profile_cache_lookups_are_counted_as_hits_and_misses(
    api: tuple[httpx.Client, str],
) -> None:
    """The store counts them on its hot path; the scrape adds them to the counter."""
    client, key = api
    bearer = {"Authorization": f"Bearer {key}"}
    lookups = "c360_profile_cache_lookups_total"
    before = samples(client)
    assert client.get("/v1/profiles/p_1", headers=bearer).status_code == 200
    first = samples(client)
    assert delta(before, first, lookups, result="miss") == 1  # read whole, then kept
    assert delta(before, first, lookups, result="hit") == 0
    by_email = "/v1/profiles/by/email/ann@x.com"
    assert client.get(by_email, headers=bearer).status_code == 200
    second = samples(client)
    # SQLite finds the person apart, so the batch part p_1's read kept serves this one too
    assert delta(first, second, lookups, result="hit") == 1
    assert delta(first, second, lookups, result="miss") == 0
    assert client.get(by_email, headers=bearer).status_code == 200
    third = samples(client)
    assert delta(second, third, lookups, result="hit") == 1  # the find kept, no find again
    assert delta(second, third, lookups, result="miss") == 0


def test_api_metrics_off_leaves_no_middleware_and_no_route(
    store: ServingStore, tmp_path: Path
) -> None:
    """``api.metrics = false`` (to measure what the metrics cost): nothing counted, no /metrics."""
    settings = load_config(
        environ={"C360_LAKE_URL": str(tmp_path / "lake"), "C360_API_METRICS": "false"}
    ).settings
    labels = {"route": "/healthz", "method": "GET", "status": "200"}
    before = REGISTRY.get_sample_value("c360_http_requests_total", labels) or 0.0
    with serve_in_thread(create_app(settings, store=store)) as url:
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert httpx.get(f"{url}/metrics").status_code == 404
    assert (REGISTRY.get_sample_value("c360_http_requests_total", labels) or 0.0) == before


def test_two_workers_answer_one_sum(store: ServingStore, tmp_path: Path) -> None:
    """Whichever worker answers the scrape, it reports every worker's requests."""
    key = generate(["profiles:read"])
    store.add_api_key(key.record)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("C360_", "PROMETHEUS_"))}
    env |= {"C360_SERVING_URL": str(store.engine.url), "C360_API_PORT": str(port),
            "C360_LAKE_URL": str(tmp_path / "lake"),
            "PYTHONPATH": str(Path(c360.__file__).parents[1])}  # fmt: skip  # the c360 under test
    errors = tmp_path / "serve.err"
    with errors.open("wb") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "c360", "serve", "--workers", "2"],
            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            _wait_up(client, server, errors)
            for _ in range(40):  # new connections: the kernel spreads them over the workers
                httpx.get(
                    f"http://127.0.0.1:{port}/v1/profiles/p_1",
                    headers={"Authorization": f"Bearer {key.key}"},
                ).raise_for_status()
            route = ("route", "/v1/profiles/{person_id}")
            name = "c360_http_requests_total"
            key_of = (name, tuple(sorted([route, ("method", "GET"), ("status", "200")])))
            counts = {samples(client)[key_of] for _ in range(6)}
            # Each worker adds its cache's counts every second: the sum catches up with them.
            lookups = _cache_lookups(client)
            deadline = time.monotonic() + 10
            while sum(lookups.values()) < 40 and time.monotonic() < deadline:
                time.sleep(0.2)
                lookups = _cache_lookups(client)
        assert counts == {40.0}
        assert sum(lookups.values()) == 40
        assert 1 <= lookups["miss"] <= 2  # each worker's first read of p_1
    finally:
        server.terminate()
        server.wait(timeout=30)


def _cache_lookups(client: httpx.Client) -> dict[str, float]:
    found = samples(client)
    return {
        result: found.get(("c360_profile_cache_lookups_total", (("result", result),)), 0.0)
        for result in ("hit", "miss")
    }


def _wait_up(client: httpx.Client, server: subprocess.Popen[bytes], errors: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(errors.read_text())
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError("c360 serve --workers 2 did not come up")
