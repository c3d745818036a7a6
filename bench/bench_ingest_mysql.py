"""Benchmark: orders extracted from MariaDB/MySQL into the lake, rows per second.

Loads N synthetic orders into a benchmark database (once; reused while the count matches),
then times the ingest of the ``orders`` table (a first, full extract: ConnectorX → Arrow →
conform → Parquet, atomically committed) and, with ``--compare``, the same extract through a
plain chunked SQLAlchemy cursor. Prints one JSON line.

    python bench/bench_ingest_mysql.py --rows 1000000 --compare
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import tempfile
import time
from decimal import Decimal

import numpy as np
from sqlalchemy import create_engine, func, insert, select, text

from c360.config import MySQLSourceSettings
from c360.contracts import shop_db
from c360.ingest import shop
from c360.lake import Lake
from c360.sources import mysql

DAY = dt.date(2026, 1, 1)


def load(url: str, rows: int) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        shop_db.metadata.create_all(conn)
        if conn.execute(select(func.count()).select_from(shop_db.orders)).scalar() == rows:
            return
        conn.execute(text("SET FOREIGN_KEY_CHECKS = 0"))
        conn.execute(shop_db.orders.delete())
    rng = np.random.default_rng(7)
    start = dt.datetime(2024, 1, 1)
    for offset in range(0, rows, 50_000):
        n = min(50_000, rows - offset)
        cents = rng.integers(500, 50_000, n)
        seconds = np.sort(rng.integers(0, 700 * 86_400, n))
        batch = [
            {
                "order_id": offset + i + 1,
                "customer_id": None if i % 10 == 0 else int(i % 90_000) + 1,
                "email": f"user{i % 90_000}@example.com",
                "status": "delivered",
                "currency": "EUR",
                "subtotal": Decimal(int(cents[i])) / 100,
                "shipping": Decimal("4.99"),
                "total": Decimal(int(cents[i])) / 100 + Decimal("4.99"),
                "shipping_name": "A Person",
                "shipping_address_line": "1 High Street",
                "shipping_postcode": "AB1 2CD",
                "shipping_city": "Leeds",
                "shipping_country": "GB",
                "phone": "+441130000000",
                "created_at": start + dt.timedelta(seconds=int(seconds[i])),
                "updated_at": start + dt.timedelta(seconds=int(seconds[i]) + 3600),
            }
            for i in range(n)
        ]
        with engine.begin() as conn:
            conn.execute(text("SET FOREIGN_KEY_CHECKS = 0"))
            conn.execute(insert(shop_db.orders), batch)
    engine.dispose()


def time_ingest(url: str) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as folder:
        spec = next(t for t in shop.TABLES if t.name == "orders")
        started = time.perf_counter()
        report = shop.ingest_table(MySQLSourceSettings(url=url), Lake(folder), spec, DAY)
        return report.rows, time.perf_counter() - started


def time_sqlalchemy(url: str) -> tuple[int, float]:
    engine = create_engine(url)
    schema, _ = mysql.reflect_schema(engine, "orders")
    engine.dispose()
    started = time.perf_counter()
    rows = sum(
        b.num_rows for b in mysql._extract_sqlalchemy(url, "SELECT * FROM orders", schema, 100_000)
    )
    return rows, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--url", default="mysql+pymysql://root@127.0.0.1:3306/c360_bench")
    parser.add_argument("--compare", action="store_true", help="also time a SQLAlchemy cursor")
    args = parser.parse_args()
    server = args.url.rsplit("/", 1)[0]
    admin = create_engine(server + "/")
    with admin.begin() as conn:
        conn.execute(text(f"CREATE DATABASE IF NOT EXISTS {args.url.rsplit('/', 1)[1]}"))
    admin.dispose()
    load(args.url, args.rows)
    rows, seconds = time_ingest(args.url)
    result: dict[str, object] = {
        "bench": "ingest_mysql_orders",
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_second": round(rows / seconds),
    }
    if args.compare:
        plain_rows, plain_seconds = time_sqlalchemy(args.url)
        result["sqlalchemy_cursor_seconds"] = round(plain_seconds, 2)
        result["speedup_vs_sqlalchemy_cursor"] = round(plain_seconds / seconds, 2)
        assert plain_rows == rows
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
