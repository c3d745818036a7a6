"""The outbound webhook signature: what a receiver checks (docs/webhooks.md)."""

from __future__ import annotations

import hashlib
import hmac

from c360.contracts.webhooks import signature_header, verify

SECRET = "whsec-unit"
BODY = b'{"id":"e1","type":"segment.entered"}'
T = 1_765_000_000


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    header = signature_header(SECRET, T, BODY)
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={T},v1={expected}"
    assert verify(SECRET, header, BODY, now=T + 10)


def test_tampering_replays_and_wrong_secrets_are_refused() -> None:
    header = signature_header(SECRET, T, BODY)
    assert not verify(SECRET, header, BODY + b" ", now=T)  # body changed
    assert not verify("other", header, BODY, now=T)  # wrong secret
    assert not verify(SECRET, header, BODY, now=T + 301)  # too old: a replay
    assert not verify(SECRET, header.replace(f"t={T}", f"t={T + 5}"), BODY, now=T)
    for broken in (None, "", "v1=abc", "t=x,v1=abc", f"t={T}"):
        assert not verify(SECRET, broken, BODY, now=T)
