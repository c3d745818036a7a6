"""Fixtures shared by the integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_world import build

from c360.config import Settings


@pytest.fixture
def tiny_world(tmp_path: Path) -> Settings:
    """Settings pointing at a freshly built hand-made world (see tiny_world.py)."""
    return build(tmp_path)
