"""Extract the orders database (any SQLAlchemy URL) into Arrow record batches, streamed."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from sqlalchemy import Engine, Table, create_engine, select
from sqlalchemy.exc import OperationalError

from c360.errors import TransientError
from c360.sources.arrow_types import arrow_schema

CHUNK_ROWS = 50_000


def connect(url: str) -> Engine:
    return create_engine(url)


def extract_table(
    engine: Engine, table: Table, chunk_rows: int = CHUNK_ROWS
) -> Iterator[pa.RecordBatch]:
    """Stream a whole table as record batches (server-side cursor; never all in memory)."""
    schema = arrow_schema(table)
    query = select(table).order_by(*table.primary_key.columns)
    try:
        with engine.connect().execution_options(stream_results=True) as conn:
            result = conn.execute(query)
            while rows := result.fetchmany(chunk_rows):
                columns = list(zip(*rows, strict=True))
                # Naive DATETIMEs from the database are UTC by contract.
                arrays = [
                    pa.array(values, _naive(field.type)).cast(field.type)
                    for values, field in zip(columns, schema, strict=True)
                ]
                yield pa.RecordBatch.from_arrays(arrays, schema=schema)
    except OperationalError as exc:
        raise TransientError(
            f"orders DB unreachable while reading {table.name}: {exc.orig}"
        ) from exc


def _naive(arrow_type: pa.DataType) -> pa.DataType:
    return pa.timestamp("us") if pa.types.is_timestamp(arrow_type) else arrow_type
