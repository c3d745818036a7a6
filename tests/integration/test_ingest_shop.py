"""The orders DB into the lake: incremental, atomic, idempotent — on SQLite and MariaDB."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import Engine, create_engine, insert, text, update

from c360.config import MySQLSourceSettings
from c360.contracts import shop_db
from c360.ingest import shop
from c360.lake import Lake
from c360.sources import mysql

D1, D2 = dt.date(2025, 2, 1), dt.date(2025, 2, 2)
T = dt.datetime


def order(
    order_id: int, updated: dt.datetime, total: str = "10.00", status: str = "placed"
) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "customer_id": 1,
        "email": "a@x.com",
        "status": status,
        "currency": "EUR",
        "subtotal": Decimal(total),
        "shipping": Decimal("0.00"),
        "total": Decimal(total),
        "created_at": T(2025, 1, 31),
        "updated_at": updated,
    }


def item(item_id: int | None, order_id: int, quantity: int, updated: dt.datetime) -> dict[str, Any]:
    return {
        "order_item_id": item_id,
        "order_id": order_id,
        "product_id": 1,
        "quantity": quantity,
        "unit_price": Decimal("5.00"),
        "updated_at": updated,
    }


CUSTOMER = {
    "customer_id": 1,
    "email": "a@x.com",
    "first_name": "A",
    "last_name": "Z",
    "marketing_opt_in": True,
    "created_at": T(2025, 1, 1),
    "updated_at": T(2025, 1, 1),
}
PRODUCT = {
    "product_id": 1,
    "sku": "S1",
    "name": "Mug",
    "category": "home",
    "price": Decimal("5.00"),
    "created_at": T(2025, 1, 1),
    "updated_at": T(2025, 1, 1),
}


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.mysql)])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shop.db'}"
    else:
        url = request.getfixturevalue("mysql_url")
    engine = create_engine(url)
    shop_db.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(shop_db.customers), [CUSTOMER])
        conn.execute(insert(shop_db.products), [PRODUCT])
        conn.execute(
            insert(shop_db.orders), [order(1, T(2025, 2, 1, 9)), order(2, T(2025, 2, 1, 20))]
        )
        conn.execute(insert(shop_db.order_items), [item(1, 1, 2, T(2025, 2, 1, 9))])
    yield url, engine
    engine.dispose()


def settings(url: str, lookback_hours: float = 6) -> MySQLSourceSettings:
    return MySQLSourceSettings(url=url, lookback_hours=lookback_hours)


def rows(lake: Lake, table: str, day: dt.date) -> list[dict[str, Any]]:
    return sorted(
        lake.read_partition("shop", table, day).to_pylist(), key=lambda r: next(iter(r.values()))
    )


def test_first_run_is_a_full_extract_with_types_kept(
    source: tuple[str, Engine], tmp_path: Path
) -> None:
    url, _ = source
    lake = Lake(str(tmp_path / "lake"))
    reports = {r.table: r for r in shop.ingest_shop(settings(url), lake, D1)}
    assert {t: r.rows for t, r in reports.items()} == {
        "customers": 1,
        "products": 1,
        "orders": 2,
        "order_items": 1,
    }
    orders = lake.read_partition("shop", "orders", D1)
    assert orders.schema.field("total").type == pa.decimal128(12, 2)
    assert orders.schema.field("updated_at").type == pa.timestamp("us", tz="UTC")
    assert orders.column("total").to_pylist() == [Decimal("10.00")] * 2
    assert reports["orders"].high_water_mark == "2025-02-01T20:00:00"
    assert lake.manifest("shop", "orders", D1)["high_water_mark"] == "2025-02-01T20:00:00"


def test_incremental_run_reads_changes_and_late_commits_once(
    source: tuple[str, Engine], tmp_path: Path
) -> None:
    url, engine = source
    lake = Lake(str(tmp_path / "lake"))
    shop.ingest_shop(settings(url, lookback_hours=2), lake, D1)
    with engine.begin() as conn:
        # Shipped on D2; a late commit stamped before the mark (within the look-back);
        # and one stamped long before it (outside the look-back: not re-read, by design).
        conn.execute(
            update(shop_db.orders)
            .where(shop_db.orders.c.order_id == 1)
            .values(status="shipped", updated_at=T(2025, 2, 2, 8))
        )
        conn.execute(
            insert(shop_db.orders), [order(3, T(2025, 2, 1, 19)), order(4, T(2025, 2, 1, 1))]
        )
        # After the cutoff of D2: belongs to D3.
        conn.execute(insert(shop_db.orders), [order(5, T(2025, 2, 3, 0, 0, 0))])
    shop.ingest_shop(settings(url, lookback_hours=2), lake, D2)
    second = rows(lake, "orders", D2)
    assert [(r["order_id"], r["status"]) for r in second] == [
        (1, "shipped"),
        (2, "placed"),
        (3, "placed"),
    ]
    assert lake.manifest("shop", "orders", D2)["high_water_mark"] == "2025-02-02T08:00:00"


def test_rerunning_a_date_repeats_it_exactly(source: tuple[str, Engine], tmp_path: Path) -> None:
    url, _ = source
    lake = Lake(str(tmp_path / "lake"))
    shop.ingest_shop(settings(url), lake, D1)
    shop.ingest_shop(settings(url), lake, D2)
    first = {t: lake.read_partition("shop", t, D2) for t in ("orders", "customers")}
    mark = lake.manifest("shop", "orders", D2)["high_water_mark"]
    shop.ingest_shop(settings(url), lake, D2)
    assert all(lake.read_partition("shop", t, D2).equals(v) for t, v in first.items())
    assert lake.manifest("shop", "orders", D2)["high_water_mark"] == mark


def test_failure_mid_extract_leaves_lake_and_mark_then_rerun_matches(
    source: tuple[str, Engine], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, engine = source
    broken, clean = Lake(str(tmp_path / "broken")), Lake(str(tmp_path / "clean"))
    for lake in (broken, clean):
        shop.ingest_shop(settings(url), lake, D1)
    with engine.begin() as conn:
        conn.execute(insert(shop_db.orders), [order(i, T(2025, 2, 2, 1, i)) for i in range(10, 40)])
    real_extract = mysql.extract

    def failing(*args: Any, **kwargs: Any) -> Iterator[pa.RecordBatch]:
        kwargs["chunk_rows"] = 5
        for number, batch in enumerate(real_extract(*args, **kwargs)):
            if number == 2:
                raise ConnectionError("injected: connection reset mid-extract")
            yield batch

    monkeypatch.setattr(mysql, "extract", failing)
    with pytest.raises(ConnectionError, match="injected"):
        shop.ingest_shop(settings(url), broken, D2, tables=["orders"])
    assert broken.partitions("shop", "orders") == [D1]
    assert broken.manifest("shop", "orders", D1)["high_water_mark"] == "2025-02-01T20:00:00"
    assert broken.fs.ls(f"{broken.root}/_staging", detail=False) == []
    monkeypatch.undo()
    shop.ingest_shop(settings(url), broken, D2)
    shop.ingest_shop(settings(url), clean, D2)
    for table in ("orders", "order_items", "customers"):
        assert rows(broken, table, D2) == rows(clean, table, D2)


def test_bad_rows_go_to_quarantine_with_reasons(source: tuple[str, Engine], tmp_path: Path) -> None:
    url, engine = source
    with engine.begin() as conn:
        conn.execute(insert(shop_db.order_items), [item(2, 1, -3, T(2025, 2, 1, 9))])
        # Fits DECIMAL(12, 2) but is no plausible amount (c360.contracts.money).
        conn.execute(insert(shop_db.orders), [order(3, T(2025, 2, 1, 9), total="5000000000.00")])
    if engine.dialect.name == "sqlite":  # SQLite lets through what MariaDB would refuse
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE customers SET created_at = 'last tuesday' WHERE customer_id = 1")
            )
            conn.execute(text("UPDATE orders SET total = 1e300 WHERE order_id = 2"))
    lake = Lake(str(tmp_path / "lake"))
    reports = {r.table: r for r in shop.ingest_shop(settings(url), lake, D1)}
    quarantined = lake.read_partition("shop", "order_items", D1, zone="quarantine").to_pylist()
    reasons = sorted(q["reason"] for q in quarantined)
    expected = ["negative quantity"]
    if engine.dialect.name == "sqlite":
        assert reports["customers"].quarantined == 1
        customer = lake.read_partition("shop", "customers", D1, zone="quarantine").to_pylist()[0]
        assert customer["reason"] == "unparseable timestamp in created_at"
        assert "last tuesday" in customer["record"]
    assert reasons == expected
    assert reports["order_items"].quarantined == len(expected)
    assert [r["order_item_id"] for r in rows(lake, "order_items", D1)] == [1]
    orders = lake.read_partition("shop", "orders", D1, zone="quarantine").to_pylist()
    order_reasons = sorted(q["reason"] for q in orders)
    if engine.dialect.name == "sqlite":
        assert order_reasons == [
            "subtotal above 1,000,000,000; total above 1,000,000,000",
            "total out of range for decimal128(12, 2)",
        ]
        assert [r["order_id"] for r in rows(lake, "orders", D1)] == [1]
    else:
        assert order_reasons == ["subtotal above 1,000,000,000; total above 1,000,000,000"]
        assert [r["order_id"] for r in rows(lake, "orders", D1)] == [1, 2]


def test_new_source_column_is_added_with_a_warning(
    source: tuple[str, Engine], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, engine = source
    lake = Lake(str(tmp_path / "lake"))
    shop.ingest_shop(settings(url), lake, D1)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE orders ADD COLUMN coupon VARCHAR(20)"))
    reports = {r.table: r for r in shop.ingest_shop(settings(url), lake, D2)}
    assert reports["orders"].added_columns == ("coupon",)
    assert "new column 'coupon'" in caplog.text
    assert "coupon" in lake.manifest("shop", "orders", D2)["schema"]
