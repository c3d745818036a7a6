"""Fixtures shared by the integration tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tiny_world import build

from c360.config import Settings


@pytest.fixture
def tiny_world(tmp_path: Path) -> Settings:
    """Settings pointing at a freshly built hand-made world (see tiny_world.py)."""
    return build(tmp_path)


def _unavailable(config: pytest.Config, reason: str) -> None:
    """``unavailable`` of tests/conftest.py: skip on a laptop, fail under CI=true."""
    root = (Path(__file__).parents[1] / "conftest.py").resolve()
    for plugin in config.pluginmanager.get_plugins():
        if Path(getattr(plugin, "__file__", "") or ".").resolve() == root:
            plugin.unavailable(reason)
    raise AssertionError(f"tests/conftest.py is not loaded; cannot report: {reason}")


@pytest.fixture(scope="session")
def spark(request: pytest.FixtureRequest) -> Iterator[Any]:
    """One local SparkSession for the whole run: the JVM starts once.

    Built with the settings the engine itself uses (``session_settings``); engines opened while
    it runs work in child sessions of it and leave it running.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        _unavailable(request.config, "pyspark is not installed: pip install 'c360[spark]'")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        _unavailable(request.config, "Spark needs Java 17+: no java on PATH and no JAVA_HOME")
    from c360.config import ComputeSettings
    from c360.engines.spark import session_settings

    builder = SparkSession.builder
    for key, value in session_settings(ComputeSettings()).items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # the JVM did not start (JAVA_GATEWAY_EXITED, …)
        _unavailable(request.config, f"Spark could not start: {exc}")
    yield session
    session.stop()
