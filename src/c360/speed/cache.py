"""The stream worker's in-memory cache of committed per-identifier states.

Why it is safe to serve states from memory is in :mod:`c360.pipeline.stream_worker` ("The state
cache"); this module only keeps them, bounded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import islice
from typing import Generic, TypeVar

from c360.speed.features import StateKey

S = TypeVar("S")


class StateCache(Generic[S]):
    """Committed states by identifier, owned by one worker (see the module docstring)."""

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"cache size must be >= 0, got {limit}")
        self.limit = limit
        self._states: dict[StateKey, S] = {}

    def __len__(self) -> int:
        return len(self._states)

    def get(self, key: StateKey) -> S | None:
        return self._states.get(key)

    def missing(self, keys: Iterable[StateKey]) -> list[StateKey]:
        states = self._states
        return [key for key in keys if key not in states]

    def put(self, states: Mapping[StateKey, S]) -> None:
        """Remember committed states; the oldest written go first when over the limit."""
        cached = self._states
        for key, state in states.items():
            cached.pop(key, None)  # re-inserting moves the key to the young end
            cached[key] = state
        excess = len(cached) - self.limit
        if excess > 0:
            excess += self.limit // 10  # evict in chunks, not one per commit
            for key in list(islice(cached, excess)):
                del cached[key]

    def clear(self) -> None:
        self._states.clear()
