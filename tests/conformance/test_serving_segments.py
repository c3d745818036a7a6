"""Segments in the serving store, on SQLite and PostgreSQL: saving, listing and deleting them,
the field list that follows the published profile, and previews whose count and sample are
checked against the published rows (every value kind bound on both databases)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from c360.contracts import serving
from c360.errors import NotFoundError
from c360.segments import DefinitionError, Kind
from c360.stores import ServingStore, resolution
from c360.stores.segments import SegmentExists, SegmentNameError

DAY = dt.date(2026, 12, 5)
N = 60


def profile_rows() -> dict[str, list[object]]:
    ids = [f"p_{i:04d}" for i in range(N)]
    return {
        "person_id": ids,
        "total_lifetime_spend": [None if i % 7 == 0 else float(i * 20) for i in range(N)],
        "marketing_opt_in": [None if i % 5 == 0 else i % 2 == 0 for i in range(N)],
        "favourite_category": [["books", "garden", "toys"][i % 3] for i in range(N)],
        "signup_date": [dt.date(2024, 1, 1) + dt.timedelta(days=10 * i) for i in range(N)],
        "last_visit_at": [dt.datetime(2026, 12, 1) + dt.timedelta(hours=i) for i in range(N)],
        "churn_risk": [i / N for i in range(N)],
        # not in the catalogue: published all the same (a new model's output, say)
        "lifetime_value_forecast": [float(i * 3) for i in range(N)],
    }


def publish(store: ServingStore) -> dict[str, list[object]]:
    rows = profile_rows()
    ids = rows["person_id"]
    store.publish_batch(
        DAY,
        {
            "person": pa.table({"person_id": ids, "email": [f"{i}@x.com" for i in ids]}),
            "identity_map": pa.table(
                {
                    "id_type": ["email"] * N,
                    "id_value": [f"{i}@x.com" for i in ids],
                    "person_id": ids,
                }
            ),
            "batch_profile": pa.table(
                {
                    **{k: v for k, v in rows.items() if k not in ("signup_date", "last_visit_at")},
                    "signup_date": pa.array(rows["signup_date"], pa.date32()),
                    "last_visit_at": pa.array(rows["last_visit_at"], pa.timestamp("us")),
                }
            ),
        },
    )
    return rows


def expected(rows: dict[str, list[object]], keep: object) -> list[str]:
    people = [dict(zip(rows, values, strict=True)) for values in zip(*rows.values(), strict=True)]
    return sorted(str(p["person_id"]) for p in people if keep(p))  # type: ignore[operator]


def test_segments_are_saved_listed_shown_and_deleted(store: ServingStore) -> None:
    publish(store)
    made = store.create_segment("big-spenders", "total_lifetime_spend > 500", "spend over 500")
    assert made.fields == ("total_lifetime_spend",)
    store.create_segment("at_risk", "churn_risk >= 0.5 and marketing_opt_in")
    listed = store.segments()
    assert [s.name for s in listed] == ["at_risk", "big-spenders"]
    assert listed[0].fields == ("churn_risk", "marketing_opt_in")
    assert listed[0].members is None  # membership not computed yet
    shown = store.segment("big-spenders")
    assert (shown.definition, shown.description) == ("total_lifetime_spend > 500", "spend over 500")
    with pytest.raises(SegmentExists):
        store.create_segment("big-spenders", "churn_risk > 0")
    assert store.delete_segment("big-spenders") is True
    assert store.delete_segment("big-spenders") is False
    with pytest.raises(NotFoundError):
        store.segment("big-spenders")
    assert [s.name for s in store.segments()] == ["at_risk"]


@pytest.mark.parametrize("name", ["", "Big", "a b", "x" * 65, "-x", "a;drop", "é"])
def test_names_are_plain(store: ServingStore, name: str) -> None:
    with pytest.raises(SegmentNameError):
        store.create_segment(name, "churn_risk > 0")


def test_an_invalid_definition_is_refused_with_its_position(store: ServingStore) -> None:
    publish(store)
    with pytest.raises(DefinitionError) as caught:
        store.create_segment("x", "churn_risk > 0.5 and total_spend > 1")
    assert caught.value.position == 21
    assert "total_lifetime_spend" in str(caught.value)
    assert store.segments() == []


def test_the_fields_follow_the_published_profile(store: ServingStore) -> None:
    before = store.segment_fields()
    assert before["total_lifetime_spend"] == (Kind.NUMBER, "batch")  # the catalogue's
    assert before["cart_value"] == (Kind.NUMBER, "realtime")
    assert before["churn_risk"] == (Kind.NUMBER, "batch")  # the churn model's, catalogued
    assert "lifetime_value_forecast" not in before
    with pytest.raises(DefinitionError):
        store.create_segment("valuable", "lifetime_value_forecast > 50")
    publish(store)
    after = store.segment_fields()
    assert after["lifetime_value_forecast"] == (Kind.NUMBER, "batch")
    assert after["signup_date"] == (Kind.DATE, "batch")
    assert after["last_visit_at"] == (Kind.TIMESTAMP, "batch")
    assert after["marketing_opt_in"] == (Kind.BOOL, "batch")
    assert "person_id" not in after
    made = store.create_segment("valuable", "lifetime_value_forecast > 50")
    assert made.fields == ("lifetime_value_forecast",)


CASES = [
    ("total_lifetime_spend > 500", lambda p: (p["total_lifetime_spend"] or 0) > 500),
    ("total_lifetime_spend is null", lambda p: p["total_lifetime_spend"] is None),
    ("marketing_opt_in", lambda p: p["marketing_opt_in"] is True),
    ("not marketing_opt_in", lambda p: p["marketing_opt_in"] is False),
    (
        "favourite_category in ('books', 'toys') and churn_risk between 0.2 and 0.6",
        lambda p: p["favourite_category"] in ("books", "toys") and 0.2 <= p["churn_risk"] <= 0.6,
    ),
    ("signup_date >= '2025-01-01'", lambda p: p["signup_date"] >= dt.date(2025, 1, 1)),
    (
        "last_visit_at < '2026-12-02T06:30:00Z'",
        lambda p: p["last_visit_at"] < dt.datetime(2026, 12, 2, 6, 30),
    ),
    ("favourite_category = 'x'' or ''1''=''1'", lambda p: False),
]


@pytest.mark.parametrize(("definition", "keep"), CASES, ids=[c[0] for c in CASES])
def test_a_preview_counts_and_samples_what_the_definition_selects(
    store: ServingStore, definition: str, keep: object
) -> None:
    rows = publish(store)
    members = expected(rows, keep)
    preview = store.preview_segment(definition, sample=5)
    assert preview.count == len(members)
    assert [row["person_id"] for row in preview.sample] == members[:5]
    for row in preview.sample:
        assert set(row) == {"person_id", *preview.fields}
    if "marketing_opt_in" in preview.fields:
        assert all(isinstance(row["marketing_opt_in"], bool) for row in preview.sample)


def test_a_preview_over_a_real_time_field_reads_the_speed_layer(store: ServingStore) -> None:
    publish(store)
    at = dt.datetime(2026, 12, 6, 10)
    with store.engine.begin() as conn:
        conn.execute(
            serving.realtime_state.insert(),
            [
                {
                    "id_type": "email",
                    "id_value": f"p_{i:04d}@x.com",
                    "session_start": at,
                    "last_event_at": at,
                    "events_total": 3,
                    "cart_items": 2,
                    "cart_value": value,
                    "cart_updated_at": at,
                }
                for i, value in ((1, 150.0), (2, 90.0), (3, 300.0))
            ],
        )
        resolution.resolve_all(conn)  # as a writer does (c360.stores.resolution)
    preview = store.preview_segment("cart_value > 100 and churn_risk < 0.04", sample=10)
    assert (preview.count, [r["person_id"] for r in preview.sample]) == (1, ["p_0001"])
    assert preview.sample[0]["cart_value"] == 150.0
