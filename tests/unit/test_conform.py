"""Conforming source batches: exact casts, and every bad row kept with its reason."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import orjson
import pyarrow as pa
import pytest

from c360.errors import DataError
from c360.ingest.conform import above_ceiling, conform, negative

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("amount", pa.decimal128(12, 2)),
        ("quantity", pa.int64()),
        ("at", pa.timestamp("us", tz="UTC")),
    ]
)


def raw(rows: list[dict[str, object]]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(
        rows,
        schema=pa.schema(
            [
                ("id", pa.int32()),
                ("amount", pa.string()),
                ("quantity", pa.int32()),
                ("at", pa.string()),
            ]
        ),
    )


def test_good_rows_are_cast_exactly() -> None:
    result = conform(
        raw([{"id": 1, "amount": "19.99", "quantity": 2, "at": "2025-01-01 10:00:00.5"}]),
        SCHEMA,
        ["id"],
    )
    assert result.rejected == []
    row = result.batch.to_pylist()[0]
    assert row["amount"] == Decimal("19.99")
    assert row["at"] == dt.datetime(2025, 1, 1, 10, 0, 0, 500000, tzinfo=dt.UTC)


def test_each_bad_row_is_rejected_with_all_its_reasons() -> None:
    batch = raw(
        [
            {"id": 1, "amount": "1.00", "quantity": 1, "at": "2025-01-01 10:00:00"},
            {"id": None, "amount": "1.00", "quantity": -1, "at": "2025-01-01 10:00:00"},
            {"id": 3, "amount": "1.00", "quantity": 1, "at": "31/02/2025"},
            {"id": 4, "amount": "1.00", "quantity": 1, "at": None},
        ]
    )
    result = conform(batch, SCHEMA, ["id"], [negative("quantity")])
    assert result.batch.column("id").to_pylist() == [1, 4]  # a null timestamp is no parse error
    reasons = [r["reason"] for r in result.rejected]
    assert reasons == ["missing primary key id; negative quantity", "unparseable timestamp in at"]
    assert orjson.loads(result.rejected[1]["record"])["at"] == "31/02/2025"


def test_an_impossible_cast_names_the_column() -> None:
    batch = raw([{"id": 1, "amount": "lots", "quantity": 1, "at": None}])
    with pytest.raises(DataError, match="column 'amount'"):
        conform(batch, SCHEMA)


def test_amounts_beyond_the_decimal_or_the_ceiling_are_quarantined_not_fatal() -> None:
    """SQLite keeps any number in a DECIMAL(12, 2) column: one too large for the lake's decimal
    is a bad row, as is one above the plausible ceiling (c360.contracts.money)."""
    batch = raw(
        [
            {"id": 1, "amount": "19.99", "quantity": 1, "at": None},
            {"id": 2, "amount": "1e+300", "quantity": 1, "at": None},
            {"id": 3, "amount": "1000000000.01", "quantity": 1, "at": None},
            {"id": 4, "amount": "1000000000.00", "quantity": 1, "at": None},
            {"id": 5, "amount": "-5.00", "quantity": 1, "at": None},
            {"id": 6, "amount": "inf", "quantity": 1, "at": None},
        ]
    )
    result = conform(batch, SCHEMA, ["id"], [negative("amount"), above_ceiling("amount")])
    assert result.batch.column("id").to_pylist() == [1, 4]
    assert [r["reason"] for r in result.rejected] == [
        "amount out of range for decimal128(12, 2)",
        "amount above 1,000,000,000",
        "negative amount",
        "amount out of range for decimal128(12, 2)",
    ]
    assert orjson.loads(result.rejected[0]["record"])["amount"] == "1e+300"
