"""The Profile API's reads over HTTP: the unified profile, `fields=` projection, `explain=`
provenance, lookups by identifier, and the errors, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from c360.access.keys import generate
from c360.api.app import create_app
from c360.api.server import serve_in_thread
from c360.config import load_config
from c360.contracts import serving
from c360.stores import ServingStore, StoreError, StoreUnavailable, resolution

DAY = dt.date(2025, 6, 10)


@pytest.fixture
def api(store: ServingStore, tmp_path: Path) -> Iterator[httpx.Client]:
    with _served(_published(store), tmp_path) as client:
        yield client


def _published(store: ServingStore) -> ServingStore:
    """``store`` with Ann's batch, an order of hers since its cutoff and a shared mailbox."""
    store.publish_batch(
        DAY,
        {
            "person": pa.table({"person_id": ["p_1"], "email": ["ann@x.com"]}),
            "identity_map": pa.table(
                {
                    "id_type": ["customer_id", "email", "anonymous_id"],
                    "id_value": ["42", "ann@x.com", "a/b c"],
                    "person_id": ["p_1", "p_1", "p_1"],
                }
            ),
            "batch_profile": pa.table(
                {
                    "person_id": ["p_1"],
                    "total_lifetime_spend": [100.0],
                    "number_of_orders": pa.array([2], pa.int64()),
                    "avg_order_value": [50.0],
                    "rfm_recency": pa.array([4], pa.int64()),
                }
            ),
            # Ann's family mailbox: identity kept it out of identity_map, two persons hold it
            "ambiguous_identifier": pa.table(
                {"id_type": ["email"], "id_value": ["family@x.com"], "persons": [2]}
            ),
        },
    )
    with store.engine.begin() as conn:
        conn.execute(
            serving.realtime_order.insert(),
            [{"order_id": "o-9", "id_type": "anonymous_id", "id_value": "a/b c",
              "user_id": "42", "order_at": dt.datetime(2025, 6, 11, 9), "revenue": 50.0}],
        )  # fmt: skip
        resolution.resolve_all(conn)  # as a writer does (c360.stores.resolution)
    return store


@contextmanager
def _served(
    store: ServingStore, tmp_path: Path, environ: dict[str, str] | None = None
) -> Iterator[httpx.Client]:
    """A client of the API over ``store`` (configured by ``environ`` too), with a read key."""
    key = generate(["profiles:read"])
    store.add_api_key(key.record)
    variables = {"C360_LAKE_URL": str(tmp_path / "lake"), **(environ or {})}
    settings = load_config(environ=variables).settings
    headers = {"Authorization": f"Bearer {key.key}"}
    with (
        serve_in_thread(create_app(settings, store=store)) as url,
        httpx.Client(base_url=url, headers=headers) as client,
    ):
        yield client


def test_the_unified_profile_answers_with_the_layers_when_explained(api: httpx.Client) -> None:
    body = api.get("/v1/profiles/p_1").json()
    assert body["profile"]["number_of_orders"] == 3  # 2 in the batch, 1 since its cutoff
    assert body["profile"]["avg_order_value"] == pytest.approx(50.0)
    assert {i["id_type"] for i in body["identifiers"]} == {"customer_id", "email", "anonymous_id"}
    assert not {"provenance", "batch", "realtime"} & set(body)
    explained = api.get("/v1/profiles/p_1", params={"explain": "true"}).json()
    assert explained["batch"]["number_of_orders"] == 2
    assert explained["realtime"]["orders_since_cutoff"] == 1
    assert explained["profile"] == body["profile"] | {
        "time_since_last_event_seconds": explained["profile"]["time_since_last_event_seconds"]
    }
    assert explained["provenance"]["number_of_orders"]["layer"] == "merged"


def test_fields_narrow_the_answer(api: httpx.Client) -> None:
    answer = api.get("/v1/profiles/p_1", params={"fields": "number_of_orders,cart_value"})
    assert answer.status_code == 200
    assert answer.json() == {
        "person_id": "p_1",
        "redirected_from": None,
        "profile": {"number_of_orders": 3, "cart_value": None},
    }


def test_an_unknown_field_is_named_with_the_nearest_one(api: httpx.Client) -> None:
    answer = api.get("/v1/profiles/p_1", params={"fields": "number_of_order"})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "unknown_field"
    assert "number_of_order" in error["message"] and "'number_of_orders'" in error["message"]


def test_explain_tells_each_fields_layer(api: httpx.Client) -> None:
    body = api.get(
        "/v1/profiles/p_1", params={"fields": "number_of_orders,rfm_recency", "explain": "true"}
    ).json()
    provenance = body["provenance"]
    assert provenance["number_of_orders"]["layer"] == "merged"
    assert provenance["rfm_recency"] == {"layer": "batch", "as_of": "2025-06-11T00:00:00"}
    assert api.get("/v1/profiles/p_1", params={"explain": "maybe"}).status_code == 422


def test_any_identifier_finds_the_person(api: httpx.Client) -> None:
    by_email = api.get("/v1/profiles/by/email/ANN@x.com", params={"fields": "number_of_orders"})
    assert by_email.json()["person_id"] == "p_1"
    unknown = api.get("/v1/profiles/by/email/nobody@x.com")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    bad_type = api.get("/v1/profiles/by/passport/123")
    assert bad_type.status_code == 422 and "id_type" in bad_type.json()["error"]["message"]
    assert api.get("/v1/profiles/p_nobody").status_code == 404


def test_a_shared_identifier_is_a_409_that_names_no_value(api: httpx.Client) -> None:
    answer = api.get("/v1/profiles/by/email/Family@X.com", params={"fields": "cart_value"})
    assert answer.status_code == 409
    assert answer.json() == {
        "error": {
            "code": "ambiguous_identifier",
            "message": "that email belongs to 2 persons; look the person up by person id or "
            "another identifier",
        }
    }
    assert "family" not in answer.text.lower()  # an error body carries no personal data
    assert api.get("/v1/profiles/by/email/nobody@x.com").status_code == 404


def test_the_openapi_document_declares_what_the_routes_read(api: httpx.Client) -> None:
    document = api.get("/openapi.json").json()
    get = document["paths"]["/v1/profiles/{person_id}"]["get"]
    assert {p["name"] for p in get["parameters"]} == {"person_id", "fields", "explain"}
    assert set(get["responses"]) == {"200", "401", "403", "404", "422", "429", "500", "503"}
    by_identifier = document["paths"]["/v1/profiles/by/{id_type}/{id_value}"]["get"]
    assert set(by_identifier["responses"]) == set(get["responses"]) | {"409"}
    assert "ambiguous_identifier" in by_identifier["responses"]["409"]["description"]
    schema = get["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/Profile")
    unified = document["components"]["schemas"]["UnifiedFeatures"]["properties"]
    assert "Unified:" in unified["avg_order_value"]["description"]
    assert "cart_value" in unified


def test_a_store_that_cannot_answer_is_a_503_to_retry(
    api: httpx.Client, store: ServingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*_: object, **__: object) -> None:
        raise StoreUnavailable("serving store x (reading a profile): unavailable, locked")

    monkeypatch.setattr(store._reads, "_profile", down)
    answer = api.get("/v1/profiles/p_1")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "5"
    assert answer.json()["error"]["code"] == "unavailable"

    def broken(*_: object, **__: object) -> None:
        raise StoreError("serving store x (reading a profile): no such table: person")

    monkeypatch.setattr(store._reads, "_profile", broken)
    failed = api.get("/v1/profiles/p_1")
    assert failed.status_code == 500 and "retry-after" not in failed.headers
    assert "no such table" not in failed.text  # the reason goes to the log, not the caller


def test_async_profile_reads_answer_as_the_inline_ones(store: ServingStore, tmp_path: Path) -> None:
    """api.profile_reads = async reads PostgreSQL through the driver's async connections (the
    default, inline, through its blocking call): the same answers, statuses and headers either
    way; SQLite reads inline whatever the setting."""
    paths = [
        "/v1/profiles/p_1",
        "/v1/profiles/p_1?explain=true&fields=number_of_orders",
        "/v1/profiles/by/email/ANN@x.com",
        "/v1/profiles/by/anonymous_id/a/b c",
        "/v1/profiles/by/email/family@x.com",
        "/v1/profiles/p_nobody",
    ]
    pool = store._reads.async_pool

    def answers(client: httpx.Client) -> list[tuple[int, object]]:
        found = [client.get(path) for path in paths]
        bodies = [answer.json() for answer in found]
        for body in bodies:  # the read's time moves between the two runs
            body.get("profile", {}).pop("time_since_last_event_seconds", None)
            for field in body.get("provenance", {}).values():
                if field["layer"] != "batch":
                    field["as_of"] = "the read's time"
        return [(a.status_code, body) for a, body in zip(found, bodies, strict=True)]

    published = _published(store)
    with _served(published, tmp_path) as inline:
        expected = answers(inline)
    assert [status for status, _ in expected] == [200, 200, 200, 200, 409, 404]
    assert pool is None or not pool._idle  # type: ignore[attr-defined]  # never used inline
    with _served(published, tmp_path, {"C360_API_PROFILE_READS": "async"}) as async_reads:
        assert answers(async_reads) == expected
    if pool is not None:
        assert pool._idle  # type: ignore[attr-defined]  # the reads went through it
