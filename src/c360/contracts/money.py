"""What a plausible amount of money is, defined once for every layer.

An amount (an order total, a unit price) is plausible when it is a finite number from 0 to
:data:`MAX_AMOUNT` inclusive. Anything else is refused where it enters, with a reason naming the
field, and is never summed into spend: the collector answers 400, the speed layer dead-letters the
event (:func:`c360.contracts.segment.money_problem`), and the batch ingest quarantines the row
(:mod:`c360.ingest.conform`).

Why this ceiling: 10^9 units of any currency is beyond any real order of a shop selling to people,
even in currencies with a small unit (a billion rupiah is some 60,000 USD), and it keeps a sum of
a customer's orders exact to the cent in a float64 and inside the orders database's
``DECIMAL(12, 2)``. A total of ``1e300`` or ``1e308`` — a bug or an attack — would otherwise make
every spend feature that adds it meaningless (or overflow a ``NUMERIC`` column).
"""

from __future__ import annotations

import math

MAX_AMOUNT = 1_000_000_000
AMOUNT_RULE = f"an amount from 0 to {MAX_AMOUNT:,} (a number or a numeric string)"


def plausible_amount(value: object) -> bool:
    """Whether a JSON value is a plausible amount: a number, or a numeric string, in range.

    Booleans, other types and strings that are not numbers are not amounts. Integers are compared
    as integers (one beyond a float's range is no error, just too large). The speed layer's fast
    path calls this for every money field, so JSON's own types are tested first.
    """
    kind = type(value)
    if kind is float or kind is int:  # not bool: type() is exact
        return 0 <= value <= MAX_AMOUNT  # type: ignore[operator]  # NaN compares false
    if kind is str:
        try:
            number = float(value)  # type: ignore[arg-type]
        except ValueError:
            return False
        return math.isfinite(number) and 0.0 <= number <= MAX_AMOUNT
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return 0 <= value <= MAX_AMOUNT  # subclasses of int or float
