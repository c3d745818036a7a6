"""Segments over HTTP: scopes, create/list/show/preview/delete, and the errors (a definition's
position, the nearest field, a name in use), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from c360.access.keys import generate
from c360.api.app import create_app
from c360.api.server import serve_in_thread
from c360.config import load_config
from c360.stores import ServingStore

DAY = dt.date(2026, 12, 5)
IDS = [f"p_{i}" for i in range(10)]
SPEND = [float(i * 100) for i in range(10)]


@pytest.fixture
def served(store: ServingStore, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    store.publish_batch(
        DAY,
        {
            "person": pa.table({"person_id": IDS}),
            "identity_map": pa.table(
                {"id_type": ["email"] * 10, "id_value": [f"{i}@x" for i in IDS], "person_id": IDS}
            ),
            "batch_profile": pa.table(
                {
                    "person_id": IDS,
                    "total_lifetime_spend": SPEND,
                    "marketing_opt_in": [i % 2 == 0 for i in range(10)],
                }
            ),
        },
    )
    keys = {}
    for name, scopes in {
        "reader": ["profiles:read"],
        "writer": ["segments:write"],
        "both": ["profiles:read", "segments:write"],
        "search": ["profiles:search"],
    }.items():
        key = generate(scopes)
        store.add_api_key(key.record)
        keys[name] = key.key
    settings = load_config(environ={"C360_LAKE_URL": str(tmp_path / "lake")}).settings
    with serve_in_thread(create_app(settings, store=store)) as url:
        yield url, keys


def client(served: tuple[str, dict[str, str]], who: str | None) -> httpx.Client:
    url, keys = served
    headers = {"Authorization": f"Bearer {keys[who]}"} if who else {}
    return httpx.Client(base_url=url, headers=headers)


BIG = {"name": "big", "definition": "total_lifetime_spend >= 500 and marketing_opt_in"}


def test_a_segment_is_created_listed_previewed_and_deleted(
    served: tuple[str, dict[str, str]],
) -> None:
    with client(served, "both") as api:
        made = api.post("/v1/segments", json={**BIG, "description": "spent 500 or more"})
        assert made.status_code == 201, made.text
        assert made.json()["fields"] == ["total_lifetime_spend", "marketing_opt_in"]
        assert [s["name"] for s in api.get("/v1/segments").json()["segments"]] == ["big"]
        assert api.get("/v1/segments/big").json()["description"] == "spent 500 or more"
        preview = api.get("/v1/segments/big/preview", params={"sample": 2}).json()
        members = [
            i for i, s, opt in zip(IDS, SPEND, range(10), strict=True) if s >= 500 and opt % 2 == 0
        ]
        assert preview["count"] == len(members)
        assert preview["sample"] == [
            {"person_id": p, "total_lifetime_spend": SPEND[IDS.index(p)], "marketing_opt_in": True}
            for p in sorted(members)[:2]
        ]
        ad_hoc = api.post("/v1/segments/preview", json={"definition": "total_lifetime_spend < 250"})
        assert ad_hoc.json()["count"] == 3
        assert api.delete("/v1/segments/big").status_code == 204
        assert api.get("/v1/segments/big").status_code == 404
        assert api.delete("/v1/segments/big").status_code == 404


def test_scopes_guard_every_route(served: tuple[str, dict[str, str]]) -> None:
    with client(served, "writer") as writer:
        assert writer.post("/v1/segments", json=BIG).status_code == 201
        assert writer.get("/v1/segments").status_code == 403  # reading needs profiles:read
        assert writer.get("/v1/segments/big/preview").status_code == 403
    with client(served, "reader") as reader:
        assert reader.get("/v1/segments/big/preview").json()["count"] >= 1
        refused = reader.post("/v1/segments", json={**BIG, "name": "other"})
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "forbidden"
        assert reader.delete("/v1/segments/big").status_code == 403
    with client(served, "search") as search:
        assert search.get("/v1/segments").status_code == 403
    with client(served, None) as nobody:
        assert nobody.get("/v1/segments").status_code == 401
        assert (
            nobody.post("/v1/segments/preview", json={"definition": "age > 1"}).status_code == 401
        )


def test_errors_say_where_and_what(served: tuple[str, dict[str, str]]) -> None:
    with client(served, "both") as api:
        bad = api.post("/v1/segments", json={"name": "x", "definition": "total_spend > 5"})
        assert bad.status_code == 422
        error = bad.json()["error"]
        assert error["code"] == "invalid_definition"
        assert error["position"] == 0
        assert "'total_lifetime_spend'" in error["message"]
        hostile = api.post(
            "/v1/segments/preview", json={"definition": "age > 1; DELETE FROM segment"}
        )
        assert hostile.status_code == 422 and hostile.json()["error"]["position"] == 7
        assert api.post("/v1/segments", json=BIG).status_code == 201
        taken = api.post("/v1/segments", json=BIG)
        assert taken.status_code == 409 and taken.json()["error"]["code"] == "conflict"
        named = api.post("/v1/segments", json={**BIG, "name": "Not A Name"})
        assert named.status_code == 422 and named.json()["error"]["code"] == "invalid_request"
        assert api.get("/v1/segments/nobody/preview").status_code == 404
        too_many = api.get("/v1/segments/big/preview", params={"sample": 1000})
        assert too_many.status_code == 422


def test_the_openapi_document_lists_the_scopes(served: tuple[str, dict[str, str]]) -> None:
    with client(served, None) as api:
        paths = api.get("/openapi.json").json()["paths"]
    assert "segments:write" in paths["/v1/segments"]["post"]["description"]
    assert "profiles:read" in paths["/v1/segments/{name}/preview"]["get"]["description"]
    assert set(paths["/v1/segments"]["post"]["responses"]) >= {"201", "401", "403", "409", "422"}
