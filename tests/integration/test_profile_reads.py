"""The Profile API's reads over HTTP, on SQLite and PostgreSQL: lookups by any identifier (a
value with ``/``, a phone in any written form), search and the timeline with their cursors.

The store behaviours behind them are in ``tests/conformance/test_serving_store.py``; these tests
hold the routes to their parameters, pagination and error answers, through a real server."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from c360.access.keys import generate
from c360.api.app import create_app
from c360.api.server import serve_in_thread
from c360.config import load_config
from c360.contracts.times import naive_utc_now
from c360.stores import ServingStore
from c360.stores.timeline import event_id

DAY = dt.date(2025, 6, 1)


SHARED = "Family.Home@X.com"  # a mailbox two persons share: identity kept it out of the map


def publish(store: ServingStore, events: list[dict[str, Any]] | None = None) -> None:
    identifiers = [
        ("anonymous_id", "cookie/with/slashes", "p_1"),
        ("phone", "+31165183612", "p_1"),
        ("email", "maria@x.com", "p_1"),
        ("customer_id", "42", "p_1"),
        ("email", "mario@x.com", "p_2"),
        ("email", "marx@x.com", "p_3"),
    ]
    tables = {
        "person": pa.table(
            {
                "person_id": ["p_1", "p_2", "p_3"],
                "first_name": ["María", "Mario", "Anna"],
                "last_name": ["Lopez", "Rossi", "Marx"],
                "email": ["maria@x.com", "mario@x.com", "marx@x.com"],
            }
        ),
        "identity_map": pa.table(
            {
                "id_type": [i[0] for i in identifiers],
                "id_value": [i[1] for i in identifiers],
                "person_id": [i[2] for i in identifiers],
            }
        ),
        "batch_profile": pa.table({"person_id": ["p_1", "p_2", "p_3"]}),
        "ambiguous_identifier": pa.table(
            {"id_type": ["email"], "id_value": [SHARED.lower()], "persons": [2]}
        ),
    }
    if events is not None:
        tables["timeline_event"] = pa.Table.from_pylist(events)
    store.publish_batch(DAY, tables)


@contextmanager
def api(store: ServingStore, tmp_path: Path, **environ: str) -> Iterator[httpx.Client]:
    """A served API and a client with a key for reads and search."""
    key = generate(["profiles:read", "profiles:search"])
    store.add_api_key(key.record)
    settings = load_config(environ={"C360_LAKE_URL": str(tmp_path / "lake"), **environ}).settings
    with (
        serve_in_thread(create_app(settings, store=store)) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key.key}"}) as client,
    ):
        yield client


def test_lookups_take_any_identifier_in_any_written_form(
    store: ServingStore, tmp_path: Path
) -> None:
    publish(store)
    with api(store, tmp_path, C360_IDENTITY_DEFAULT_PHONE_REGION="NL") as client:
        for path in (
            "/v1/profiles/by/anonymous_id/cookie/with/slashes",  # a value with "/"
            "/v1/profiles/by/anonymous_id/cookie%2Fwith%2Fslashes",  # the same, escaped
            "/v1/profiles/by/phone/+31 165 183612",
            "/v1/profiles/by/phone/%2B31%20(165)%20183-612",
            "/v1/profiles/by/phone/0165 183612",  # national form: identity.default_phone_region
            "/v1/profiles/by/email/%20MARIA@X.com",
            "/v1/profiles/by/customer_id/42",
        ):
            answer = client.get(path)
            assert answer.status_code == 200, path
            assert answer.json()["person_id"] == "p_1", path
        missing = client.get("/v1/profiles/by/phone/+49 30 1234567")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
        assert "1234567" not in missing.text  # no identifier in the message
        assert client.get("/v1/profiles/by/shoe_size/42").status_code == 422


def test_search_pages_with_an_opaque_cursor(store: ServingStore, tmp_path: Path) -> None:
    publish(store)
    with api(store, tmp_path) as client:
        first = client.get("/v1/search", params={"q": "mar", "limit": 2})
        assert first.status_code == 200
        body = first.json()
        assert [r["person_id"] for r in body["results"]] == ["p_1", "p_2"]  # maria, mario
        assert body["results"][0] == {
            "person_id": "p_1",
            "first_name": "María",
            "last_name": "Lopez",
            "email": "maria@x.com",
            "phone": None,
            "city": None,
            "country": None,
            "customer_id": None,
            "matched": "name",
        }
        cursor = body["next_cursor"]
        decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        assert "mar" not in decoded and "@" not in decoded  # no query, no term in the URL
        second = client.get("/v1/search", params={"q": "mar", "limit": 2, "cursor": cursor})
        assert [r["person_id"] for r in second.json()["results"]] == ["p_3"]  # marx
        assert second.json()["next_cursor"] is None
        exact = client.get("/v1/search", params={"q": "+31 165 183612"}).json()["results"]
        assert [(r["person_id"], r["matched"]) for r in exact] == [("p_1", "identifier")]
        for params in (
            {"q": "mario", "cursor": cursor},  # another query's cursor
            {"q": "mar", "cursor": "not-a-cursor"},
            {"q": "mar", "limit": 0},
            {"q": "mar", "limit": 101},
            {"q": "   "},
            {},
        ):
            refused = client.get("/v1/search", params=params)
            assert refused.status_code == 422, params
            assert refused.json()["error"]["code"] == "invalid_request"


def test_search_by_a_shared_identifier_says_so_as_the_lookup_does(
    store: ServingStore, tmp_path: Path
) -> None:
    """The lookup by a shared mailbox is a 409 ``ambiguous_identifier`` naming its type and how
    many persons hold it; a search by it answers 200 with no result matching it and the same
    facts in ``ambiguous_identifiers`` — never the value. A search that is no shared
    identifier has the list empty."""
    publish(store)
    with api(store, tmp_path) as client:
        lookup = client.get(f"/v1/profiles/by/email/{SHARED}")
        assert lookup.status_code == 409
        assert lookup.json()["error"]["code"] == "ambiguous_identifier"
        for q in (SHARED, f"  {SHARED.upper()} "):
            answer = client.get("/v1/search", params={"q": q})
            assert answer.status_code == 200
            assert answer.json() == {
                "results": [],
                "next_cursor": None,
                "ambiguous_identifiers": [{"id_type": "email", "persons": 2}],
            }
            assert "family" not in answer.text.lower()
        by_name = client.get("/v1/search", params={"q": "mar", "limit": 1}).json()
        assert by_name["ambiguous_identifiers"] == []
        document = client.get("/openapi.json").json()
        results = document["components"]["schemas"]["SearchResults"]
        assert "ambiguous_identifiers" in results["required"]
        described = results["properties"]["ambiguous_identifiers"]["description"]
        assert "409 `ambiguous_identifier`" in described


def test_the_timeline_pages_by_time(store: ServingStore, tmp_path: Path) -> None:
    now = naive_utc_now().replace(microsecond=0)
    events = [
        {
            "id_type": "customer_id",
            "id_value": "42",
            "occurred_at": now - dt.timedelta(hours=hours),
            "event_id": event_id(f"order:o-{hours}"),
            "source": "orders",
            "kind": "order",
            "type": "order",
            "reference": f"o-{hours}",
            "amount": 10.0 + hours,
            "currency": "EUR",
        }
        for hours in (1, 2, 3)
    ] + [
        {
            "id_type": "email",
            "id_value": "maria@x.com",
            "occurred_at": now - dt.timedelta(hours=2),
            "event_id": event_id("email:open"),
            "source": "mailchimp",
            "kind": "email",
            "type": "open",
            "reference": "camp-1",
        }
    ]
    publish(store, events)
    with api(store, tmp_path) as client:
        pages, before = [], None
        while True:
            params: dict[str, Any] = {"limit": 2}
            if before is not None:
                params["before"] = before
            answer = client.get("/v1/profiles/p_1/timeline", params=params)
            assert answer.status_code == 200
            body = answer.json()
            assert body["person_id"] == "p_1" and body["redirected_from"] is None
            pages.append([(e["kind"], e["reference"]) for e in body["events"]])
            before = body["next_before"]
            if before is None:
                break
        flat = [event for page in pages for event in page]
        assert [len(page) for page in pages] == [2, 2]
        assert flat[0] == ("order", "o-1") and flat[-1] == ("order", "o-3")
        assert sorted(flat[1:3]) == [("email", "camp-1"), ("order", "o-2")]  # a tie in time
        first = client.get("/v1/profiles/p_1/timeline", params={"limit": 1}).json()["events"][0]
        assert first["summary"] == "Order o-1: 11.00 EUR"
        assert dt.datetime.fromisoformat(first["at"]) == now - dt.timedelta(hours=1)
        orders = client.get("/v1/profiles/p_1/timeline", params={"types": "order"}).json()
        assert [e["reference"] for e in orders["events"]] == ["o-1", "o-2", "o-3"]
        since = (now - dt.timedelta(hours=2)).isoformat() + "Z"
        older = client.get("/v1/profiles/p_1/timeline", params={"before": since}).json()
        assert [e["reference"] for e in older["events"]] == ["o-3"]
        assert client.get("/v1/profiles/p_nobody/timeline").status_code == 404
        for params in ({"types": "order,shoes"}, {"before": "yesterday"}, {"limit": 0}):
            refused = client.get("/v1/profiles/p_1/timeline", params=params)
            assert refused.status_code == 422, params
            assert refused.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("path", ["/v1/search", "/v1/profiles/{person_id}/timeline"])
def test_the_reads_are_documented(store: ServingStore, tmp_path: Path, path: str) -> None:
    with api(store, tmp_path) as client:
        spec = client.get("/openapi.json").json()
    operation = spec["paths"][path]["get"]
    assert {"200", "422"} <= set(operation["responses"])
    assert operation["description"] or operation["summary"]
