"""Daily segment membership: the pipeline's ``segments`` step on real Parquet and a real
serving store, over three days, against a reference computed in Python from each day's
profile; idempotent re-runs, the lake's history, carried-over and deleted segments; and the
same spells on Spark."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from c360.config import Settings, load_config
from c360.lake import Lake
from c360.pipeline.steps import SEGMENTS, ZONE, run_segments
from c360.segments import membership
from c360.stores import ServingStore, open_store

DAYS = [dt.date(2026, 12, 1), dt.date(2026, 12, 2), dt.date(2026, 12, 3)]
PEOPLE = [f"p_{i:02d}" for i in range(30)]

# Segments and the Python each stands for.
SEGMENTS_DEFINED = {
    "big": ("total_lifetime_spend >= 500", lambda p: p["total_lifetime_spend"] >= 500),
    "risky-opted-in": (
        "churn_risk > 0.6 and marketing_opt_in",
        lambda p: p["churn_risk"] > 0.6 and p["marketing_opt_in"] is True,
    ),
    "books": (
        "favourite_category in ('books') and signup_date < '2025-01-01'",
        lambda p: p["favourite_category"] == "books" and p["signup_date"] < dt.date(2025, 1, 1),
    ),
}


def profile(day_index: int) -> pa.Table:
    """Spend and churn risk move each day, so persons enter and leave segments."""
    rows = {
        "person_id": PEOPLE,
        "total_lifetime_spend": [float((i * 37 + day_index * 170) % 900) for i in range(30)],
        "churn_risk": [((i * 7 + day_index * 11) % 20) / 20 for i in range(30)],
        "marketing_opt_in": [None if i % 6 == 0 else i % 3 != 1 for i in range(30)],
        "favourite_category": [["books", "toys"][(i + day_index) % 2] for i in range(30)],
        "signup_date": [dt.date(2024, 6, 1) + dt.timedelta(days=20 * i) for i in range(30)],
        "batch_date": [DAYS[day_index]] * 30,
    }
    return pa.table(
        {
            **rows,
            "signup_date": pa.array(rows["signup_date"], pa.date32()),
            "batch_date": pa.array(rows["batch_date"], pa.date32()),
        }
    )


def reference(days: int) -> set[tuple[str, str, dt.date, dt.date | None]]:
    """Spells from each day's member sets, the plain way."""
    spells: dict[tuple[str, str], list[list[dt.date | None]]] = {}
    for index in range(days):
        people = profile(index).to_pylist()
        for name, (_, keep) in SEGMENTS_DEFINED.items():
            members = {p["person_id"] for p in people if keep(p)}
            for person in PEOPLE:
                history = spells.setdefault((name, person), [])
                open_spell = history and history[-1][1] is None
                if person in members and not open_spell:
                    history.append([DAYS[index], None])
                elif person not in members and open_spell:
                    history[-1][1] = DAYS[index]
    return {
        (name, person, entered, exited)  # type: ignore[misc]
        for (name, person), history in spells.items()
        for entered, exited in history
    }


def spells_of(table: pa.Table) -> set[tuple[str, str, dt.date, dt.date | None]]:
    return {
        (r["segment"], r["person_id"], r["entered_on"], r["exited_on"]) for r in table.to_pylist()
    }


def setup(tmp_path: Path, engine: str = "duckdb") -> tuple[Settings, Lake, ServingStore]:
    settings = load_config(
        environ={
            "C360_LAKE_URL": str(tmp_path / "lake"),
            "C360_SERVING_URL": f"sqlite:///{tmp_path / 'serving.db'}",
            "C360_COMPUTE_ENGINE": engine,
            "C360_COMPUTE_THREADS": "2",
        }
    ).settings
    lake = Lake(settings.lake.url)
    for index, day in enumerate(DAYS):
        lake.write_partition("profile", "batch_profile", day, profile(index), zone=ZONE)
    store = open_store(settings.serving.url)
    store.migrate()
    store.publish_batch(  # the serving profile knows churn_risk (not in the catalogue)
        DAYS[0],
        {
            "person": pa.table({"person_id": PEOPLE}),
            "identity_map": pa.table(
                {"id_type": ["email"] * 30, "id_value": PEOPLE, "person_id": PEOPLE}
            ),
            "batch_profile": profile(0),
        },
    )
    for name, (definition, _) in SEGMENTS_DEFINED.items():
        store.create_segment(name, definition)
    return settings, lake, store


def test_membership_spells_follow_the_daily_profiles(tmp_path: Path) -> None:
    settings, lake, store = setup(tmp_path)
    store.create_segment("abandoned-cart", "cart_value > 100")  # real time: not in the batch
    try:
        for count, day in enumerate(DAYS, start=1):
            outcome = run_segments(settings, lake, day)
            history = lake.read_partition(SEGMENTS, membership.OUTPUT, day, ZONE)
            assert spells_of(history) == reference(count), day
            assert history.schema == membership.SCHEMA
            assert "3 segments evaluated" in (outcome.detail or "")
            assert "not evaluated in the batch" in (outcome.detail or "")
        expected = reference(len(DAYS))
        assert len({s for s in expected if s[3] is not None}) > 0  # some left, and some
        assert len({s[2] for s in expected}) == 3  # entered on each day
        served = store.query("SELECT segment, person_id, entered_on, exited_on FROM segment_member")
        as_dates = {
            (
                r["segment"],
                r["person_id"],
                dt.date.fromisoformat(str(r["entered_on"])),
                None if r["exited_on"] is None else dt.date.fromisoformat(str(r["exited_on"])),
            )
            for r in served
        }
        assert as_dates == expected
        listed = store.segments()
        counts = {s.name: s.members for s in listed}
        assert {s.name: s.members_as_of for s in listed} == {
            **dict.fromkeys(SEGMENTS_DEFINED, DAYS[-1]),
            "abandoned-cart": None,  # real time: never evaluated by the daily step
        }
        for name in SEGMENTS_DEFINED:
            assert counts[name] == sum(1 for s in expected if s[0] == name and s[3] is None)

        # Re-running a day reads the same earlier spells: the same answer.
        run_segments(settings, lake, DAYS[1])
        assert spells_of(lake.read_partition(SEGMENTS, membership.OUTPUT, DAYS[1], ZONE)) == (
            reference(2)
        )

        # A deleted segment's spells go; the others carry on.
        store.delete_segment("big")
        run_segments(settings, lake, DAYS[2])
        after = spells_of(lake.read_partition(SEGMENTS, membership.OUTPUT, DAYS[2], ZONE))
        assert after == {s for s in reference(3) if s[0] != "big"}
    finally:
        store.dispose()


def test_a_segment_made_again_under_its_name_starts_afresh(tmp_path: Path) -> None:
    settings, lake, store = setup(tmp_path)
    try:
        run_segments(settings, lake, DAYS[0])
        before = {s for s in reference(1) if s[0] == "big"}
        assert before  # it had members on D1
        store.delete_segment("big")
        store.create_segment("big", "total_lifetime_spend >= 500")
        run_segments(settings, lake, DAYS[1])
        day2 = spells_of(lake.read_partition(SEGMENTS, membership.OUTPUT, DAYS[1], ZONE))
        members = {
            p["person_id"] for p in profile(1).to_pylist() if p["total_lifetime_spend"] >= 500
        }
        assert {s for s in day2 if s[0] == "big"} == {("big", p, DAYS[1], None) for p in members}
        assert {s for s in day2 if s[0] != "big"} == {s for s in reference(2) if s[0] != "big"}
    finally:
        store.dispose()


@pytest.mark.spark
def test_spark_gives_the_same_spells(tmp_path: Path) -> None:
    settings, lake, store = setup(tmp_path, engine="spark")
    try:
        for count, day in enumerate(DAYS[:2], start=1):
            run_segments(settings, lake, day)
            history = lake.read_partition(SEGMENTS, membership.OUTPUT, day, ZONE)
            assert spells_of(history) == reference(count)
            assert history.schema == membership.SCHEMA
    finally:
        store.dispose()
