"""The identifiers a raw message names: what erasure and suppression look for in a payload.

A message is keyed by one cookie, but it can name other people's identifiers: a Segment
``track`` under a shared device's cookie carrying someone's email in its properties, an
``alias``'s ``previousId``, a Zendesk event's requester email. Erasure must find those. Reading
every archived payload of the lake to search it was nearly all of an erasure's time (the
payload is most of the event archive's bytes, and JSON to decompress), so the archive lifts
them into a column of their own at ingestion (``identifiers``,
:data:`c360.contracts.lake.ARCHIVE_SCHEMA`) with :func:`lift`, and erasure reads that column
instead of the payload. The speed layer checks a
dead letter's payload against the suppression list with :func:`payload_identifiers`.

What a payload names, by type: every **email address** in its text, wherever it is (a
property, a URL, a trait; by pattern, lower-cased), and the values of the identifier fields
of Segment's spec: ``anonymousId`` and ``previousId`` (cookies), ``userId`` (the shop's
customer id), ``traits.phone`` and ``context.traits.phone``; and a Zendesk user event's
``detail.phone``. A phone is named as written and, when it has its country, in E.164.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from c360.identity.normalise import phone_e164

# An address in lower-cased text: the local part's RFC 5322 characters, a dotted domain.
EMAIL = re.compile(rb"[a-z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+")
# The identifier fields of a message (a path of keys) and the type of what they hold.
FIELDS: Mapping[tuple[str, ...], str] = {
    ("anonymousId",): "anonymous_id",
    ("previousId",): "anonymous_id",
    ("userId",): "customer_id",
    ("traits", "phone"): "phone",
    ("context", "traits", "phone"): "phone",
    ("detail", "phone"): "phone",  # a Zendesk user event's (identity reads it too)
}
# The fields the event archive has a column for already (``anonymous_id``, ``user_id``): not
# lifted twice.
ARCHIVE_COLUMNS = frozenset({("anonymousId",), ("userId",)})
# A payload that may name something beyond its archive columns: only those are parsed.
_CANDIDATE = r'@|"previousId"|"phone"'


def _field(message: object, path: tuple[str, ...]) -> object:
    for key in path:
        if not isinstance(message, dict):
            return None
        message = message.get(key)
    return message


def payload_identifiers(
    payload: bytes | str, skip: frozenset[tuple[str, ...]] = frozenset()
) -> Iterator[tuple[str, str]]:
    """(type, value) of every identifier the payload names (module docstring), as written
    (emails lower-cased); the fields in ``skip`` left out. Not JSON: its emails only."""
    data = payload.encode() if isinstance(payload, str) else payload
    for found in EMAIL.findall(data.lower()):
        yield "email", found.decode("utf-8", "replace")
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        return
    for path, id_type in FIELDS.items():
        if path in skip:
            continue
        value = _field(message, path)
        if isinstance(value, str | int) and not isinstance(value, bool):
            text = str(value).strip()
            if text:
                yield id_type, text
            if id_type == "phone" and text:
                # Also in E.164, the form identity keeps and erasure looks for: "+31 165
                # 183612" as written would not meet "+31165183612". A national number without
                # its country cannot be put in that form and stays as written.
                e164 = phone_e164(text, None)
                if e164 is not None and e164 != text:
                    yield id_type, e164


def lift(payloads: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The event archive's ``identifiers`` column for these payloads: per row, the distinct
    values (lower-cased) of what it names beyond its own columns — its emails, ``previousId``,
    phones — or null when it names none. Only payloads that may hold one are parsed (an ``@``,
    or one of those keys): a few in a hundred of a shop's clickstream."""
    if isinstance(payloads, pa.ChunkedArray):
        payloads = payloads.combine_chunks() if payloads.num_chunks else pa.array([], pa.string())
    if payloads.type != pa.string():
        payloads = pc.cast(payloads, pa.string())
    out: list[list[str] | None] = [None] * len(payloads)
    candidates = pc.fill_null(pc.match_substring_regex(payloads, _CANDIDATE), False)
    for i in np.flatnonzero(candidates.to_numpy(zero_copy_only=False)):
        text = payloads[int(i)].as_py()
        values = {v.lower() for _, v in payload_identifiers(text, ARCHIVE_COLUMNS)}
        if values:
            out[int(i)] = sorted(values)
    return pa.array(out, pa.list_(pa.string()))
