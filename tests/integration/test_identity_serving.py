"""Identity in the serving store: retired ids answer as their survivor, and real-time stitching
(links, reads, reconcile at publish) — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select

from c360.access.keys import generate
from c360.api.app import create_app
from c360.api.server import serve_in_thread
from c360.config import ComputeSettings, load_config
from c360.contracts import serving
from c360.contracts.identity import RECORDS
from c360.engines import open_compute
from c360.identity.stable_ids import Assignment, assign, identity_map
from c360.stores import ServingStore

D1, D2 = dt.date(2025, 6, 1), dt.date(2025, 6, 2)
COMPUTE = open_compute(ComputeSettings())
CUTOFF_D2 = dt.datetime(2025, 6, 3)  # the end of D2, UTC


def records(keys: Iterable[str]) -> pa.Table:
    rows = []
    for i, key in enumerate(keys):
        source, rest = key.split("/", 1)
        record_type, record_id = rest.split(":", 1)
        rows.append(
            {
                "record_key": key,
                "source": source,
                "record_type": record_type,
                "record_id": record_id,
                "customer_id": int(record_id) if record_type == "customer" else None,
                "first_seen": dt.datetime(2024, 1, 1 + i, tzinfo=dt.UTC),
            }
        )
    return pa.Table.from_pylist(
        [{f.name: row.get(f.name) for f in RECORDS} for row in rows], schema=RECORDS
    )


def clusters(*groups: list[str]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"record_key": k, "cluster_key": min(g)} for g in groups for k in g]
    )


KEYS = ["mysql/customer:1", "mysql/customer:2", "mysql/customer:3"]
RECS = records(KEYS)
IDENTIFIERS = pa.table(
    {
        "record_key": KEYS,
        "id_type": ["customer_id"] * 3,
        "id_value": ["1", "2", "3"],
    }
)


def tables(result: Assignment) -> dict[str, pa.Table]:
    """The batch tables of an assignment: a person and a profile row per live id."""
    ids = sorted(set(result.assignment.column("person_id").to_pylist()))
    return {
        "person": pa.table({"person_id": ids, "email": [f"{p}@x.com" for p in ids]}),
        "identity_map": identity_map(COMPUTE, IDENTIFIERS, result.assignment).map,
        "batch_profile": pa.table({"person_id": ids, "spend": [10.0] * len(ids)}),
        "person_redirect": result.redirects,
    }


def two_days(store: ServingStore) -> tuple[Assignment, Assignment]:
    """D1: three customers; D2: customers 1 and 2 found to be one person (1 is older)."""
    day1 = assign(COMPUTE, clusters(*[[k] for k in KEYS]), RECS, None, D1)
    store.publish_batch(D1, tables(day1))
    day2 = assign(COMPUTE, clusters(KEYS[:2], KEYS[2:]), RECS, day1.as_previous(), D2)
    store.publish_batch(D2, tables(day2))
    return day1, day2


def person_of(result: Assignment, key: str) -> str:
    found = result.assignment.filter(pc.equal(result.assignment["record_key"], key))
    return str(found["person_id"][0])


def test_a_retired_id_answers_with_the_survivor(store: ServingStore) -> None:
    day1, day2 = two_days(store)
    retired, survivor = person_of(day1, KEYS[1]), person_of(day2, KEYS[1])
    assert retired != survivor == person_of(day1, KEYS[0])
    with store.engine.connect() as conn:
        stored = [tuple(row) for row in conn.execute(select(serving.person_redirect))]
    assert stored == [(retired, survivor, D2)]
    profile = store.profile(retired)
    assert profile is not None
    assert (profile["person_id"], profile["redirected_from"]) == (survivor, retired)
    assert profile["batch"]["spend"] == 10.0
    direct = store.profile(survivor)
    assert direct is not None and direct["redirected_from"] is None
    assert store.profile("p_unknown") is None
    assert store.find_person("customer_id", "2") == survivor


def test_the_api_serves_a_retired_id_as_the_survivor(store: ServingStore, tmp_path: Path) -> None:
    day1, day2 = two_days(store)
    retired, survivor = person_of(day1, KEYS[1]), person_of(day2, KEYS[1])
    settings = load_config(environ={"C360_LAKE_URL": str(tmp_path / "lake")}).settings
    app = create_app(settings, store=store)
    key = generate(["profiles:read"])
    store.add_api_key(key.record)
    headers = {"Authorization": f"Bearer {key.key}"}
    with serve_in_thread(app) as url, httpx.Client(base_url=url, headers=headers) as client:
        answer = client.get(f"/v1/profiles/{retired}")
        assert answer.status_code == 200
        body = answer.json()
        assert (body["person_id"], body["redirected_from"]) == (survivor, retired)
        assert answer.headers["content-location"] == f"/v1/profiles/{survivor}"
        live = client.get(f"/v1/profiles/{survivor}")
        assert live.json()["redirected_from"] is None
        assert "content-location" not in live.headers
        assert client.get("/v1/profiles/p_unknown").status_code == 404


def test_publishing_without_redirects_keeps_the_stored_ones(store: ServingStore) -> None:
    _, day2 = two_days(store)
    batch = tables(day2)
    del batch["person_redirect"]
    store.publish_batch(dt.date(2025, 6, 3), batch)
    assert store.query("SELECT count(*) AS n FROM person_redirect") == [{"n": 1}]
