"""Which result columns of the serving reads hold dates, times and booleans, by name.

SQLite returns those as text and 0/1, and so does JSON (PostgreSQL's one-statement profile read
answers in JSON); the hot reads (:mod:`.profiles`) convert them by column name
(:data:`FROM_TEXT`), so the names below are the serving tables' typed columns, the feature
catalogue's, and the few computed in the reads' SQL. A name means the same kind wherever it
appears.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, Literal

import pyarrow as pa
from sqlalchemy import Boolean, Date, DateTime

from c360.batch.catalogue import CATALOGUE
from c360.contracts import serving

Kind = Literal["datetime", "date", "bool"]

# Computed by the reads' SQL (stores/views.py): times of the newest or oldest row.
_COMPUTED_TIMES = (
    "current_session_start",
    "first_order_at",
    "last_order_at",
    "last_support_event_at",
)


def _catalogue_kind(arrow_type: pa.DataType) -> Kind | None:
    if pa.types.is_timestamp(arrow_type):
        return "datetime"
    if pa.types.is_date(arrow_type):
        return "date"
    if pa.types.is_boolean(arrow_type):
        return "bool"
    return None


def _table_kind(column_type: object) -> Kind | None:
    if isinstance(column_type, DateTime):
        return "datetime"
    if isinstance(column_type, Date):
        return "date"
    if isinstance(column_type, Boolean):
        return "bool"
    return None


def kinds_of_columns(kind: Kind) -> frozenset[str]:
    """The column names that hold values of ``kind``."""
    names = {f.name for f in CATALOGUE if _catalogue_kind(f.type) == kind}
    for table in serving.metadata.sorted_tables:
        names |= {c.name for c in table.columns if _table_kind(c.type) == kind}
    if kind == "datetime":
        names |= set(_COMPUTED_TIMES)
    return frozenset(names)


# Each typed column's value from its text (ISO dates and times) or 0/1 / JSON boolean.
FROM_TEXT: dict[str, Callable[[Any], Any]] = {
    **dict.fromkeys(kinds_of_columns("datetime"), dt.datetime.fromisoformat),
    **dict.fromkeys(kinds_of_columns("date"), dt.date.fromisoformat),
    **dict.fromkeys(kinds_of_columns("bool"), bool),
}
