"""Publishing the batch to the serving store: atomic for readers, evolving with new columns."""

from __future__ import annotations

import datetime as dt
import threading

import pyarrow as pa
import pytest
from sqlalchemy import inspect, text

from c360.contracts import serving
from c360.errors import DataError
from c360.stores import ServingStore
from c360.stores.profiles import get_profile


def batch(tag: str, persons: int, extra_column: bool = False) -> dict[str, pa.Table]:
    ids = [f"p_{i:06d}" for i in range(persons)]
    profile = {
        "person_id": ids,
        "tag": [tag] * persons,
        "spend": [float(i) for i in range(persons)],
    }
    if extra_column:
        profile["churn_risk"] = [0.5] * persons
    return {
        "person": pa.table({"person_id": ids, "email": [f"{i}@x.com" for i in ids]}),
        "identity_map": pa.table(
            {
                "id_type": ["email"] * persons,
                "id_value": [f"{i}@x.com" for i in ids],
                "person_id": ids,
            }
        ),
        "batch_profile": pa.table(profile),
    }


SNAPSHOT = """
SELECT (SELECT count(*) FROM person) AS persons,
       (SELECT count(*) FROM identity_map) AS identifiers,
       (SELECT count(*) FROM batch_profile) AS profiles,
       (SELECT count(DISTINCT tag) FROM batch_profile) AS tags,
       (SELECT min(tag) FROM batch_profile) AS tag
"""


def test_readers_see_one_complete_batch_or_the_other(store: ServingStore) -> None:
    store.publish_batch(dt.date(2025, 1, 1), batch("A", 3000))
    seen: list[dict[str, object]] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.append(store.query(SNAPSHOT)[0])

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for day in range(2, 5):
            tag, size = ("B", 4500) if day % 2 == 0 else ("A", 3000)
            store.publish_batch(dt.date(2025, 1, day), batch(tag, size))
    finally:
        done.set()
        reader.join()
    assert len(seen) > 3
    complete = [
        {"persons": n, "identifiers": n, "profiles": n, "tags": 1, "tag": t}
        for t, n in (("A", 3000), ("B", 4500))
    ]
    assert all(row in complete for row in seen), [r for r in seen if r not in complete][:3]
    assert store.query("SELECT batch_date FROM batch_publish ORDER BY id DESC LIMIT 1") == [
        {"batch_date": "2025-01-04"}
    ]


def test_a_new_feature_column_evolves_the_table(store: ServingStore) -> None:
    store.publish_batch(dt.date(2025, 1, 1), batch("A", 10))
    store.publish_batch(dt.date(2025, 1, 2), batch("B", 10, extra_column=True))
    rows = store.query("SELECT person_id, tag, churn_risk FROM profile ORDER BY person_id")
    assert len(rows) == 10
    assert rows[0] == {"person_id": "p_000000", "tag": "B", "churn_risk": 0.5}


def test_profile_view_joins_batch_and_stitched_realtime(store: ServingStore) -> None:
    store.publish_batch(
        dt.date(2025, 1, 1),
        {
            "person": pa.table({"person_id": ["p_1"], "email": ["a@x.com"]}),
            "identity_map": pa.table(
                {
                    "id_type": ["customer_id", "email"],
                    "id_value": ["42", "a@x.com"],
                    "person_id": ["p_1", "p_1"],
                }
            ),
            "batch_profile": pa.table({"person_id": ["p_1"], "spend": [10.0]}),
        },
    )
    older, newer = dt.datetime(2025, 1, 2, 10), dt.datetime(2025, 1, 2, 11)
    with store.begin() as conn:
        conn.execute(
            serving.realtime_state.insert(),
            [
                {
                    "id_type": "anonymous_id",
                    "id_value": "cookie-1",
                    "user_id": "42",
                    "session_start": older,
                    "current_session_page_views": 3,
                    "last_event_at": older,
                    "last_event_type": "page",
                    "events_total": 5,
                },
                {
                    "id_type": "anonymous_id",
                    "id_value": "cookie-2",
                    "user_id": "42",
                    "session_start": newer,
                    "current_session_page_views": 1,
                    "last_event_at": newer,
                    "last_event_type": "Product Viewed",
                    "events_total": 2,
                },
                {
                    "id_type": "anonymous_id",
                    "id_value": "stranger",
                    "user_id": None,
                    "session_start": newer,
                    "current_session_page_views": 9,
                    "last_event_at": newer,
                    "last_event_type": "page",
                    "events_total": 9,
                },
            ],
        )
    rows = store.query(
        "SELECT person_id, spend, current_session_page_views, last_event_type FROM profile"
    )
    assert rows == [
        {
            "person_id": "p_1",
            "spend": 10.0,
            "current_session_page_views": 1,
            "last_event_type": "Product Viewed",
        }
    ]
    profile = get_profile(store, "p_1", now=newer + dt.timedelta(seconds=30))
    assert profile is not None
    assert profile["realtime"]["events_total"] == 7
    assert profile["realtime"]["time_since_last_event_seconds"] == 30.0


def test_migrate_adds_the_columns_a_newer_version_declares(store: ServingStore) -> None:
    """A store an older c360 created gains the new columns (with their server defaults);
    one that cannot be added to existing rows is refused with the reason."""
    with store.begin() as conn:
        conn.execute(
            text("INSERT INTO realtime_state (id_type, id_value, current_session_page_views, "
                 "events_total) VALUES ('anonymous_id', 'a1', 2, 5)")
        )  # fmt: skip
        conn.execute(text("ALTER TABLE realtime_state DROP COLUMN user_id_at"))
        conn.execute(text("ALTER TABLE realtime_state DROP COLUMN cart_items"))
    store.migrate()
    with store.engine.connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("realtime_state")}
        row = conn.execute(text("SELECT cart_items, user_id_at FROM realtime_state")).one()
    assert {"user_id_at", "cart_items"} <= columns
    assert (row.cart_items, row.user_id_at) == (0, None)
    store.migrate()  # nothing left to add
    with store.begin() as conn:
        conn.execute(text("ALTER TABLE realtime_state DROP COLUMN events_total"))
    with pytest.raises(DataError, match="lacks column events_total, which cannot be added"):
        store.migrate()
