"""Conform batches read from a source to the lake schema; rows that cannot be go to quarantine.

Every writer into the raw zone passes through :func:`conform`: values are cast to the table's
schema (decimals exact, integers int64, timestamps UTC) and each row is checked against the
table's rules. A row failing a rule or a cast is kept, with the reason, for the quarantine
partition — never dropped silently, never allowed to fail the whole table. A number too large
for its decimal column (SQLite keeps ``1e300`` in a ``DECIMAL(12, 2)``) is such a row; a value
that is no number at all is a schema problem and fails the table (:class:`DataError`).
Amounts are checked against the one definition of a plausible amount
(:mod:`c360.contracts.money`): :func:`negative` and :func:`above_ceiling`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from c360.contracts.lake import QUARANTINE_SCHEMA
from c360.contracts.money import MAX_AMOUNT
from c360.contracts.times import naive_utc
from c360.errors import DataError

# A rule: a reason and a predicate returning a boolean mask of the rows that break it.
Rule = tuple[str, Callable[[pa.RecordBatch], pa.Array]]


@dataclass
class Conformed:
    batch: pa.RecordBatch
    rejected: list[dict[str, str]] = field(default_factory=list)


def negative(column: str) -> Rule:
    return (f"negative {column}", lambda b: pc.fill_null(pc.less(b.column(column), 0), False))


def above_ceiling(column: str, ceiling: float = MAX_AMOUNT) -> Rule:
    """An amount above the plausible ceiling (:data:`~c360.contracts.money.MAX_AMOUNT`)."""
    return (
        f"{column} above {ceiling:,}",
        lambda b: pc.fill_null(pc.greater(b.column(column), ceiling), False),
    )


def _parse_timestamp(value: object) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value
    try:
        parsed = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return naive_utc(parsed)


def _cast_column(column: pa.Array, target: pa.DataType, name: str) -> pa.Array:
    if pa.types.is_timestamp(target):
        naive = pa.timestamp("us")
        try:
            column = column.cast(naive)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            column = pa.array([_parse_timestamp(v) for v in column.to_pylist()], naive)
        return column.cast(target)  # naive values are UTC by contract
    try:
        return column.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        if pa.types.is_decimal(target):
            fitted = _fit_decimal(column, target)
            if fitted is not None:
                return fitted
        raise DataError(
            f"column {name!r}: cannot convert {column.type} to {target}: {exc}"
        ) from exc


def _fit_decimal(column: pa.Array, target: pa.Decimal128Type) -> pa.Array | None:
    """``column`` cast to ``target`` with the numbers too large for it made null (the caller
    quarantines them), or None when something else stops the cast (not a number, too many
    decimals)."""
    try:
        numbers = column.cast(pa.float64())
        limit = 10.0 ** (target.precision - target.scale)
        fits = pc.and_(pc.is_finite(numbers), pc.less(pc.abs(numbers), limit))
        return pc.if_else(fits, column, pa.scalar(None, column.type)).cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _record(raw: pa.RecordBatch, row: int) -> str:
    values = {name: raw.column(name)[row].as_py() for name in raw.schema.names}
    return orjson.dumps(values, default=str).decode()


def conform(
    raw: pa.RecordBatch,
    schema: pa.Schema,
    primary_key: Sequence[str] = (),
    rules: Sequence[Rule] = (),
) -> Conformed:
    """Cast ``raw`` to ``schema`` and split off the rows that break a rule."""
    columns = {
        name: _cast_column(raw.column(name), schema.field(name).type, name) for name in schema.names
    }
    typed = pa.RecordBatch.from_arrays(list(columns.values()), schema=schema)
    failures: list[tuple[str, pa.Array]] = [
        (f"missing primary key {key}", pc.is_null(typed.column(key))) for key in primary_key
    ]
    for name in schema.names:
        target = schema.field(name).type
        if pa.types.is_timestamp(target) or pa.types.is_decimal(target):
            lost = pc.and_(pc.is_valid(raw.column(name)), pc.is_null(columns[name]))
            reason = (
                f"unparseable timestamp in {name}"
                if pa.types.is_timestamp(target)
                else f"{name} out of range for {target}"
            )
            failures.append((reason, lost))
    failures.extend((reason, predicate(typed)) for reason, predicate in rules)
    reasons: list[list[str]] = [[] for _ in range(typed.num_rows)]
    for reason, mask in failures:
        for row in pc.indices_nonzero(mask).to_pylist():
            reasons[row].append(reason)
    bad = [row for row, why in enumerate(reasons) if why]
    if not bad:
        return Conformed(typed)
    keep = pa.array([not why for why in reasons])
    rejected = [{"reason": "; ".join(reasons[row]), "record": _record(raw, row)} for row in bad]
    return Conformed(typed.filter(keep), rejected)


def quarantine_table(rejected: Sequence[Mapping[str, str]]) -> pa.Table:
    return pa.Table.from_pylist(list(rejected), schema=QUARANTINE_SCHEMA)
