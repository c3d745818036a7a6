"""Identity in the serving store: retired ids answer as their survivor, and real-time stitching
(links, reads, reconcile at publish) — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from sqlalchemy import select

from c360.api.app import create_app
from c360.api.server import serve_in_thread
from c360.config import ComputeSettings, load_config
from c360.contracts import serving
from c360.contracts.identity import RECORDS
from c360.engines import open_compute
from c360.identity.stable_ids import Assignment, assign, identity_map
from c360.identity.stitching import CONTRADICTED, PROVISIONAL, Reconciled, StitchLink, stitch
from c360.stores import ServingStore
from c360.stores.profiles import find_person, get_profile

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
    profile = get_profile(store, retired)
    assert profile is not None
    assert (profile["person_id"], profile["redirected_from"]) == (survivor, retired)
    assert profile["batch"]["spend"] == 10.0
    direct = get_profile(store, survivor)
    assert direct is not None and direct["redirected_from"] is None
    assert get_profile(store, "p_unknown") is None
    assert find_person(store, "customer_id", "2") == survivor


def test_the_api_serves_a_retired_id_as_the_survivor(store: ServingStore, tmp_path: Path) -> None:
    day1, day2 = two_days(store)
    retired, survivor = person_of(day1, KEYS[1]), person_of(day2, KEYS[1])
    settings = load_config(environ={"C360_LAKE_URL": str(tmp_path / "lake")}).settings
    app = create_app(settings, store=store)
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as client:
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


# -- real-time stitching ---------------------------------------------------------------------


def publish_map(store: ServingStore, day: dt.date, rows: list[tuple[str, str, str]]) -> Reconciled:
    ids = sorted({p for _, _, p in rows})
    return store.publish_batch(
        day,
        {
            "person": pa.table({"person_id": ids}),
            "identity_map": pa.table(
                {
                    "id_type": [r[0] for r in rows],
                    "id_value": [r[1] for r in rows],
                    "person_id": [r[2] for r in rows],
                }
            ),
            "batch_profile": pa.table({"person_id": ids}),
        },
    )


def links(store: ServingStore) -> dict[str, tuple[str, str, str | None]]:
    rows = store.query(
        "SELECT anonymous_id, customer_id, status, batch_person_id FROM identity_stitch"
    )
    return {r["anonymous_id"]: (r["customer_id"], r["status"], r["batch_person_id"]) for r in rows}


def test_a_link_shows_the_cookies_activity_on_the_customer_at_once(store: ServingStore) -> None:
    publish_map(store, D1, [("customer_id", "42", "p_42"), ("anonymous_id", "old", "p_42")])
    at = dt.datetime(2025, 6, 2, 10, 0, tzinfo=dt.UTC)
    with store.begin() as conn:
        # An anonymous session and an anonymous order on a cookie the batch has never seen; the
        # state carries no user_id: only the link can attribute it.
        conn.execute(
            serving.realtime_state.insert(),
            [
                {
                    "id_type": "anonymous_id",
                    "id_value": "fresh",
                    "session_start": at.replace(tzinfo=None),
                    "current_session_page_views": 4,
                    "last_event_at": at.replace(tzinfo=None),
                    "last_event_type": "page",
                    "events_total": 4,
                }
            ],
        )
        conn.execute(
            serving.realtime_order.insert(),
            [
                {
                    "order_id": "o-1",
                    "id_type": "anonymous_id",
                    "id_value": "fresh",
                    "order_at": at.replace(tzinfo=None),
                    "revenue": 25.0,
                }
            ],
        )
    before = get_profile(store, "p_42", now=at)
    assert before is not None and "events_total" not in before["realtime"]
    assert find_person(store, "anonymous_id", "fresh") is None
    with store.begin() as conn:
        assert stitch(store, conn, [StitchLink("fresh", "42", at)]) == 1
    profile = get_profile(store, "p_42", now=at + dt.timedelta(seconds=5))
    assert profile is not None
    assert profile["realtime"]["events_total"] == 4
    assert profile["realtime"]["current_session_page_views"] == 4
    assert profile["realtime"]["orders_since_cutoff"] == 1
    assert find_person(store, "anonymous_id", "fresh") == "p_42"
    view = store.query("SELECT person_id, current_session_page_views FROM profile")
    assert view == [{"person_id": "p_42", "current_session_page_views": 4}]
    assert store.query("SELECT person_id, orders_since_cutoff FROM order_deltas") == [
        {"person_id": "p_42", "orders_since_cutoff": 1}
    ]


def test_an_order_placed_logged_in_stays_with_its_customer(store: ServingStore) -> None:
    publish_map(store, D1, [("customer_id", "42", "p_42"), ("customer_id", "43", "p_43")])
    at = dt.datetime(2025, 6, 2, 10, 0)
    with store.begin() as conn:
        conn.execute(
            serving.realtime_order.insert(),
            [
                {
                    "order_id": "o-42",
                    "id_type": "anonymous_id",
                    "id_value": "shared-device",
                    "user_id": "42",
                    "order_at": at,
                    "revenue": 10.0,
                }
            ],
        )
        # Later someone else logs in on the same device.
        stitch(store, conn, [StitchLink("shared-device", "43", at + dt.timedelta(hours=1))])
    assert store.query("SELECT person_id, orders_since_cutoff FROM order_deltas") == [
        {"person_id": "p_42", "orders_since_cutoff": 1}
    ]
    assert find_person(store, "anonymous_id", "shared-device") == "p_43"


def test_the_newest_link_of_a_cookie_wins(store: ServingStore) -> None:
    t = dt.datetime(2025, 6, 2, 10, 0, tzinfo=dt.UTC)
    with store.begin() as conn:
        # In one call, the newer of two links for a cookie is kept.
        stitch(store, conn, [StitchLink("c", "1", t), StitchLink("c", "2", t - dt.timedelta(1))])
    assert links(store) == {"c": ("1", PROVISIONAL, None)}
    with store.begin() as conn:
        stitch(store, conn, [StitchLink("c", "3", t - dt.timedelta(minutes=1))])  # late, older
    assert links(store)["c"][0] == "1"
    with store.begin() as conn:
        stitch(store, conn, [StitchLink("c", "4", t + dt.timedelta(minutes=1))])
    assert links(store)["c"][0] == "4"
    with (
        pytest.raises(ValueError, match="needs an anonymous_id and a customer_id"),
        store.begin() as conn,
    ):
        stitch(store, conn, [StitchLink("c", "", t)])


def test_the_batch_publish_reconciles_links(store: ServingStore) -> None:
    before = dt.datetime(2025, 6, 2, 12, 0)  # inside batch D2 (cutoff: 2025-06-03 00:00)
    after = dt.datetime(2025, 6, 3, 8, 0)
    with store.begin() as conn:
        stitch(
            store,
            conn,
            [
                StitchLink("covered", "1", before),  # the batch agrees: dropped
                StitchLink("late", "1", after),  # agrees, but the batch has not seen it: kept
                StitchLink("shared", "2", before),  # the batch puts the cookie elsewhere
                StitchLink("unknown", "3", before),  # the batch knows neither side
            ],
        )
    reconciled = publish_map(
        store,
        D2,
        [
            ("customer_id", "1", "p_1"),
            ("customer_id", "2", "p_2"),
            ("anonymous_id", "covered", "p_1"),
            ("anonymous_id", "late", "p_1"),
            ("anonymous_id", "shared", "p_9"),
        ],
    )
    assert reconciled.as_dict() == {"dropped": 1, "contradicted": 1, "provisional": 2}
    assert links(store) == {
        "late": ("1", PROVISIONAL, None),
        "shared": ("2", CONTRADICTED, "p_9"),
        "unknown": ("3", PROVISIONAL, None),
    }
    with store.engine.connect() as conn:
        flagged = conn.execute(
            select(serving.identity_stitch.c.flagged_at).where(
                serving.identity_stitch.c.anonymous_id == "shared"
            )
        ).scalar_one()
    assert flagged == CUTOFF_D2
    # A contradicted link stays in force: the cookie answers as the customer it logged in as.
    assert find_person(store, "anonymous_id", "shared") == "p_2"
    assert find_person(store, "anonymous_id", "covered") == "p_1"  # through identity_map now
    # Relinking to the same customer keeps the flag; the next batch agreeing clears it.
    with store.begin() as conn:
        stitch(store, conn, [StitchLink("shared", "2", after)])
    assert links(store)["shared"] == ("2", CONTRADICTED, "p_9")
    publish_map(
        store,
        dt.date(2025, 6, 3),
        [("customer_id", "2", "p_2"), ("anonymous_id", "shared", "p_2")],
    )
    assert "shared" not in links(store)  # covered now (linked before the new cutoff)
