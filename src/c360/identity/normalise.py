"""Identifier and attribute normalisation for identity resolution.

Two forms of an email: the *lookup* form (lower-cased, trimmed) is what identity_map stores and
the feature SQL joins on (``lower(trim(email))``); the *matching* form additionally folds what
mail providers treat as the same mailbox — ``+tags`` everywhere, dots in Gmail local parts,
``googlemail.com`` → ``gmail.com`` — and is only used as evidence. Phones go to E.164 with
``phonenumbers`` (a local number is read in the record's country). Names and addresses are
Unicode-folded (accents dropped, case-folded, punctuation removed) so "Zoë Müller-Lüdenscheidt"
and "zoe muller ludenscheidt" compare equal.

The identity step normalises in SQL (:mod:`c360.identity.records`): the ``*_sql`` expressions
below give exactly what the Python functions give for ASCII text, which is nearly every value;
the rest (non-ASCII text, phones not already in E.164) goes through the Python functions once
per distinct value. The Python functions stay the definition (the unit tests hold both to it).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable

import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc

from c360.contracts.compute import LocalSql

GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
# Letters NFKD does not decompose into a base letter plus marks.
_UNDECOMPOSED = str.maketrans(
    {
        "ø": "o",
        "Ø": "o",
        "ł": "l",
        "Ł": "l",
        "đ": "d",
        "Đ": "d",
        "æ": "ae",
        "Æ": "ae",
        "œ": "oe",
        "Œ": "oe",
    }
)
_NOT_WORD = re.compile(r"[^0-9a-z]+")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")

# --- the same forms as SQL (DuckDB's dialect), exact for ASCII text ----------------------------
# What Python's str.strip() removes from ASCII text.
_ASCII_SPACE = " || ".join(f"chr({c})" for c in (32, 9, 10, 11, 12, 13, 28, 29, 30, 31))
E164_PATTERN = r"\+[1-9][0-9]{6,14}"


def ascii_sql(expr: str) -> str:
    """True when the text is ASCII (its bytes are its characters): the SQL forms apply."""
    return f"(strlen({expr}) = length({expr}))"


def strip_lower_sql(expr: str) -> str:
    """``value.strip().lower()`` of ASCII text (the lookup form of an email, a blocked value)."""
    return f"lower(trim({expr}, {_ASCII_SPACE}))"


def fold_text_sql(expr: str) -> str:
    """:func:`fold_text` of ASCII text."""
    return f"nullif(trim(regexp_replace(lower({expr}), '[^0-9a-z]+', ' ', 'g')), '')"


def email_forms_sql(values: str) -> str:
    """``value, email, email_key`` for each row of the query ``values`` (a column ``value`` of
    ASCII text): the lookup form (:func:`normalise`; null when it is one of the session's
    ``blocked_values``) and :func:`email_key` of it. Each part is computed once a row."""
    gmail = ", ".join(f"'{d}'" for d in sorted(GMAIL_DOMAINS))
    return f"""
        SELECT value, email,
               CASE WHEN contains(email, '@') AND local_part <> '' AND contains(domain, '.')
                         AND folded_local <> ''
                    THEN folded_local || '@' || CASE WHEN gmail THEN 'gmail.com' ELSE domain END
               END AS email_key
        FROM (
            SELECT *, CASE WHEN gmail THEN replace(split_part(local_part, '+', 1), '.', '')
                           ELSE split_part(local_part, '+', 1) END AS folded_local
            FROM (
                SELECT *, domain IN ({gmail}) AS gmail
                FROM (
                    SELECT value, email, regexp_extract(email, '(?s)^(.*)@', 1) AS local_part,
                           regexp_extract(email, '(?s)@([^@]*)$', 1) AS domain
                    FROM (
                        SELECT value, CASE WHEN lookup IN (SELECT value FROM blocked_values)
                                           THEN NULL ELSE lookup END AS email
                        FROM (SELECT value, {strip_lower_sql("value")} AS lookup
                              FROM ({values}) emails) lookups
                    ) forms
                ) parts
            ) flagged
        ) folded
    """


def normalise(id_type: str, value: str, phone_region: str | None = None) -> str:
    """The lookup form of an identifier (identity_map's id_value): an email lower-cased, a
    phone in E.164 as identity stores phones (a national number read in ``phone_region``; one
    that does not parse is left as written, and matches nothing), anything else trimmed."""
    if id_type == "email":
        return value.strip().lower()
    if id_type == "phone":
        return phone_e164(value.strip(), phone_region) or value.strip()
    return value.strip()


def email_key(value: str | None) -> str | None:
    """The matching form of an email, or None when it is not an address."""
    if value is None:
        return None
    address = value.strip().lower()
    local, at, domain = address.rpartition("@")
    if not at or not local or "." not in domain:
        return None
    local = local.split("+", 1)[0]
    if domain in GMAIL_DOMAINS:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}" if local else None


def phone_e164(value: str | None, region: str | None) -> str | None:
    """E.164 form of a phone number (a local number is read in ``region``); None if invalid."""
    if value is None or not value.strip():
        return None
    if _E164.fullmatch(value):  # already E.164: nothing for the library to do
        return value
    try:
        number = phonenumbers.parse(value, (region or "").upper() or None)
    except phonenumbers.NumberParseException:
        return None
    # "possible", not "valid": numbering plans change faster than the library's metadata, and
    # a wrongly rejected phone costs evidence. Too short to identify anyone is rejected.
    if not phonenumbers.is_possible_number(number) or len(str(number.national_number)) < 6:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def fold_text(value: str | None) -> str | None:
    """Accents dropped, case-folded, punctuation to single spaces; None when nothing is left."""
    if value is None:
        return None
    if value.isascii():  # most values: no decomposition needed
        bare = value.lower()
    else:
        decomposed = unicodedata.normalize("NFKD", value.translate(_UNDECOMPOSED))
        bare = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    folded = _NOT_WORD.sub(" ", bare).strip()
    return folded or None


@functools.cache
def _blocked_forms(blocked_values: tuple[str, ...]) -> frozenset[str]:
    return frozenset(b.strip().lower() for b in blocked_values)


def blocked(value: str | None, blocked_values: tuple[str, ...]) -> bool:
    """True when a value is one of the configured placeholder values (trimmed, any case)."""
    return value is not None and value.strip().lower() in _blocked_forms(blocked_values)


def blocked_table(local: LocalSql, blocked_values: tuple[str, ...]) -> None:
    """The table ``blocked_values`` (value) of ``local``: the placeholders as compared (trimmed,
    lower case)."""
    forms = pa.table({"value": pa.array(sorted(_blocked_forms(blocked_values)), pa.string())})
    local.load("blocked_values", forms)


def map_distinct(
    values: pa.Array | pa.ChunkedArray, function: Callable[[str], str | None]
) -> pa.Array:
    """Apply ``function`` to each distinct non-null string of ``values`` (nulls stay null)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    encoded = pc.dictionary_encode(values)
    mapped = pa.array([function(v) for v in encoded.dictionary.to_pylist()], pa.string())
    return pc.take(mapped, encoded.indices)


def map_distinct_pairs(
    values: pa.Array | pa.ChunkedArray,
    context: pa.Array | pa.ChunkedArray,
    function: Callable[[str | None, str | None], str | None],
) -> pa.Array:
    """Apply ``function(value, context)`` once per distinct (value, context) pair."""
    table = pa.table({"value": values, "context": pc.fill_null(context, "")})
    distinct = table.group_by(["value", "context"]).aggregate([])
    mapped = [
        None if v is None else function(v, c or None)
        for v, c in zip(distinct["value"].to_pylist(), distinct["context"].to_pylist(), strict=True)
    ]
    lookup = distinct.append_column("mapped", pa.array(mapped, pa.string()))
    joined = table.append_column("row", pa.array(range(table.num_rows), pa.int64())).join(
        lookup, ["value", "context"], join_type="left outer"
    )
    return joined.sort_by("row")["mapped"].combine_chunks()
