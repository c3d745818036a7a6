"""Access to the Profile API, on a real uvicorn server: API keys and scopes, revocation, rate
limits, CORS, liveness and readiness, the OpenAPI security, and `c360 keys` / `c360 serve`."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text, update
from sqlalchemy.engine import make_url

import c360
from c360.access.keys import generate
from c360.api.app import create_app
from c360.api.server import serve_in_thread
from c360.cli.main import cli
from c360.config import Settings, load_config
from c360.contracts import serving
from c360.errors import ConfigError
from c360.stores import ServingStore, open_store
from plugins.services import postgres_server_url

DAY = dt.date(2025, 6, 1)


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    environ = {"C360_LAKE_URL": str(tmp_path / "lake")}
    return load_config(environ=environ, overrides=overrides).settings


def publish(store: ServingStore) -> None:
    """One person, p_1, known by the email a@x.com."""
    store.publish_batch(
        DAY,
        {
            "person": pa.table({"person_id": ["p_1"], "email": ["a@x.com"]}),
            "identity_map": pa.table(
                {"id_type": ["email"], "id_value": ["a@x.com"], "person_id": ["p_1"]}
            ),
            "batch_profile": pa.table({"person_id": ["p_1"], "spend": [10.0]}),
        },
    )


def new_key(store: ServingStore, *scopes: str, rate: float | None = None) -> str:
    made = generate(scopes, rate_limit_per_s=rate)
    store.add_api_key(made.record)
    return made.key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@contextmanager
def api(settings: Settings, store: ServingStore) -> Iterator[httpx.Client]:
    with (
        serve_in_thread(create_app(settings, store=store)) as url,
        httpx.Client(base_url=url) as client,
    ):
        yield client


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[ServingStore]:
    store = open_store(f"sqlite:///{tmp_path / 'serving.db'}")
    store.migrate()
    yield store
    store.dispose()


def _unauthorized(answer: httpx.Response, fragment: str) -> None:
    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert answer.json()["error"]["code"] == "unauthorized"
    assert fragment in answer.json()["error"]["message"]


# -- keys and scopes --------------------------------------------------------------------------


def test_profile_reads_need_a_key_with_the_scope(store: ServingStore, tmp_path: Path) -> None:
    publish(store)
    reader = new_key(store, "profiles:read")
    searcher = new_key(store, "profiles:search")
    admin = new_key(store, "admin")
    with api(settings_for(tmp_path), store) as client:
        paths = ("/v1/profiles/p_1", "/v1/profiles/by/email/A@x.com")
        for path in paths:
            _unauthorized(client.get(path), "an API key is required")
            assert client.get(path).headers["www-authenticate"] == "Bearer"
            assert client.get(path, headers=bearer(reader)).json()["person_id"] == "p_1"
            assert client.get(path, headers=bearer(admin)).json()["person_id"] == "p_1"
            forbidden = client.get(path, headers=bearer(searcher))
            assert forbidden.status_code == 403
            assert forbidden.json()["error"]["code"] == "forbidden"
            assert "profiles:read" in forbidden.json()["error"]["message"]
            assert 'error="insufficient_scope"' in forbidden.headers["www-authenticate"]

        key_id, secret = reader.split("_")[1], reader.split("_", 2)[2]
        for wrong in (
            f"c360_{key_id}_{secret[:-1]}x" if secret[-1] != "x" else f"c360_{key_id}_{secret}y",
            f"c360_{'0' * 16}_{secret}",  # well-formed, unknown
            "not-a-c360-key",
            reader.upper(),
        ):
            answer = client.get("/v1/profiles/p_1", headers=bearer(wrong))
            _unauthorized(answer, "unknown API key")
            assert answer.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        basic = client.get("/v1/profiles/p_1", auth=("user", reader))  # not a bearer token
        _unauthorized(basic, "an API key is required")

        # a key made while the server runs works at once (a miss re-reads the keys) ...
        late = new_key(store, "profiles:read")
        assert client.get("/v1/profiles/p_1", headers=bearer(late)).status_code == 200
        # ... and a 404 needs the key too, so it tells nothing to a caller without one
        _unauthorized(client.get("/v1/profiles/p_unknown"), "an API key is required")
        assert client.get("/v1/profiles/p_unknown", headers=bearer(late)).status_code == 404


def test_a_revoked_key_stops_working_within_the_refresh_time(
    sqlite_store: ServingStore, tmp_path: Path
) -> None:
    publish(sqlite_store)
    key = new_key(sqlite_store, "profiles:read")
    refresh = 0.3
    with api(
        settings_for(tmp_path, **{"api.key_refresh_seconds": refresh}), sqlite_store
    ) as client:
        assert client.get("/v1/profiles/p_1", headers=bearer(key)).status_code == 200
        revoked_at = time.monotonic()
        sqlite_store.revoke_api_key(key.split("_")[1])
        while client.get("/v1/profiles/p_1", headers=bearer(key)).status_code == 200:
            assert time.monotonic() - revoked_at < refresh + 2, "still accepted"
            time.sleep(0.02)
        _unauthorized(client.get("/v1/profiles/p_1", headers=bearer(key)), "revoked")


# -- rate limits ------------------------------------------------------------------------------


def test_a_key_over_its_rate_gets_429_with_retry_after_and_its_bucket_refills(
    sqlite_store: ServingStore, tmp_path: Path
) -> None:
    publish(sqlite_store)
    own = new_key(sqlite_store, "profiles:read", rate=2.0)  # a burst of 2, then 2 a second
    default = new_key(sqlite_store, "profiles:read")  # api.rate_limit_per_s: 3
    unlimited = new_key(sqlite_store, "profiles:read", rate=0.0)
    with api(settings_for(tmp_path, **{"api.rate_limit_per_s": 3}), sqlite_store) as client:

        def get(key: str) -> httpx.Response:
            return client.get("/v1/profiles/p_1", headers=bearer(key))

        assert [get(own).status_code for _ in range(2)] == [200, 200]
        limited = get(own)
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "rate_limited"
        assert "2 requests per second" in limited.json()["error"]["message"]
        retry_after = limited.headers["retry-after"]
        assert retry_after.isdigit() and int(retry_after) >= 1
        assert get(default).status_code == 200  # buckets are per key
        time.sleep(int(retry_after))
        assert get(own).status_code == 200  # refilled

        statuses = [get(default).status_code for _ in range(5)]
        assert statuses.count(429) >= 2 and statuses[:2] == [200, 200]
        assert all(get(unlimited).status_code == 200 for _ in range(20))


# -- CORS -------------------------------------------------------------------------------------

PREFLIGHT = {
    "Origin": "https://shop.example.com",
    "Access-Control-Request-Method": "GET",
    "Access-Control-Request-Headers": "authorization",
}


def test_cors_is_closed_by_default_and_a_preflight_is_answered(
    sqlite_store: ServingStore, tmp_path: Path
) -> None:
    publish(sqlite_store)
    key = new_key(sqlite_store, "profiles:read")
    with api(settings_for(tmp_path), sqlite_store) as client:
        preflight = client.options("/v1/profiles/p_1", headers=PREFLIGHT)
        assert preflight.status_code == 400  # answered (not 405), and refused
        assert "access-control-allow-origin" not in preflight.headers
        simple = client.get(
            "/v1/profiles/p_1", headers={**bearer(key), "Origin": PREFLIGHT["Origin"]}
        )
        assert simple.status_code == 200
        assert "access-control-allow-origin" not in simple.headers


def test_cors_opens_to_the_configured_origins_only(
    sqlite_store: ServingStore, tmp_path: Path
) -> None:
    publish(sqlite_store)
    key = new_key(sqlite_store, "profiles:read", rate=0.1)  # one request, then 429 for 10 s
    origins = "https://shop.example.com, http://localhost:3000"
    with api(settings_for(tmp_path, **{"api.cors_origins": origins}), sqlite_store) as client:
        preflight = client.options("/v1/profiles/p_1", headers=PREFLIGHT)
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == PREFLIGHT["Origin"]
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        assert "GET" in preflight.headers["access-control-allow-methods"]
        other = client.options(
            "/v1/profiles/p_1", headers={**PREFLIGHT, "Origin": "https://evil.example"}
        )
        assert other.status_code == 400
        assert "access-control-allow-origin" not in other.headers

        origin = {"Origin": PREFLIGHT["Origin"]}
        ok = client.get("/v1/profiles/p_1", headers={**bearer(key), **origin})
        assert ok.headers["access-control-allow-origin"] == PREFLIGHT["Origin"]
        # error answers carry the CORS headers too, so the page's script can read them
        limited = client.get("/v1/profiles/p_1", headers={**bearer(key), **origin})
        assert limited.status_code == 429
        assert limited.headers["access-control-allow-origin"] == PREFLIGHT["Origin"]
        assert "retry-after" in limited.headers["access-control-expose-headers"].lower()
        denied = client.get("/v1/profiles/p_1", headers=origin)
        assert denied.status_code == 401
        assert denied.headers["access-control-allow-origin"] == PREFLIGHT["Origin"]


def test_a_cors_origin_must_be_an_origin() -> None:
    for wrong, fragment in (
        ("https://shop.example.com/", "no path, not even a final /"),
        ("shop.example.com", "is not an origin"),
    ):
        with pytest.raises(ConfigError, match=fragment):
            load_config(environ={"C360_API_CORS_ORIGINS": wrong})


# -- health -----------------------------------------------------------------------------------


def test_liveness_and_readiness_need_no_key(sqlite_store: ServingStore, tmp_path: Path) -> None:
    with api(settings_for(tmp_path), sqlite_store) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        not_yet = client.get("/readyz")
        assert not_yet.status_code == 503
        assert not_yet.json()["error"] == {
            "code": "not_ready",
            "message": "no batch has been published yet",
        }
        assert client.get("/health").json() == {"status": "ok", "batch": None}

        publish(sqlite_store)
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready"
        assert ready.json()["batch"]["batch_date"] == DAY.isoformat()
        assert 0 <= ready.json()["publish_age_seconds"] < 60

        with sqlite_store.engine.begin() as conn:  # the daily batch stopped three days ago
            conn.execute(
                update(serving.batch_publish).values(
                    published_at=dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=3)
                )
            )
        stale = client.get("/readyz")
        assert stale.status_code == 503
        assert "published 72.0 h ago" in stale.json()["error"]["message"]
        assert "api.readiness_max_publish_age_hours (48)" in stale.json()["error"]["message"]
        assert client.get("/healthz").status_code == 200  # alive all the same

    unchecked = settings_for(tmp_path, **{"api.readiness_max_publish_age_hours": 0})
    with api(unchecked, sqlite_store) as client:
        assert client.get("/readyz").status_code == 200


@pytest.mark.postgres
def test_readiness_follows_the_store(postgres_url: str, tmp_path: Path) -> None:
    store = open_store(postgres_url)
    store.migrate()
    publish(store)
    admin = create_engine(
        make_url(postgres_server_url()).set(drivername="postgresql+psycopg"),
        isolation_level="AUTOCOMMIT",
    )
    database = make_url(postgres_url).database

    def allow_connections(allowed: bool) -> None:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {allowed}'))
            if not allowed:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": database},
                )

    try:
        with api(settings_for(tmp_path), store) as client:
            assert client.get("/readyz").status_code == 200
            allow_connections(False)
            down = client.get("/readyz")
            assert down.status_code == 503
            assert down.json()["error"] == {
                "code": "not_ready",
                "message": "the serving store does not answer",
            }
            assert client.get("/healthz").status_code == 200
            allow_connections(True)
            assert client.get("/readyz").status_code == 200
    finally:
        allow_connections(True)
        store.dispose()
        admin.dispose()


# -- the OpenAPI document ---------------------------------------------------------------------


def test_openapi_declares_the_bearer_scheme_and_each_routes_scope(
    sqlite_store: ServingStore, tmp_path: Path
) -> None:
    with api(settings_for(tmp_path), sqlite_store) as client:
        document = client.get("/openapi.json").json()
    scheme = document["components"]["securitySchemes"]["ApiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "c360 keys create" in scheme["description"]
    for path in ("/v1/profiles/{person_id}", "/v1/profiles/by/{id_type}/{id_value}"):
        operation = document["paths"][path]["get"]
        assert operation["security"] == [{"ApiKey": ["profiles:read"]}]
        assert {"401", "403", "404", "429"} <= set(operation["responses"])
        assert operation["responses"]["429"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"
        }
        assert "`profiles:read` (or `admin`)" in operation["description"]
    for path in ("/health", "/healthz", "/readyz"):
        assert "security" not in document["paths"][path]["get"]
    assert "ErrorBody" in document["components"]["schemas"]


# -- the command line -------------------------------------------------------------------------


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    db = tmp_path / "serving.db"
    env = {"C360_SERVING_URL": f"sqlite:///{db}"}
    runner = CliRunner()

    def run(*args: str) -> Any:
        result = runner.invoke(cli, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result

    created = json.loads(
        run("keys", "create", "--scope", "profiles:read", "--name", "shop", "--json").stdout
    )
    key = created.pop("key")
    assert created["scopes"] == ["profiles:read"] and created["name"] == "shop"
    secret = key.split("_", 2)[2]
    plain = run("keys", "create", "--scope", "admin", "--scope", "profiles:search")
    other_key = plain.stdout.strip()  # the key alone on stdout: KEY=$(c360 keys create …)
    assert other_key.startswith("c360_") and "\n" not in other_key
    assert "shown once" in plain.stderr

    listed = json.loads(run("keys", "list", "--json").stdout)
    assert [k["key_id"] for k in listed] == [created["key_id"], other_key.split("_")[1]]
    assert listed[0] == created
    text_list = run("keys", "list").stdout
    for shown in (json.dumps(listed), text_list):
        assert secret not in shown and "key" not in json.loads(json.dumps(listed))[0]
        assert other_key.split("_", 2)[2] not in shown
        assert "sha256" not in shown
    assert secret.encode() not in db.read_bytes()  # only the hash is stored

    revoked = json.loads(run("keys", "revoke", created["key_id"], "--json").stdout)
    assert revoked["revoked_at"] is not None
    assert "revoked" in run("keys", "list").stdout.splitlines()[0]
    assert "stop accepting it within 5 s" in run("keys", "revoke", other_key).stdout  # a key

    unknown = runner.invoke(cli, ["keys", "revoke", "0" * 16], env=env)
    assert unknown.exit_code != 0
    bad = runner.invoke(cli, ["keys", "create", "--scope", "profiles:write"], env=env)
    assert bad.exit_code == 2 and "profiles:write" in bad.output


def _c360(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("C360_")}
    clean["PYTHONPATH"] = str(Path(c360.__file__).parents[1])  # the c360 under test
    return subprocess.run(
        [sys.executable, "-m", "c360", *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.postgres
def test_serve_against_an_unreachable_store_prints_one_line(tmp_path: Path) -> None:
    line = _serve_cannot_start("postgresql://c360:hunter2@127.0.0.1:1/serving", tmp_path)
    assert "postgresql://c360:***@127.0.0.1:1/serving" in line
    assert "start the store, or fix serving.url (set in env C360_SERVING_URL)" in line


@pytest.mark.postgres
def test_serve_against_a_store_that_refuses_the_connection_fails_at_once(tmp_path: Path) -> None:
    """A database that does not exist is a setting to fix, not a store to wait for: the line
    names it and serving.url, without the advice for a store that is down."""
    url = make_url(postgres_server_url()).set(password="hunter2", database="c360_no_such_db")
    line = _serve_cannot_start(url.render_as_string(hide_password=False), tmp_path)
    assert 'database "c360_no_such_db" does not exist' in line
    assert "(serving.url: set in env C360_SERVING_URL)" in line
    assert "start the store" not in line and "retrying helps" not in line


def test_serve_on_a_store_it_cannot_open_prints_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "serving.db"
    folder.mkdir()  # a folder where the database file should be
    assert "check serving.url" in _serve_cannot_start(f"sqlite:///{folder}", tmp_path)


def _serve_cannot_start(serving_url: str, tmp_path: Path) -> str:
    """The one line `c360 serve` prints when it cannot start on the store at ``serving_url``
    (whose password, if any, is "hunter2": it must not be printed)."""
    done = _c360("serve", "--port", "1", env={"C360_SERVING_URL": serving_url}, cwd=tmp_path)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: the API cannot start: serving store ")
    assert "hunter2" not in done.stderr + done.stdout
    assert done.stdout == ""  # the banner comes after the store answered
    return lines[0]
