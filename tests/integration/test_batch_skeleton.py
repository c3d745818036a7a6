"""The walking skeleton's batch path on a hand-made world with hand-computed expectations."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from tiny_world import DAY

from c360.access.keys import generate
from c360.api.app import create_app
from c360.api.server import serve_in_thread
from c360.config import Settings
from c360.ingest.run import ingest
from c360.lake import Lake
from c360.pipeline.daily import run_batch
from c360.stores import open_store


def _profile(settings: Settings, id_type: str, id_value: str) -> dict[str, object]:
    store = open_store(settings.serving.url)
    try:
        person_id = store.find_person(id_type, id_value)
        assert person_id is not None, f"{id_type} {id_value} not in identity_map"
        profile = store.profile(person_id)
        assert profile is not None
        return profile
    finally:
        store.dispose()


def test_features_match_hand_computed_values(tiny_world: Settings) -> None:
    settings = tiny_world
    result = run_batch(settings, DAY)

    assert result.persons == 5  # alice, bob, carol, dave (guest), eve (newsletter only)
    alice = _profile(settings, "customer_id", "1")
    assert alice["batch"]["total_lifetime_spend"] == pytest.approx(160.00)  # 100 + 20 + 40 guest
    assert alice["batch"]["number_of_orders"] == 4  # cancelled excluded, refunded counted
    assert str(alice["batch"]["last_purchase_date"]) == "2025-01-06"
    assert alice["batch"]["email_open_rate"] == pytest.approx(0.5)
    assert alice["batch"]["support_ticket_count"] == 2
    assert {"id_type": "email", "id_value": "alice.work@x.com"} in alice["identifiers"]
    assert {"id_type": "zendesk_user_id", "id_value": "10"} in alice["identifiers"]

    bob = _profile(settings, "email", "bob@y.com")
    assert bob["batch"]["total_lifetime_spend"] == pytest.approx(10.00)  # midnight order excluded
    assert bob["batch"]["support_ticket_count"] == 0  # ticket after the cutoff
    assert bob["batch"]["email_open_rate"] == pytest.approx(0.0)

    carol = _profile(settings, "customer_id", "3")
    assert carol["batch"]["number_of_orders"] == 0
    assert carol["batch"]["email_open_rate"] is None  # never mailed: unknown, not zero

    dave = _profile(settings, "email", "dave@g.com")
    assert dave["person"]["customer_id"] is None
    assert dave["batch"]["total_lifetime_spend"] == pytest.approx(15.00)


def test_malformed_source_lines_are_quarantined_with_reason(tiny_world: Settings) -> None:
    settings = tiny_world
    report = {(r.source, r.table): r for r in ingest(settings, DAY)}
    assert report[("zendesk", "events")].quarantined == 1
    lake = Lake(settings.lake.url)
    quarantined = lake.read_partition("zendesk", "events", DAY, zone="quarantine").to_pylist()
    assert quarantined[0]["record"] == "{not json"
    assert quarantined[0]["reason"].startswith("line 8: JSONDecodeError")


def test_rerun_of_a_date_replaces_it_exactly(tiny_world: Settings) -> None:
    settings = tiny_world
    run_batch(settings, DAY)
    lake = Lake(settings.lake.url)
    first = lake.read_partition("shop", "orders", DAY)
    run_batch(settings, DAY)
    assert lake.read_partition("shop", "orders", DAY).equals(first)
    assert lake.partitions("zendesk", "events") == [dt.date(2025, 1, d) for d in (2, 3, 4, 9)]
    assert _profile(settings, "customer_id", "1")["batch"]["number_of_orders"] == 4


def test_api_serves_profiles_by_id_and_identifier(tiny_world: Settings) -> None:
    settings = tiny_world
    run_batch(settings, DAY)
    key = generate(["profiles:read"])
    store = open_store(settings.serving.url)
    try:
        store.add_api_key(key.record)
    finally:
        store.dispose()
    headers = {"Authorization": f"Bearer {key.key}"}
    with (
        serve_in_thread(create_app(settings)) as url,
        httpx.Client(base_url=url, headers=headers) as client,
    ):
        by_email = client.get("/v1/profiles/by/email/ Alice@X.com ")
        assert by_email.status_code == 200
        person_id = by_email.json()["person_id"]
        by_id = client.get(f"/v1/profiles/{person_id}?explain=true").json()
        assert by_id["batch"]["total_lifetime_spend"] == pytest.approx(160.0)
        assert client.get("/v1/profiles/p_unknown").status_code == 404
        assert client.get("/v1/profiles/by/email/nobody@x.com").status_code == 404
        assert client.get("/v1/profiles/by/shoe_size/42").status_code == 422
        assert client.get("/health").json()["batch"]["batch_date"] == DAY.isoformat()
