"""Per-key rate limits: a token bucket per API key, in memory (no I/O).

A key limited to ``r`` requests per second has a bucket of ``max(1, r)`` tokens (one second's
worth: a client may burst that much after being idle) that refills at ``r`` tokens per second;
each request takes one token, and a request finding less than one is refused with the time
until the next token, rounded up to whole seconds for ``Retry-After``. ``r`` is the key's own
limit (``api_key.rate_limit_per_s``), else the configured default (``api.rate_limit_per_s``);
0 means no limit.

Buckets live in the memory of one server process: with ``N`` processes behind one port a key
gets up to ``N`` times its rate (the limit protects each process's share of the store). Time
comes from a monotonic clock passed in, so tests need no sleeping.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from c360.access.keys import ApiKey

BURST_SECONDS = 1.0


@dataclass
class TokenBucket:
    rate: float  # tokens per second, > 0
    capacity: float
    tokens: float
    updated: float  # the clock's seconds at the last take

    @classmethod
    def full(cls, rate: float, now: float) -> TokenBucket:
        capacity = max(1.0, rate * BURST_SECONDS)
        return cls(rate=rate, capacity=capacity, tokens=capacity, updated=now)

    def take(self, now: float) -> float:
        """Take a token: 0.0 when granted, else the seconds until one will be there."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


def retry_after(wait: float) -> int:
    """``Retry-After`` for a wait: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(wait))


class RateLimiter:
    """The buckets of one process, one per key id; thread-safe (one short lock per request)."""

    def __init__(self, default_rate: float) -> None:
        self.default_rate = default_rate
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def rate_of(self, key: ApiKey) -> float:
        """Requests per second allowed to ``key``; 0 = no limit."""
        return self.default_rate if key.rate_limit_per_s is None else key.rate_limit_per_s

    def take(self, key: ApiKey, now: float) -> float:
        """0.0 if ``key`` may make a request now, else the seconds to wait."""
        rate = self.rate_of(key)
        if rate <= 0:
            return 0.0
        with self._lock:
            bucket = self._buckets.get(key.key_id)
            if bucket is None or bucket.rate != rate:  # new, or its limit changed
                bucket = self._buckets[key.key_id] = TokenBucket.full(rate, now)
            return bucket.take(now)

    def keep_only(self, key_ids: Iterable[str]) -> None:
        """Drop the buckets of keys that are gone or revoked."""
        keep = set(key_ids)
        with self._lock:
            for key_id in [k for k in self._buckets if k not in keep]:
                del self._buckets[key_id]
