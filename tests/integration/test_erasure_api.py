"""``DELETE /v1/persons/{id}`` on a real server, and suppression at the collector and the
Zendesk webhook from the moment it answers (issue 18)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pyarrow as pa
import pytest
from click.testing import CliRunner, Result
from prometheus_client.parser import text_string_to_metric_families
from test_zendesk_webhook import signed, ticket_created

from c360.access.keys import generate
from c360.api.app import create_app
from c360.api.server import serve_in_thread
from c360.cli.main import cli
from c360.config import Settings
from c360.logs import open_log
from c360.pipeline.erasure import forget
from c360.stores import ServingStore

WRITE_KEY = "wk_erasure"
SECRET = "erasure-test-secret"


def _publish(store: ServingStore) -> None:
    ids = [
        ("customer_id", "42", "p_1"),
        ("email", "ann@x.com", "p_1"),
        ("anonymous_id", "ck-ann", "p_1"),
        ("zendesk_user_id", "7007", "p_1"),
        ("customer_id", "43", "p_2"),
        ("email", "bo@y.com", "p_2"),
    ]
    store.publish_batch(
        dt.date(2025, 6, 10),
        {
            "person": pa.table(
                {
                    "person_id": ["p_1", "p_2"],
                    "email": ["ann@x.com", "bo@y.com"],
                    "first_name": ["Ann", "Bo"],
                }
            ),
            "identity_map": pa.table(
                {
                    "id_type": [t for t, _, _ in ids],
                    "id_value": [v for _, v, _ in ids],
                    "person_id": [p for _, _, p in ids],
                }
            ),
            "batch_profile": pa.table(
                {"person_id": ["p_1", "p_2"], "total_lifetime_spend": [12.5, 3.0]}
            ),
        },
    )


@pytest.fixture
def server(store: ServingStore, tmp_path: Path) -> Iterator[tuple[Settings, httpx.Client]]:
    settings = Settings.model_validate(
        {
            "log": {"url": f"local://{tmp_path}/log", "partitions": 2},
            "lake": {"url": str(tmp_path / "lake")},
            "serving": {"url": store.engine.url.render_as_string(hide_password=False)},
            "collector": {"write_keys": [WRITE_KEY]},
            "sources": {"zendesk": {"webhook_secret": SECRET}},
        }
    )
    _publish(store)
    with (
        serve_in_thread(create_app(settings, store=store)) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield settings, client


def _bearer(store: ServingStore, scope: str) -> dict[str, str]:
    key = generate([scope])
    store.add_api_key(key.record)
    return {"Authorization": f"Bearer {key.key}"}


def _logged(settings: Settings, topic: str) -> list[bytes]:
    with open_log(settings.log.url, settings.log.partitions) as log:
        return [
            r.value
            for p in range(log.partitions(topic))
            for r in log.read(topic, p, 0, 10_000)
            if r.value
        ]


def _suppressed(client: httpx.Client, webhook: bool = False) -> float:
    """Events dropped as an erased person's: the collector's, or the Zendesk webhook's."""
    name, labels = (
        ("c360_webhook_events_total", {"webhook": "zendesk", "outcome": "suppressed", "reason": ""})
        if webhook
        else ("c360_collector_events_total", {"outcome": "rejected", "reason": ""})
    )
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and sample.labels == {**labels, "code": "suppressed"}:
                return sample.value
    return 0.0


def _message(**fields: object) -> dict[str, object]:
    return {"type": "track", "event": "Viewed", "timestamp": "2025-06-10T10:00:00Z", **fields}


def test_an_admin_erases_a_person_and_their_events_are_dropped_from_then_on(
    store: ServingStore, server: tuple[Settings, httpx.Client]
) -> None:
    settings, client = server
    auth = (WRITE_KEY, "")
    assert client.post("/v1/track", json=_message(anonymousId="ck-ann"), auth=auth).is_success
    assert len(_logged(settings, "clickstream")) == 1

    reader = _bearer(store, "profiles:read")
    assert client.delete("/v1/persons/p_1", headers=reader).status_code == 403
    assert client.delete("/v1/persons/p_1").status_code == 401
    admin = _bearer(store, "admin")
    answer = client.delete("/v1/persons/p_1", headers=admin)
    assert answer.status_code == 200
    receipt = answer.json()
    assert receipt["requested_by"] == "api"
    assert receipt["stores"]["serving"]["tables"]["identity_map"] == 4
    assert receipt["stores"]["log"]["topics"][0] == {
        "topic": "clickstream", "records": 1, "files": 1, "tombstones": 0, "pending": False,
    }  # fmt: skip
    assert "ann" not in answer.text.lower() and "p_1" not in answer.text
    assert client.delete("/v1/persons/p_1", headers=admin).status_code == 404
    assert client.delete("/v1/persons/nobody", headers=admin).json()["error"]["code"] == (
        "not_found"
    )
    assert client.get("/v1/profiles/p_1", headers=reader).status_code == 404
    assert client.get("/v1/profiles/p_2", headers=reader).status_code == 200
    assert _logged(settings, "clickstream") == []  # the earlier event is gone too

    before, webhook_before = _suppressed(client), _suppressed(client, webhook=True)
    dropped = [
        _message(anonymousId="ck-ann"),
        _message(anonymousId="ck-new", userId="42"),
        {**_message(anonymousId="ck-new2"), "type": "identify", "traits": {"email": "ANN@x.com"}},
        _message(anonymousId="ck-new3", context={"traits": {"email": "ann@x.com"}}),
    ]
    for message in dropped:
        answer = client.post("/v1/track", json=message, auth=auth)
        assert answer.status_code == 200 and answer.json() == {"success": True}
    batch = client.post(
        "/v1/batch",
        json={"batch": [_message(anonymousId="ck-ann"), _message(anonymousId="ck-bo")]},
        auth=auth,
    )
    assert batch.json() == {"success": True, "accepted": 1, "rejected": [], "rejected_count": 0}
    stored = [orjson.loads(v) for v in _logged(settings, "clickstream")]
    assert [m["anonymousId"] for m in stored] == ["ck-bo"]
    assert _suppressed(client) - before == 5

    ann = ticket_created(requester_id=7007)
    other = ticket_created(requester_id=7008)
    for body in (ann, other):
        answer = client.post(
            "/v1/webhooks/zendesk", content=body, headers=signed(body, secret=SECRET)
        )
        assert answer.status_code == 200 and answer.json() == {"success": True}
    logged = [orjson.loads(v)["detail"]["requester_id"] for v in _logged(settings, "support")]
    assert logged == ["7008"]
    assert _suppressed(client) - before == 5
    assert _suppressed(client, webhook=True) - webhook_before == 1
    # the suppression list holds keyed hashes only
    hashes = store.query("SELECT hash, id_type FROM suppressed_identifier")
    assert len(hashes) == 5 and all(len(h["hash"]) == 64 for h in hashes)  # 4 ids, the person
    assert "ann" not in str(hashes).lower() and "ck-" not in str(hashes)


def test_c360_forget_prints_the_receipt_and_keeps_it(store: ServingStore, tmp_path: Path) -> None:
    _publish(store)
    env = {
        "C360_SERVING_URL": store.engine.url.render_as_string(hide_password=False),
        "C360_LAKE_URL": str(tmp_path / "lake"),
        "C360_LOG_URL": f"local://{tmp_path}/log",
    }
    runner = CliRunner()

    def forget(*args: str) -> Result:
        return runner.invoke(cli, ["forget", *args], env=env)

    assert forget().exit_code == 2 and "exactly one of --email" in forget().output
    assert forget("--email", "a", "--customer-id", "1").exit_code == 2
    assert forget("--person", "nobody").exit_code == 1
    result = forget("--customer-id", "42", "--json")
    assert result.exit_code == 0, result.output
    receipt = json.loads(result.stdout)
    assert receipt["requested_by"] == "cli" and receipt["stores"]["serving"]["rows"] > 0
    assert {i["type"] for i in receipt["identifiers"]} >= {"customer_id", "email", "person_id"}
    assert store.find_person("email", "ann@x.com") is None
    assert store.find_person("email", "bo@y.com") == "p_2"
    listed = json.loads(forget("--receipts", "--json").stdout)
    assert [r["erasure_id"] for r in listed] == [receipt["erasure_id"]]
    summary = forget("--email", "bo@y.com")
    assert summary.exit_code == 0 and "serving store: " in summary.stdout


def test_a_retired_id_erases_its_survivor_and_the_redirect(
    store: ServingStore, tmp_path: Path
) -> None:
    _publish(store)
    store.publish_batch(  # p_0 was merged into p_1: a redirect
        dt.date(2025, 6, 11),
        {
            "person": pa.table({"person_id": ["p_1", "p_2"], "email": ["ann@x.com", "bo@y.com"]}),
            "identity_map": pa.table(
                {
                    "id_type": ["email", "email"],
                    "id_value": ["ann@x.com", "bo@y.com"],
                    "person_id": ["p_1", "p_2"],
                }
            ),
            "batch_profile": pa.table({"person_id": ["p_1", "p_2"]}),
            "person_redirect": pa.table(
                {
                    "retired_id": ["p_0"],
                    "person_id": ["p_1"],
                    "since": pa.array([dt.date(2025, 6, 11)], pa.date32()),
                }
            ),
        },
    )
    settings = Settings.model_validate(
        {"log": {"url": f"local://{tmp_path}/log"}, "lake": {"url": str(tmp_path / "lake")}}
    )
    receipt = forget(settings, store, "person_id", "p_0", requested_by="test")
    assert receipt["stores"]["serving"]["tables"]["person_redirect"] == 1
    assert store.query("SELECT person_id FROM person") == [{"person_id": "p_2"}]
    assert store.profile("p_0") is None and store.profile("p_1") is None
    assert sorted(i["type"] for i in receipt["identifiers"]) == ["email", "person_id", "person_id"]
