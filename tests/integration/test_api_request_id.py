"""Every API answer carries a request id — the client's when sane, else a new one — and every
log line written while serving it carries the same id."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from c360 import logformat
from c360.access.keys import generate
from c360.api.app import create_app
from c360.api.server import serve_in_thread
from c360.config import load_config
from c360.stores import ServingStore, StoreError, open_store


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    logformat.configure("json", "INFO", stream=stream)
    yield stream
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "c360"]:
        root.removeHandler(handler)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[httpx.Client, ServingStore]]:
    store = open_store(f"sqlite:///{tmp_path / 'serving.db'}")
    store.migrate()
    key = generate(["profiles:read"])
    store.add_api_key(key.record)
    settings = load_config(environ={"C360_LAKE_URL": str(tmp_path / "lake")}).settings
    with (
        serve_in_thread(create_app(settings, store=store)) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key.key}"}) as client,
    ):
        yield client, store
    store.dispose()


def test_the_id_follows_the_request_into_the_log(
    served: tuple[httpx.Client, ServingStore],
    lines: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, store = served

    def broken(*_: object) -> None:
        raise StoreError("serving store x (reading a profile): no such table: person")

    monkeypatch.setattr(store._reads, "profile_and_consent", broken)
    answer = client.get("/v1/profiles/p_1", headers={"X-Request-ID": "edge-7f3a.1"})
    assert answer.status_code == 500
    assert answer.headers["x-request-id"] == "edge-7f3a.1"
    logged = [orjson.loads(line) for line in lines.getvalue().splitlines()]
    assert [line["request_id"] for line in logged if line["level"] == "error"] == ["edge-7f3a.1"]


def test_a_missing_or_odd_id_is_replaced_by_a_new_one(
    served: tuple[httpx.Client, ServingStore],
) -> None:
    client, _ = served
    made = {client.get("/healthz").headers["x-request-id"] for _ in range(2)}
    odd = client.get("/healthz", headers={"X-Request-ID": "x" * 65}).headers["x-request-id"]
    assert len(made) == 2 and all(len(rid) == 32 for rid in made)
    assert odd != "x" * 65 and len(odd) == 32
