"""`c360 generate` on the command line, and the MariaDB/MySQL target."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, func, select

from c360.cli.main import cli
from c360.config import load_config
from c360.contracts import shop_db
from c360.simulator import TargetNotEmptyError, generate


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("C360_CONFIG", raising=False)
    for name, value in {
        "C360_SOURCES_MYSQL_URL": f"sqlite:///{tmp_path / 'shop.db'}",
        "C360_SOURCES_CLICKSTREAM_PATH": str(tmp_path / "clicks.jsonl.gz"),
        "C360_SOURCES_ZENDESK_PATH": str(tmp_path / "zendesk.jsonl"),
        "C360_SOURCES_MAILCHIMP_DIR": str(tmp_path / "mailchimp"),
        "C360_SIMULATOR_TRUTH_DIR": str(tmp_path / "truth"),
        "C360_SIMULATOR_CUSTOMERS": "5000",  # the options below override this
    }.items():
        monkeypatch.setenv(name, value)
    return tmp_path


def test_generate_json_summary(env: Path) -> None:
    args = [
        "generate",
        "--customers",
        "60",
        "--days",
        "21",
        "--seed",
        "3",
        "--start-date",
        "2025-02-01",
        "--json",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["customers"] == 60 and summary["persons"] == 60 + 6 + 2
    assert summary["orders"] > 0 and summary["clickstream_events"] > 0 and summary["seconds"] > 0
    assert set(summary) >= {
        "persons", "customers", "guests", "products", "orders", "order_items", "clickstream_events",
        "zendesk_events", "mailchimp_members", "email_activity", "seconds",
    }  # fmt: skip
    assert (env / "clicks.jsonl.gz").is_file() and (
        env / "mailchimp" / "members_export.csv"
    ).is_file()
    assert (env / "truth" / "identifiers.parquet").is_file()
    members = (env / "mailchimp" / "members.jsonl").read_text().splitlines()
    assert len(members) == summary["mailchimp_members"] > 0

    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code != 0
    assert isinstance(refused.exception, TargetNotEmptyError)
    assert "--replace" in str(refused.exception)

    replaced = CliRunner().invoke(cli, [*args[:-1], "--replace", "--json"])
    assert replaced.exit_code == 0, replaced.output
    assert json.loads(replaced.stdout) | {"seconds": 0} == summary | {"seconds": 0}


def test_generate_prints_a_readable_summary(env: Path) -> None:
    result = CliRunner().invoke(cli, ["generate", "--customers", "40", "--days", "7"])
    assert result.exit_code == 0, result.output
    assert "generated the ShopSmart world" in result.output
    for name in ("orders DB", "clickstream", "zendesk", "mailchimp", "truth"):
        assert name in result.output
    assert "@" not in result.output  # no personal data on the terminal


def test_bad_start_date_names_the_key(env: Path) -> None:
    result = CliRunner().invoke(cli, ["generate", "--start-date", "2025-13-40"])
    assert result.exit_code != 0
    assert "simulator.start_date" in str(result.exception)


@pytest.mark.mysql
def test_generate_into_mariadb(mysql_url: str, tmp_path: Path) -> None:
    config = tmp_path / "c360.toml"
    config.write_text("")
    overrides = {
        "simulator.customers": 80,
        "simulator.days": 20,
        "sources.mysql.url": mysql_url,
        "sources.clickstream.path": str(tmp_path / "clicks.jsonl.gz"),
        "sources.zendesk.path": str(tmp_path / "zendesk.jsonl"),
        "sources.mailchimp.dir": str(tmp_path / "mailchimp"),
        "simulator.truth_dir": str(tmp_path / "truth"),
    }
    settings = load_config(config, environ={}, overrides=overrides).settings
    summary = generate(settings)
    engine = create_engine(mysql_url)
    try:
        with engine.connect() as conn:
            orders = conn.execute(select(func.count()).select_from(shop_db.orders)).scalar_one()
            items = conn.execute(
                select(shop_db.order_items.c.order_id, shop_db.order_items.c.quantity,
                       shop_db.order_items.c.unit_price)
            ).all()  # fmt: skip
            totals = conn.execute(
                select(shop_db.orders.c.order_id, shop_db.orders.c.subtotal, shop_db.orders.c.total,
                       shop_db.orders.c.shipping, shop_db.orders.c.updated_at)
            ).all()  # fmt: skip
    finally:
        engine.dispose()
    assert orders == summary.orders > 0
    lines: dict[int, Decimal] = {}
    for order_id, quantity, price in items:
        assert isinstance(price, Decimal)
        lines[order_id] = lines.get(order_id, Decimal(0)) + quantity * price
    for order_id, subtotal, total, shipping, _ in totals:
        assert subtotal == lines[order_id] and total == subtotal + shipping
    with pytest.raises(TargetNotEmptyError):
        generate(settings)
    assert generate(settings, replace=True).orders == summary.orders
