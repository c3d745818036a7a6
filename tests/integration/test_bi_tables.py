"""The BI tables as a BI tool reads them, with no c360 code: the serving store's ``bi_`` views
through the plain database driver (sqlite3, psycopg) and the gold zone's Parquet through
DuckDB, checked against what the batch published — profile, segment membership, segments and
churn scores — with the documented columns (docs/bi_tables.md)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from c360.batch import gold
from c360.config import load_config
from c360.lake import Lake
from c360.pipeline.steps import ZONE, run_gold, run_segments
from c360.stores import open_store

DAY = dt.date(2026, 12, 5)
IDS = [f"p_{i:02d}" for i in range(8)]


def tables() -> dict[str, pa.Table]:
    person = pa.table(
        {
            "person_id": IDS,
            "customer_id": pa.array(range(1, 9), pa.int64()),
            "email": [f"{i}@x.com" for i in IDS],
            "first_name": [f"F{i}" for i in range(8)],
            "last_name": [f"L{i}" for i in range(8)],
            "phone": [None] * 8,
            "city": ["Leeds"] * 8,
            "country": ["GB"] * 8,
        }
    )
    profile = pa.table(
        {
            "person_id": IDS,
            "total_lifetime_spend": [float(i * 150) for i in range(8)],
            "marketing_consent": [i % 2 == 0 for i in range(8)],
            "churn_risk": [None if i == 7 else i / 10 for i in range(8)],
            "churn_risk_band": [None if i == 7 else ("high" if i > 4 else "low") for i in range(8)],
            "batch_date": pa.array([DAY] * 8, pa.date32()),
        }
    )
    return {"person": person, "batch_profile": profile}


def run(url: str, tmp_path: Path) -> tuple[Lake, dict[str, pa.Table]]:
    settings = load_config(
        environ={"C360_LAKE_URL": str(tmp_path / "lake"), "C360_SERVING_URL": url}
    ).settings
    lake = Lake(settings.lake.url)
    published = tables()
    for name, table in published.items():
        lake.write_partition("profile", name, DAY, table, zone=ZONE)
    store = open_store(url)
    try:
        store.migrate()
        store.publish_batch(
            DAY,
            {
                **published,
                "identity_map": pa.table(
                    {"id_type": ["customer_id"] * 8, "id_value": IDS, "person_id": IDS}
                ),
            },
        )
        store.create_segment("big", "total_lifetime_spend > 500", "spent over 500")
    finally:
        store.dispose()
    run_segments(settings, lake, DAY)
    outcome = run_gold(settings, lake, DAY)
    assert "churn_score" in (outcome.detail or "")
    return lake, published


def expected_profile(published: dict[str, pa.Table]) -> list[dict[str, Any]]:
    batch = {r["person_id"]: r for r in published["batch_profile"].to_pylist()}
    return [{**p, **batch[p["person_id"]]} for p in published["person"].to_pylist()]


def big() -> set[str]:
    return {p for i, p in enumerate(IDS) if i * 150 > 500}


def check(rows: dict[str, list[dict[str, Any]]], published: dict[str, pa.Table]) -> None:
    """What a BI tool gets, whatever the reader: values compared loosely only where a store
    has no such type (bools as 0/1 on SQLite, dates as text)."""
    profile = rows["profile"]
    assert list(profile[0]) == [*gold.PERSON_NAMES, *gold.profile_columns(
        published["batch_profile"].schema
    )]  # fmt: skip
    wanted = expected_profile(published)
    assert [r["person_id"] for r in profile] == IDS
    for got, want in zip(profile, wanted, strict=True):
        assert got["email"] == want["email"] and got["country"] == want["country"]
        assert float(got["total_lifetime_spend"]) == want["total_lifetime_spend"]
        assert bool(got["marketing_consent"]) == want["marketing_consent"]
        assert got["churn_risk_band"] == want["churn_risk_band"]
    members = rows["segment_member"]
    assert list(members[0]) == list(gold.column_names("segment_member"))
    assert {r["person_id"] for r in members if r["is_member"]} == big()
    assert {str(r["entered_on"])[:10] for r in members} == {DAY.isoformat()}
    segments = rows["segment"]
    assert [(s["name"], s["definition"], s["description"]) for s in segments] == [
        ("big", "total_lifetime_spend > 500", "spent over 500")
    ]
    churn = rows["churn_score"]
    assert [r["person_id"] for r in churn] == IDS[:7]  # p_07 is not scored
    assert list(churn[0]) == ["person_id", "batch_date", "churn_risk", "churn_risk_band"]


SQL = {
    "profile": "SELECT * FROM bi_profile ORDER BY person_id",
    "segment_member": "SELECT * FROM bi_segment_member ORDER BY segment, person_id",
    "segment": "SELECT * FROM bi_segment ORDER BY name",
    "churn_score": "SELECT * FROM bi_churn_score ORDER BY person_id",
}


def test_sqlite_bi_views_read_with_sqlite3(tmp_path: Path) -> None:
    db = tmp_path / "serving.db"
    _, published = run(f"sqlite:///{db}", tmp_path)
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = {name: [dict(r) for r in conn.execute(sql)] for name, sql in SQL.items()}
    check(rows, published)


@pytest.mark.postgres
def test_postgres_bi_views_read_with_psycopg(postgres_url: str, tmp_path: Path) -> None:
    import psycopg
    from psycopg.rows import dict_row

    _, published = run(postgres_url, tmp_path)
    with psycopg.connect(postgres_url, row_factory=dict_row) as conn:
        rows = {name: conn.execute(sql).fetchall() for name, sql in SQL.items()}  # type: ignore[arg-type]
    check(rows, published)


def test_gold_parquet_read_with_duckdb(tmp_path: Path) -> None:
    lake, published = run(f"sqlite:///{tmp_path / 'serving.db'}", tmp_path)
    root = Path(lake.table_path(gold.SOURCE, "profile", gold.ZONE)).parent
    rows = {}
    for name in SQL:
        files = f"{root}/{name}/dt=*/*.parquet"
        query = f"SELECT * EXCLUDE (dt) FROM read_parquet('{files}', hive_partitioning = true)"
        order = "segment, person_id" if name == "segment_member" else SQL[name].split()[-1]
        result = duckdb.sql(f"{query} ORDER BY {order}")
        rows[name] = [dict(zip(result.columns, r, strict=True)) for r in result.fetchall()]
    check(rows, published)
    dates = duckdb.sql(f"SELECT DISTINCT dt FROM read_parquet('{root}/profile/dt=*/*.parquet', "
                       "hive_partitioning = true)").fetchall()  # fmt: skip
    assert dates == [(DAY,)]
