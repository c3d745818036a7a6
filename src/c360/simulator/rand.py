"""Seeded randomness: one independent numpy stream per purpose (and day), plus a stable hash.

Streams are keyed, not consumed in sequence, so adding a draw to one part of the simulation does
not shift the numbers of another part. Nothing here uses Python's ``hash()`` (salted per process).
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
_MASK64 = (1 << 64) - 1


class Stream(IntEnum):
    """The purposes that get their own random stream."""

    PEOPLE = 1
    CATALOG = 2
    VISITS = 3
    CARTS = 4
    EVENTS = 5
    IDS = 6
    SUPPORT = 7
    EMAIL = 8
    ORDERS = 9
    HOUSEHOLDS = 10


def stream(seed: int, purpose: Stream, *keys: int) -> np.random.Generator:
    """The random generator for ``purpose`` (and e.g. the day index) under ``seed``."""
    return np.random.default_rng([seed & _MASK64, int(purpose), *keys])


def mix64(values: npt.ArrayLike) -> U64:
    """SplitMix64 finaliser: a fast, well-spread, platform-independent 64-bit hash."""
    z = np.asarray(values).astype(np.uint64)
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def keyed_hash(seed: int, salt: int, *columns: npt.ArrayLike) -> U64:
    """A 64-bit hash of ``columns`` (element-wise) under ``seed`` and a per-use ``salt``."""
    h = mix64(np.asarray([((seed & _MASK64) ^ (salt * 0x9E3779B1)) & _MASK64], dtype=np.uint64))
    for column in columns:
        h = mix64(h ^ mix64(np.asarray(column).astype(np.int64).astype(np.uint64)))
    return h
