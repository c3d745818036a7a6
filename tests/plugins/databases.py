"""Fixtures for the ``postgres`` and ``mysql`` tests: a fresh database per test on the server,
and ``store``, a migrated serving store on every backend (the serving-store conformance suite's
parametrisation).

The server is the one at ``C360_TEST_POSTGRES_URL`` / ``C360_TEST_MYSQL_URL``; the
``services`` plugin has checked that it answers before a test using these fixtures is set up.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from c360.stores import ServingStore, open_store
from plugins.services import mysql_server_url, postgres_server_url, service_fixture


def _admin_engine(url: str):  # type: ignore[no-untyped-def]
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    # pre-ping: a test may restart the server (the stream worker's outage test)
    return create_engine(parsed, isolation_level="AUTOCOMMIT", pool_pre_ping=True)


def _fresh_database(url: str, quote: str) -> Iterator[str]:
    """A database created for one test on the server of ``url``, dropped afterwards.

    The plugin has checked that the server answers before the test is set up: a failure here
    is an error, not a reason to skip.
    """
    admin = _admin_engine(url)
    name = f"c360_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {quote}{name}{quote}"))
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
        force = " WITH (FORCE)" if quote == '"' else ""
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {quote}{name}{quote}{force}"))
    finally:
        admin.dispose()


@service_fixture("postgres")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    yield from _fresh_database(postgres_server_url(), '"')


@service_fixture("mysql")
def mysql_url() -> Iterator[str]:
    """A fresh MariaDB/MySQL database for one test, dropped afterwards."""
    yield from _fresh_database(mysql_server_url(), "`")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServingStore]:
    """A migrated serving store, once on SQLite and once on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'serving.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    opened = open_store(url)
    opened.migrate()
    yield opened
    opened.dispose()
