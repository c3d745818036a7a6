"""Probabilistic identity links on Spark: the same links, weights and contributions as DuckDB."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from c360.config import ComputeSettings, IdentitySettings
from c360.contracts import identity as contract
from c360.engines import open_compute
from c360.identity.probabilistic import link_run

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def synthetic_records(persons: int) -> pa.Table:
    path = Path(__file__).parents[2] / "bench" / "bench_febrl.py"
    spec = importlib.util.spec_from_file_location("bench_febrl", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    records, _ = bench.synthetic_records(persons, seed=5)
    return records


def test_spark_links_as_duckdb_does(spark: Any) -> None:
    # A guest checkout with a mistyped email among a generated population: at least one link
    # the fuzzy comparisons (Jaro-Winkler, Damerau-Levenshtein from Splink's jar) decide.
    marta = {
        "first_name": "marta",
        "last_name": "kowalczyk",
        "phone": "+4915112345678",
        "address": "12 lindenstrasse",
        "postcode": "10115",
    }
    cases = [
        {
            "record_key": "mysql/customer:900001",
            "customer_id": 900001,
            **marta,
            "email_key": "marta.kowalczyk@example.org",
        },
        {"record_key": "mysql/order:900001", **marta, "email_key": "marta.kowalcyzk@example.org"},
    ]
    records = pa.concat_tables(
        [synthetic_records(250), pa.Table.from_pylist(cases, schema=contract.RECORDS)]
    )
    identity = IdentitySettings()
    on_duckdb = link_run(open_compute(ComputeSettings()), records, identity)
    on_spark = link_run(open_compute(ComputeSettings(engine="spark")), records, identity)

    assert on_spark.links.schema == contract.LINKS
    assert on_spark.comparisons == on_duckdb.comparisons
    assert on_spark.blocking_rules == on_duckdb.blocking_rules
    duckdb_rows = {(r["left_key"], r["right_key"]): r for r in on_duckdb.links.to_pylist()}
    spark_rows = {(r["left_key"], r["right_key"]): r for r in on_spark.links.to_pylist()}
    assert ("mysql/customer:900001", "mysql/order:900001") in duckdb_rows
    assert len(duckdb_rows) > 20
    assert spark_rows.keys() == duckdb_rows.keys()
    for pair, expected in duckdb_rows.items():
        got = spark_rows[pair]
        assert got["match_weight"] == pytest.approx(expected["match_weight"], abs=1e-6), pair
        assert got["match_probability"] == pytest.approx(expected["match_probability"], abs=1e-9)
        spark_parts = json.loads(got["contributions"])
        duckdb_parts = json.loads(expected["contributions"])
        assert spark_parts.keys() == duckdb_parts.keys(), pair
        for name, weight in duckdb_parts.items():
            assert spark_parts[name] == pytest.approx(weight, abs=1e-6), (pair, name)
