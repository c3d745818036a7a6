"""Vectorised text building: numbers, timestamps, ids and JSON lines for whole arrays at once.

Writing tens of millions of JSON lines one dict at a time costs ~10 us a line in Python; these
helpers build fixed-width fields with numpy byte matrices and splice variable-width parts with
Arrow's string kernels (C++), about ten times faster. Callers only splice values that need no JSON
escaping (see :mod:`c360.simulator.vocab`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

Fixed = npt.NDArray[np.bytes_]
Matrix = npt.NDArray[np.uint8]
Ints = npt.NDArray[np.int64]

# First octets of public IPv4 ranges common in Europe, so simulated addresses look plausible.
_IP_FIRST = np.asarray(
    [31, 37, 46, 62, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95,
     109, 176, 178, 185, 188, 193, 194, 195, 212, 213, 217]
)  # fmt: skip
_OCTETS = tuple(str(i) for i in range(256))
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_UUID_GROUPS = ((0, 8), (9, 13), (14, 18), (19, 23), (24, 36))


def digits(values: npt.ArrayLike, width: int) -> Matrix:
    """(n, width) ASCII digits of non-negative integers, zero-padded (values must fit)."""
    v = np.asarray(values, dtype=np.int64)
    out = np.empty((v.shape[0], width), dtype=np.uint8)
    for k in range(width):
        out[:, width - 1 - k] = 48 + (v // 10**k) % 10
    return out


def fixed(matrix: Matrix) -> Fixed:
    """A (n, w) byte matrix as n fixed-width byte strings (a copy-free view when contiguous)."""
    matrix = np.ascontiguousarray(matrix)
    return matrix.view(f"S{matrix.shape[1]}").ravel()


def civil_from_days(days: npt.ArrayLike) -> tuple[Ints, Ints, Ints]:
    """Year, month, day of days since 1970-01-01 (Hinnant's algorithm, proleptic Gregorian)."""
    z = np.asarray(days, dtype=np.int64) + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    return year, month, day


def _date_matrix(days: npt.ArrayLike) -> Matrix:
    year, month, day = civil_from_days(days)
    out = np.empty((year.shape[0], 10), dtype=np.uint8)
    out[:, 0:4] = digits(year, 4)
    out[:, 4] = ord("-")
    out[:, 5:7] = digits(month, 2)
    out[:, 7] = ord("-")
    out[:, 8:10] = digits(day, 2)
    return out


def dates(days: npt.ArrayLike) -> Fixed:
    """``YYYY-MM-DD`` for days since the epoch."""
    return fixed(_date_matrix(days))


def timestamps(
    millis: npt.ArrayLike, *, sep: str = "T", fraction: int = 3, suffix: str = "Z"
) -> Fixed:
    """ISO-8601 stamps of epoch milliseconds: ``YYYY-MM-DD{sep}HH:MM:SS[.fff...]{suffix}``.

    ``fraction`` is the number of fractional digits (0 drops the dot; 6 gives microseconds, the
    last three of which are zero).
    """
    ms = np.asarray(millis, dtype=np.int64)
    days = ms // 86_400_000
    in_day = ms - days * 86_400_000
    secs = in_day // 1000
    width = 19 + (fraction + 1 if fraction else 0) + len(suffix)
    out = np.empty((ms.shape[0], width), dtype=np.uint8)
    out[:, 0:10] = _date_matrix(days)
    out[:, 10] = ord(sep)
    out[:, 11:13] = digits(secs // 3600, 2)
    out[:, 13] = ord(":")
    out[:, 14:16] = digits((secs // 60) % 60, 2)
    out[:, 16] = ord(":")
    out[:, 17:19] = digits(secs % 60, 2)
    pos = 19
    if fraction:
        out[:, pos] = ord(".")
        out[:, pos + 1 : pos + 4] = digits(in_day % 1000, 3)
        out[:, pos + 4 : pos + 1 + fraction] = ord("0")
        pos += fraction + 1
    for i, char in enumerate(suffix.encode()):
        out[:, pos + i] = char
    return fixed(out)


def _hex_matrix(raw: Matrix) -> Matrix:
    n, width = raw.shape
    out = np.empty((n, width * 2), dtype=np.uint8)
    out[:, 0::2] = _HEX[raw >> 4]
    out[:, 1::2] = _HEX[raw & 15]
    return out


def uuids_from_bytes(raw: Matrix) -> Fixed:
    """RFC 4122 version-4 style UUID strings from (n, 16) random bytes."""
    raw = raw.copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hexed = _hex_matrix(raw)
    out = np.full((raw.shape[0], 36), ord("-"), dtype=np.uint8)
    start = 0
    for lo, hi in _UUID_GROUPS:
        out[:, lo:hi] = hexed[:, start : start + hi - lo]
        start += hi - lo
    return fixed(out)


def uuids(rng: np.random.Generator, n: int) -> Fixed:
    """``n`` UUID strings drawn from ``rng`` (deterministic, unlike ``uuid4``)."""
    raw = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16)
    return uuids_from_bytes(raw)


def uuids_from_hashes(high: npt.ArrayLike, low: npt.ArrayLike) -> Fixed:
    """UUID strings whose 128 bits are two 64-bit hashes."""
    pair = np.stack([np.asarray(high, np.uint64), np.asarray(low, np.uint64)], axis=1)
    return uuids_from_bytes(np.ascontiguousarray(pair).view(np.uint8).reshape(-1, 16))


def hex_from_hashes(hashes: npt.ArrayLike, chars: int) -> Fixed:
    """The first ``chars`` hex digits (<= 16) of 64-bit hashes."""
    raw = np.asarray(hashes, np.uint64).reshape(-1, 1).view(np.uint8).reshape(-1, 8)
    return fixed(_hex_matrix(raw)[:, :chars])


def to_str(values: Fixed) -> list[str]:
    """Fixed-width byte strings as Python ``str`` (for DB rows and small payloads)."""
    return values.astype(f"U{values.dtype.itemsize}").tolist()  # type: ignore[no-any-return]


# --- Arrow side -----------------------------------------------------------------------------


def arrow(values: Fixed) -> Any:
    """Fixed-width byte strings as an Arrow string array, without a per-value copy."""
    n, width = values.shape[0], values.dtype.itemsize
    offsets = np.arange(n + 1, dtype=np.int32) * np.int32(width)
    data = np.ascontiguousarray(values).tobytes()
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data))


def ints(values: npt.ArrayLike) -> Any:
    """Decimal strings of integers."""
    return pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.string())


def money(cents: npt.ArrayLike) -> Any:
    """``12.34`` for 1234 cents (non-negative)."""
    c = np.asarray(cents, dtype=np.int64)
    return join(ints(c // 100), ".", arrow(fixed(digits(c % 100, 2))))


def words(table: Sequence[str], index: npt.ArrayLike) -> Any:
    """``table[index]`` for every index, as an Arrow string array."""
    return pa.array(table, type=pa.string()).take(pa.array(np.asarray(index, dtype=np.int64)))


@functools.lru_cache(maxsize=4096)
def literal(value: str) -> Any:
    """A cached Arrow string scalar.

    Passing a bare ``str`` to a compute kernel makes pyarrow try (and fail, uncached) to import
    an optional package on every call, which costs ~0.1 ms; scalars skip that.
    """
    return pa.scalar(value, pa.string())


def _part(part: Any) -> Any:
    return literal(part) if isinstance(part, str) else part


def join(*parts: Any) -> Any:
    """Element-wise concatenation; ``str`` parts are broadcast literals."""
    return pc.binary_join_element_wise(*(_part(p) for p in parts), literal(""))


def pick(mask: npt.ArrayLike, when_true: Any, when_false: Any) -> Any:
    chosen = pa.array(np.asarray(mask, dtype=bool))
    return pc.if_else(chosen, _part(when_true), _part(when_false))


def scatter(groups: Sequence[tuple[npt.NDArray[np.int64], Any]], n: int) -> Any:
    """One array of length ``n`` from parts computed for disjoint index groups covering 0..n-1."""
    positions = np.concatenate([idx for idx, _ in groups]) if groups else np.empty(0, np.int64)
    if positions.shape[0] != n:
        raise ValueError(f"groups cover {positions.shape[0]} of {n} positions")
    values = pa.concat_arrays([part for _, part in groups]) if groups else pa.array([], pa.string())
    order = np.empty(n, dtype=np.int64)
    order[positions] = np.arange(n, dtype=np.int64)
    return values.take(pa.array(order))


def group_join(values: Any, counts: npt.ArrayLike, sep: str) -> Any:
    """Join consecutive runs of ``values`` (run lengths ``counts``) with ``sep``."""
    offsets = np.zeros(np.asarray(counts).shape[0] + 1, dtype=np.int32)
    np.cumsum(np.asarray(counts, dtype=np.int32), out=offsets[1:])
    lists = pa.ListArray.from_arrays(pa.array(offsets), values)
    return pc.binary_join(lists, literal(sep))


def take(values: Any, index: npt.ArrayLike) -> Any:
    return values.take(pa.array(np.asarray(index, dtype=np.int64)))


def concatenated(values: Any) -> memoryview:
    """The bytes of all strings of an Arrow string array, back to back (no copy)."""
    if len(values) == 0:
        return memoryview(b"")
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)[values.offset :]
    start, stop = int(offsets[0]), int(offsets[len(values)])
    return memoryview(values.buffers()[2])[start:stop]


def ipv4(hashes: npt.ArrayLike) -> Any:
    """A plausible public IPv4 address per 64-bit hash, as an Arrow string array."""
    raw = np.asarray(hashes, dtype=np.uint64).reshape(-1, 1).view(np.uint8).reshape(-1, 8)
    octets = raw[:, :4].astype(np.int64)
    first = _IP_FIRST[octets[:, 0] % _IP_FIRST.shape[0]]
    last = 1 + octets[:, 3] % 254
    return join(
        words(_OCTETS, first), ".", words(_OCTETS, octets[:, 1]), ".",
        words(_OCTETS, octets[:, 2]), ".", words(_OCTETS, last),
    )  # fmt: skip
