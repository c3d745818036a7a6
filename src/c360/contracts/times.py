"""How c360 represents time, in one place.

Every time is UTC. Three forms cross module boundaries:

- *aware UTC* ``datetime``: what decoders produce and what the API answers;
- *naive UTC* ``datetime``: what the serving store's ``DateTime`` columns hold (SQLite keeps no
  zone; PostgreSQL's ``timestamp without time zone``);
- *epoch microseconds* (``int``): what the speed layer's states hold, so its pure updates compare
  and add integers (``recent_event_times`` keeps milliseconds).

A naive value given where an aware one is expected is taken to be UTC already.
"""

from __future__ import annotations

import datetime as dt

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
NAIVE_EPOCH = dt.datetime(1970, 1, 1)
_US = dt.timedelta(microseconds=1)


def utc(value: dt.datetime) -> dt.datetime:
    """``value`` as an aware UTC datetime (a naive one is taken to be UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value if value.tzinfo is dt.UTC else value.astimezone(dt.UTC)


def naive_utc(value: dt.datetime) -> dt.datetime:
    """``value`` as a naive UTC datetime, the serving store's form."""
    if value.tzinfo is None:
        return value
    return value.astimezone(dt.UTC).replace(tzinfo=None)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def naive_utc_now() -> dt.datetime:
    """The clock as the serving store holds it."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def epoch_us(value: dt.datetime) -> int:
    """Microseconds since the Unix epoch (a naive ``value`` is UTC)."""
    if value.tzinfo is None:
        return (value - NAIVE_EPOCH) // _US
    return (value - EPOCH) // _US


def from_epoch_us(us: int) -> dt.datetime:
    """The aware UTC datetime of epoch microseconds (the inverse of :func:`epoch_us`)."""
    return EPOCH + dt.timedelta(microseconds=us)


def naive_from_epoch_us(us: int) -> dt.datetime:
    """The naive UTC datetime of epoch microseconds (the serving store's form)."""
    return NAIVE_EPOCH + dt.timedelta(microseconds=us)


def epoch_ms(value: dt.datetime) -> int:
    """Milliseconds since the Unix epoch (floor; a naive ``value`` is UTC)."""
    return epoch_us(value) // 1000


def from_epoch_ms(ms: int) -> dt.datetime:
    """The aware UTC datetime of epoch milliseconds."""
    return EPOCH + dt.timedelta(milliseconds=ms)
