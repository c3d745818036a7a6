"""API keys of the Profile API: make, parse, hash and check them (no I/O).

**The key** is ``c360_<key_id>_<secret>``: ``key_id`` is 16 hex digits (8 random bytes), public
— it names the key in ``c360 keys list`` and in the store, and lets the server find the key's
record without scanning; ``secret`` is ``secrets.token_urlsafe(32)`` (256 random bits; it may
contain ``_`` and ``-``, so a key is split at its first two ``_`` only). The whole key is shown
once, when it is made; the store keeps only the SHA-256 of the secret (``secret_sha256``).

**Why a fast hash is right here.** Slow password hashes (bcrypt, scrypt, Argon2) exist because
passwords have little entropy: they make each guess of a stolen hash expensive. A 256-bit
random secret cannot be guessed at any speed, so SHA-256 loses nothing — and the check runs on
every request of a hot path, where a slow hash would cost milliseconds each. The stored hash
is compared with :func:`hmac.compare_digest`, in constant time.

**Scopes** (space-separated in the store): ``profiles:read`` (profile reads, the timeline),
``profiles:search`` (search), ``profiles:service`` (a profile's marketing fields of a person
without marketing consent: :mod:`c360.access.consent`), ``segments:write`` (create and delete
segments; reading and previewing them needs ``profiles:read``), ``admin`` (implies every
scope). Segment write keys
are not API keys: the collector keeps its own (``collector.write_keys``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from c360.contracts.times import naive_utc_now
from c360.errors import TerminalError

PREFIX = "c360"
PROFILES_READ = "profiles:read"
PROFILES_SEARCH = "profiles:search"
SEGMENTS_WRITE = "segments:write"
PROFILES_SERVICE = "profiles:service"
ADMIN = "admin"
SCOPES: dict[str, str] = {
    PROFILES_READ: "read profiles (by person id or identifier) and timelines",
    PROFILES_SEARCH: "search profiles",
    SEGMENTS_WRITE: "create and delete segments (reading and previewing them: profiles:read)",
    PROFILES_SERVICE: "service use: a profile's marketing fields even without marketing consent "
    "(customer service; with profiles:read)",
    ADMIN: "everything: implies every other scope",
}

KEY_ID_BYTES = 8
SECRET_BYTES = 32
MAX_NAME_LENGTH = 100  # api_key.name
_MAX_SECRET_LENGTH = 128  # a longer one cannot be ours: not hashed
_KEY_ID = re.compile(rf"[0-9a-f]{{{2 * KEY_ID_BYTES}}}")


class KeySpecError(TerminalError):
    """A key cannot be made as asked (an unknown scope, a bad name or rate limit)."""


@dataclass(frozen=True)
class ApiKey:
    """A key as the store keeps it: everything but the secret, which only its holder has.

    ``rate_limit_per_s``: None = the configured default (``api.rate_limit_per_s``), 0 = no
    limit. Times are naive UTC, as the serving store holds them.
    """

    key_id: str
    scopes: frozenset[str]
    secret_sha256: str
    created_at: dt.datetime
    name: str | None = None
    rate_limit_per_s: float | None = None
    revoked_at: dt.datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, scope: str) -> bool:
        """Whether the key grants ``scope`` (``admin`` grants every scope)."""
        return scope in self.scopes or ADMIN in self.scopes

    def verifies(self, secret: str) -> bool:
        """Whether ``secret`` is this key's, compared in constant time."""
        return hmac.compare_digest(hash_secret(secret), self.secret_sha256)

    def public(self) -> dict[str, object]:
        """What may be shown about the key (``c360 keys list``): never the secret nor its hash."""
        return {
            "key_id": self.key_id,
            "name": self.name,
            "scopes": sorted(self.scopes),
            "rate_limit_per_s": self.rate_limit_per_s,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


@dataclass(frozen=True)
class NewKey:
    """A key just made: ``key`` is the whole key, to show once; ``record`` is what to store."""

    key: str
    record: ApiKey


def checked_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """The given scopes as a set, or :class:`KeySpecError` naming an unknown one and the choices."""
    given = frozenset(scope.strip() for scope in scopes if scope.strip())
    if not given:
        raise KeySpecError(f"a key needs at least one scope; accepted: {', '.join(SCOPES)}")
    unknown = sorted(given - SCOPES.keys())
    if unknown:
        raise KeySpecError(f"unknown scope {unknown[0]!r}; accepted: {', '.join(SCOPES)}")
    return given


def generate(
    scopes: Iterable[str],
    *,
    name: str | None = None,
    rate_limit_per_s: float | None = None,
    now: dt.datetime | None = None,
) -> NewKey:
    """A new random key with ``scopes`` (checked), an optional name and rate limit."""
    granted = checked_scopes(scopes)
    if name is not None and len(name) > MAX_NAME_LENGTH:
        raise KeySpecError(f"a key's name has at most {MAX_NAME_LENGTH} characters")
    if rate_limit_per_s is not None and not (
        math.isfinite(rate_limit_per_s) and rate_limit_per_s >= 0
    ):
        raise KeySpecError("a rate limit is a number of requests per second >= 0 (0 = no limit)")
    key_id = secrets.token_hex(KEY_ID_BYTES)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    record = ApiKey(
        key_id=key_id,
        scopes=granted,
        secret_sha256=hash_secret(secret),
        created_at=now or naive_utc_now(),
        name=name or None,
        rate_limit_per_s=rate_limit_per_s,
    )
    return NewKey(key=f"{PREFIX}_{key_id}_{secret}", record=record)


def parse(key: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a key in our format, else None (then it is no key of ours)."""
    prefix, _, rest = key.strip().partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != PREFIX or not _KEY_ID.fullmatch(key_id):
        return None
    if not secret or len(secret) > _MAX_SECRET_LENGTH:
        return None
    return key_id, secret


def hash_secret(secret: str) -> str:
    """The stored form of a secret: SHA-256, hex (see the module docstring for why)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
