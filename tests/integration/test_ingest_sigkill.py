"""SIGKILL in the middle of an ingest leaves the previous good lake readable; a re-run heals it."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert

from c360.contracts import shop_db
from c360.lake import Lake

ROWS = 150_000


def _orders(first: int, count: int, day: dt.datetime) -> list[dict[str, object]]:
    return [
        {
            "order_id": i,
            "customer_id": None,
            "email": f"g{i}@x.com",
            "status": "placed",
            "currency": "EUR",
            "subtotal": Decimal("9.99"),
            "shipping": Decimal("0.00"),
            "total": Decimal("9.99"),
            "created_at": day,
            "updated_at": day,
        }
        for i in range(first, first + count)
    ]


def _command(day: str) -> list[str]:
    return [sys.executable, "-m", "c360", "ingest", "mysql", "--date", day]


def _ingest(env: dict[str, str], day: str) -> None:
    done = subprocess.run(_command(day), env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_sigkill_mid_write_keeps_previous_state_and_rerun_completes(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    engine = create_engine(f"sqlite:///{db}")
    shop_db.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(shop_db.orders), _orders(1, 10, dt.datetime(2025, 1, 1, 12)))
    env = {
        **os.environ,
        "C360_SOURCES_MYSQL_URL": f"sqlite:///{db}",
        "C360_LAKE_URL": str(tmp_path / "lake"),
    }
    _ingest(env, "2025-01-01")
    with engine.begin() as conn:
        conn.execute(insert(shop_db.orders), _orders(100, ROWS, dt.datetime(2025, 1, 2, 12)))
    engine.dispose()
    lake = Lake(str(tmp_path / "lake"))
    staging = tmp_path / "lake" / "_staging"

    process = subprocess.Popen(_command("2025-01-02"), env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not any(staging.glob("*/part-0.parquet")) and process.poll() is None:
        assert time.monotonic() < deadline, "the ingest never started writing"
        time.sleep(0.001)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    assert process.returncode == -signal.SIGKILL, "the ingest finished before the kill"

    assert lake.partitions("shop", "orders") == [dt.date(2025, 1, 1)]
    assert lake.read_partition("shop", "orders", dt.date(2025, 1, 1)).num_rows == 10

    _ingest(env, "2025-01-02")
    assert lake.partitions("shop", "orders") == [dt.date(2025, 1, 1), dt.date(2025, 1, 2)]
    assert lake.read_partition("shop", "orders", dt.date(2025, 1, 2)).num_rows == ROWS + 10
