"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tiny_world import build

from c360.config import Settings
from plugins.services import service_fixture


@pytest.fixture
def tiny_world(tmp_path: Path) -> Settings:
    """Settings pointing at a freshly built hand-made world (see tiny_world.py)."""
    return build(tmp_path)


@service_fixture("spark", scope="session")
def spark() -> Iterator[Any]:
    """One local SparkSession for the whole run: the JVM starts once.

    Built with the settings the engine itself uses (``session_settings``); engines opened while
    it runs work in child sessions of it and leave it running. PySpark and Java were checked
    before the first ``spark`` test was set up: a failure to start is an error.
    """
    from pyspark.sql import SparkSession

    from c360.config import ComputeSettings
    from c360.engines.spark import session_settings

    builder = SparkSession.builder
    for key, value in session_settings(ComputeSettings()).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    yield session
    session.stop()
