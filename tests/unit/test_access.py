"""API keys and rate limits as pure logic: the key format, hashing, scopes, the token bucket."""

from __future__ import annotations

import hashlib

import pytest

from c360.access.keys import (
    ADMIN,
    PROFILES_READ,
    PROFILES_SEARCH,
    KeySpecError,
    generate,
    hash_secret,
    parse,
)
from c360.access.ratelimit import RateLimiter, TokenBucket, retry_after


def test_a_key_is_prefix_id_and_secret_and_only_the_hash_is_kept() -> None:
    new = generate([PROFILES_READ], name="web")
    prefix, key_id, secret = new.key.split("_", 2)
    assert (prefix, key_id) == ("c360", new.record.key_id)
    assert len(key_id) == 16 and len(secret) >= 43  # 8 and 32 random bytes
    assert parse(new.key) == (key_id, secret)
    assert new.record.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in repr(new.record) and secret not in str(new.record.public())
    assert "secret_sha256" not in new.record.public()
    assert new.record.verifies(secret) and not new.record.verifies(secret + "x")
    assert generate([PROFILES_READ]).key != generate([PROFILES_READ]).key


def test_a_secret_with_underscores_parses() -> None:
    assert parse("c360_0123456789abcdef_a_b-c") == ("0123456789abcdef", "a_b-c")
    assert hash_secret("a_b-c") == hashlib.sha256(b"a_b-c").hexdigest()


@pytest.mark.parametrize(
    "token",
    [
        "",
        "c360",
        "c360_0123456789abcdef",
        "c360_0123456789abcdef_",
        "c361_0123456789abcdef_secret",
        "c360_0123456789ABCDEF_secret",  # ids are lower-case hex
        "c360_0123_secret",
        "c360_0123456789abcdef_" + "x" * 129,  # longer than any secret of ours: not hashed
        "Bearer c360_0123456789abcdef_secret",
    ],
)
def test_what_is_not_a_key_of_ours(token: str) -> None:
    assert parse(token) is None


def test_admin_implies_every_scope() -> None:
    reader = generate([PROFILES_READ]).record
    assert reader.allows(PROFILES_READ) and not reader.allows(PROFILES_SEARCH)
    admin = generate([ADMIN]).record
    assert all(admin.allows(scope) for scope in (PROFILES_READ, PROFILES_SEARCH, ADMIN))


@pytest.mark.parametrize(
    ("scopes", "options", "fragment"),
    [
        (["profiles:write"], {}, "unknown scope 'profiles:write'; accepted: profiles:read"),
        ([], {}, "at least one scope"),
        ([PROFILES_READ], {"name": "x" * 101}, "at most 100 characters"),
        ([PROFILES_READ], {"rate_limit_per_s": -1.0}, ">= 0 (0 = no limit)"),
        ([PROFILES_READ], {"rate_limit_per_s": float("nan")}, ">= 0"),
    ],
)
def test_a_key_cannot_be_made_with(
    scopes: list[str], options: dict[str, object], fragment: str
) -> None:
    with pytest.raises(KeySpecError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        generate(scopes, **options)  # type: ignore[arg-type]


def test_a_bucket_grants_its_burst_then_refills_at_its_rate() -> None:
    bucket = TokenBucket.full(rate=2.0, now=100.0)  # 2 tokens, 2 per second
    assert bucket.take(100.0) == 0.0 and bucket.take(100.0) == 0.0
    assert bucket.take(100.0) == pytest.approx(0.5)  # the next token in half a second
    assert bucket.take(100.25) == pytest.approx(0.25)  # refused requests take nothing
    assert bucket.take(100.5) == 0.0
    assert bucket.take(110.0) == 0.0 and bucket.tokens == pytest.approx(1.0)  # capped at 2


def test_a_slow_rate_has_a_bucket_of_one_and_whole_second_retry_afters() -> None:
    bucket = TokenBucket.full(rate=0.1, now=0.0)
    assert bucket.take(0.0) == 0.0
    wait = bucket.take(1.0)
    assert wait == pytest.approx(9.0)
    assert retry_after(wait) == 9 and retry_after(0.01) == 1 and retry_after(1.2) == 2


def test_the_limiter_uses_the_keys_own_limit_else_the_default_and_zero_is_none() -> None:
    limiter = RateLimiter(default_rate=1.0)
    default = generate([PROFILES_READ]).record
    own = generate([PROFILES_READ], rate_limit_per_s=3.0).record
    unlimited = generate([PROFILES_READ], rate_limit_per_s=0.0).record
    assert limiter.take(default, 0.0) == 0.0 and limiter.take(default, 0.0) > 0
    assert [limiter.take(own, 0.0) for _ in range(4)][-1] > 0  # a burst of 3
    assert all(limiter.take(unlimited, 0.0) == 0.0 for _ in range(1000))
    limiter.keep_only([own.key_id])
    assert limiter.take(default, 0.0) == 0.0  # forgotten: a fresh bucket
    assert RateLimiter(default_rate=0.0).take(default, 0.0) == 0.0
