"""SQLAlchemy column types to Arrow types: money stays decimal, timestamps are UTC."""

from __future__ import annotations

import pyarrow as pa
from sqlalchemy import Table
from sqlalchemy import types as sqltypes


def arrow_type(column_type: sqltypes.TypeEngine[object]) -> pa.DataType:
    if isinstance(column_type, sqltypes.Numeric) and not isinstance(column_type, sqltypes.Float):
        return pa.decimal128(column_type.precision or 18, column_type.scale or 0)
    if isinstance(column_type, sqltypes.BigInteger | sqltypes.Integer):
        return pa.int64()
    if isinstance(column_type, sqltypes.Float):
        return pa.float64()
    if isinstance(column_type, sqltypes.Boolean):
        return pa.bool_()
    if isinstance(column_type, sqltypes.DateTime):
        return pa.timestamp("us", tz="UTC")
    if isinstance(column_type, sqltypes.Date):
        return pa.date32()
    return pa.string()


def arrow_schema(table: Table) -> pa.Schema:
    return pa.schema(
        [pa.field(c.name, arrow_type(c.type), nullable=c.nullable or False) for c in table.columns]
    )
