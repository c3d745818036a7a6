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


def test_committed_bi_docs_are_generated_from_the_bi_tables() -> None:
    from c360.batch import gold

    committed = (ROOT / "docs" / "bi_tables.md").read_text()
    assert committed == gold.markdown(), "regenerate: c360 features --bi-tables > docs/bi_tables.md"


def test_api_schema_documents_every_feature(tmp_path: Path) -> None:
    from c360.api.app import create_app
    from c360.config import load_config

    settings = load_config(environ={"C360_SERVING_URL": f"sqlite:///{tmp_path / 's.db'}"}).settings
    schemas = create_app(settings).openapi()["components"]["schemas"]
    for name in ("BatchFeatures", "UnifiedFeatures"):
        documented = schemas[name]["properties"]
        for feature in catalogue.CATALOGUE[1:]:
            assert feature.description in documented[feature.name]["description"]
