"""The orders-DB source classifies its drivers' errors once: ConnectorX's and SQLAlchemy's."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pyarrow as pa
import pymysql
import pytest
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from c360.errors import C360Error, ConfigError, DataError, TerminalError, TransientError
from c360.sources import mysql

SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string())])


@pytest.fixture
def shop_db(tmp_path: Path) -> str:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO customers VALUES (1, 'Ann')")
    return f"sqlite:///{path}"


def read(url: str, table: str) -> list[pa.RecordBatch]:
    return list(mysql.extract(url, table, SCHEMA))


@pytest.fixture(params=["connectorx", "sqlalchemy"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both read paths: ConnectorX (the default for SQLite files) and the SQLAlchemy cursor."""
    if request.param == "sqlalchemy":
        monkeypatch.setattr(mysql, "_connectorx_url", lambda url: None)
    return str(request.param)


def test_both_paths_read(shop_db: str, path: str) -> None:
    assert pa.Table.from_batches(read(shop_db, "customers")).to_pylist() == [
        {"id": 1, "name": "Ann"}
    ]


def test_an_unknown_table_is_a_data_error_naming_the_table(shop_db: str, path: str) -> None:
    with pytest.raises(DataError, match="reading nope: no such table") as caught:
        read(shop_db, "nope")
    assert "sources.mysql.url" in str(caught.value)
    # (an unknown column cannot be shown on SQLite: it reads "email" as the string 'email')


def test_reflecting_a_missing_table_is_a_data_error(shop_db: str) -> None:
    engine = mysql.connect(shop_db)
    try:
        with pytest.raises(DataError, match="no table 'nope'"):
            mysql.reflect_schema(engine, "nope")
    finally:
        engine.dispose()


def test_a_refused_connection_is_transient_and_hides_the_password() -> None:
    engine = mysql.connect("mysql+pymysql://shop:s3cret-pw@127.0.0.1:9/shop")
    try:
        with pytest.raises(TransientError, match="unreachable while reflecting orders") as caught:
            mysql.reflect_schema(engine, "orders")
    finally:
        engine.dispose()
    assert "Connection refused" in str(caught.value)
    assert "s3cret-pw" not in str(caught.value)


@pytest.mark.parametrize("url", ["not a url", "mysql+nosuchdriver://shop@db/shop"])
def test_a_bad_url_or_driver_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        mysql.connect(url)
    assert caught.value.key == "sources.mysql.url"


# What ConnectorX 0.4 raises (RuntimeError, text only), as recorded from a real driver.
CONNECTORX = {
    "refused": "timed out waiting for connection: DriverError { Could not connect to address "
    "`db:3306': Connection refused (os error 111) }",
    "lost": "MySqlError { ERROR 2013 (HY000): Lost connection to MySQL server during query }",
    "mysql-auth": "timed out waiting for connection: MySqlError { ERROR 1045 (28000): Access "
    "denied for user 'shop'@'10.0.0.1' (using password: YES) }",
    "mysql-table": "MySqlError { ERROR 1146 (42S02): Table 'shop.nope' doesn't exist }",
    "mysql-column": "MySqlError { ERROR 1054 (42S22): Unknown column 'email' in 'field list' }",
    "pg-auth": 'db error: FATAL: password authentication failed for user "shop"',
    "pg-database": 'db error: FATAL: database "shopp" does not exist',
    "pg-table": 'db error: ERROR: relation "nope" does not exist',
    "sqlite-file": "timed out waiting for connection: unable to open database file: /x/shop.db",
    "quoting-url": "cannot use mysql://shop:s3cret-pw@db/shop: Connection reset by peer",
    "quoting-other": "cannot use postgresql://app:0ther-pw@db/x: Connection reset by peer",
}


@pytest.mark.parametrize(
    ("case", "kind"),
    [
        ("refused", TransientError),
        ("lost", TransientError),
        ("mysql-auth", ConfigError),
        ("mysql-table", DataError),
        ("mysql-column", DataError),
        ("pg-auth", ConfigError),
        ("pg-database", ConfigError),
        ("pg-table", DataError),
        ("sqlite-file", ConfigError),
        ("quoting-url", TransientError),
        ("quoting-other", TransientError),
    ],
)
def test_connectorx_errors_are_classified(
    monkeypatch: pytest.MonkeyPatch, case: str, kind: type[C360Error]
) -> None:
    import connectorx

    def failing(*args: object, **kwargs: object) -> None:
        raise RuntimeError(CONNECTORX[case])

    monkeypatch.setattr(connectorx, "read_sql", failing)
    with pytest.raises(C360Error) as caught:
        read("mysql://shop:s3cret-pw@db/shop", "customers")
    assert type(caught.value) is kind
    assert "customers" in str(caught.value)
    assert "s3cret-pw" not in str(caught.value) and "0ther-pw" not in str(caught.value)
    if kind is not TransientError:
        assert "sources.mysql.url" in str(caught.value)


class _PsycopgLike(Exception):
    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (OperationalError("q", {}, pymysql.err.OperationalError(2003, "Can't connect")), "t"),
        (OperationalError("q", {}, pymysql.err.OperationalError(2013, "Lost connection")), "t"),
        (OperationalError("q", {}, pymysql.err.OperationalError(1213, "Deadlock found")), "t"),
        (OperationalError("q", {}, pymysql.err.OperationalError(1045, "Access denied")), "c"),
        (OperationalError("q", {}, pymysql.err.OperationalError(1049, "Unknown database")), "c"),
        (ProgrammingError("q", {}, pymysql.err.ProgrammingError(1146, "no table")), "d"),
        (ProgrammingError("q", {}, pymysql.err.ProgrammingError(1064, "syntax")), "d"),
        (OperationalError("q", {}, _PsycopgLike("server closed the connection", "08006")), "t"),
        (OperationalError("q", {}, _PsycopgLike("password authentication failed", "28P01")), "c"),
        (ProgrammingError("q", {}, _PsycopgLike('relation "nope" does not exist', "42P01")), "d"),
        (DBAPIError("q", {}, _PsycopgLike("canceling statement: conflict", "40001")), "t"),
    ],
)
def test_sqlalchemy_errors_are_classified_by_number_sqlstate_and_class(
    error: Exception, kind: str
) -> None:
    classified = mysql.classify(error, "reading", "orders", "mysql+pymysql://u:pw@db/shop")
    expected = {"t": TransientError, "c": ConfigError, "d": DataError}[kind]
    assert type(classified) is expected
    assert "orders" in str(classified)
    assert isinstance(classified, TerminalError) == (kind != "t")


def test_what_is_not_a_driver_error_is_left_alone() -> None:
    assert mysql.classify(ValueError("a bug"), "reading", "orders", "sqlite://") is None
    assert mysql.classify(TransientError("already"), "reading", "orders", "sqlite://") is None
