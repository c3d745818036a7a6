"""The feature catalogue is the one source of the docs."""

from __future__ import annotations

from pathlib import Path

from c360.batch import catalogue

ROOT = Path(__file__).resolve().parents[2]


def test_names_are_unique_and_documented() -> None:
    names = [f.name for f in catalogue.CATALOGUE]
    assert len(names) == len(set(names))
    assert all(f.description.endswith(".") and f.source for f in catalogue.CATALOGUE)


def test_committed_docs_are_generated_from_the_catalogue() -> None:
    committed = (ROOT / "docs" / "features.md").read_text()
    assert committed == catalogue.markdown(), "regenerate: c360 features > docs/features.md"
