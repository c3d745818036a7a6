"""Identifier normalisation: mailbox folding, E.164 phones, Unicode folding, blocked values."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest

from c360.config import ComputeSettings, IdentitySettings
from c360.engines import open_compute
from c360.errors import TerminalError
from c360.identity import records
from c360.identity.normalise import (
    blocked,
    email_key,
    fold_text,
    map_distinct,
    map_distinct_pairs,
    normalise,
    phone_e164,
)
from c360.identity.records import normalise_records


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("Anna.Smith12@Gmail.com ", "annasmith12@gmail.com"),
        ("anna.smith12+shop@googlemail.com", "annasmith12@gmail.com"),
        ("a.n.n.a.smith12@gmail.com", "annasmith12@gmail.com"),
        ("anna.smith12+news@outlook.com", "anna.smith12@outlook.com"),  # +tags fold everywhere
        ("anna.smith12@outlook.com", "anna.smith12@outlook.com"),  # dots only fold at Gmail
        ("not-an-address", None),
        ("@gmail.com", None),
        ("+only@gmail.com", None),
        ("anna@localhost", None),
        (None, None),
    ],
)
def test_email_key_folds_what_providers_treat_as_one_mailbox(raw: str | None, key: str | None):
    assert email_key(raw) == key


def test_lookup_form_only_trims_and_lowers():
    assert normalise("email", "  Anna.Smith12+x@Gmail.com ") == "anna.smith12+x@gmail.com"
    assert normalise("anonymous_id", " Abc ") == "Abc"


@pytest.mark.parametrize(
    ("written", "region"),
    [
        ("+31165183612", None),
        ("+31 165 183612", None),
        (" +31 (165) 183-612 ", "DE"),
        ("0031 165 183612", "DE"),  # the international prefix from Germany
        ("0165 183612", "NL"),  # national form, read in the default region
        ("0165-183612", "nl"),
    ],
)
def test_a_phone_lookup_takes_any_written_form_to_e164(written: str, region: str | None):
    assert normalise("phone", written, region) == "+31165183612"


def test_a_phone_that_does_not_parse_stays_as_written_and_matches_nothing():
    assert normalise("phone", " not a phone ") == "not a phone"
    assert normalise("phone", "0165 183612") == "0165 183612"  # national, no region to read it


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+4915123456789", None, "+4915123456789"),
        ("+49 151 23456789", "DE", "+4915123456789"),
        ("0151 23456789", "DE", "+4915123456789"),
        ("0151 23456789", "de", "+4915123456789"),
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("0151 23456789", None, None),  # a local number needs its country
        ("12", "DE", None),
        ("phone", "DE", None),
        ("", "DE", None),
        (None, "DE", None),
    ],
)
def test_phones_go_to_e164_in_the_records_country(raw: str | None, region: str | None, e164):
    assert phone_e164(raw, region) == e164


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("Zoë Müller-Lüdenscheidt", "zoe muller ludenscheidt"),
        ("  ZOE   müller ", "zoe muller"),
        ("Søren Łukasz Æbelø", "soren lukasz aebelo"),
        ("ŒUVRE Œdipe", "oeuvre oedipe"),  # a capital Œ as its small letter
        ("Straße 12a", "strasse 12a"),
        ("Anna-Lena O.", "anna lena o"),
        ("François O'Brien", "francois o brien"),
        ("---", None),
        (None, None),
    ],
)
def test_names_are_unicode_folded(raw: str | None, folded: str | None):
    assert fold_text(raw) == folded


def test_blocked_values_compare_normalised():
    placeholders = ("test@test.com", "null", "0000000")
    assert blocked(" Test@Test.com", placeholders)
    assert blocked("NULL", placeholders)
    assert blocked("0000000", placeholders)
    assert not blocked("anna@test.com", placeholders)
    assert not blocked(None, placeholders)


def test_map_distinct_calls_once_per_value_and_keeps_nulls_and_order():
    calls: list[str] = []

    def shout(value: str) -> str:
        calls.append(value)
        return value.upper()

    values = pa.chunked_array([["a", None, "b"], ["a", "a", None, "c"]])
    assert map_distinct(values, shout).to_pylist() == ["A", None, "B", "A", "A", None, "C"]
    assert sorted(calls) == ["a", "b", "c"]


def test_map_distinct_pairs_uses_the_context_and_keeps_row_order():
    phones = pa.array(["0151 23456789", "0151 23456789", None, "+33612345678", "06 12 34 56 78"])
    regions = pa.array(["DE", "AT", "DE", "", "FR"])
    e164 = map_distinct_pairs(phones, regions, phone_e164).to_pylist()
    assert e164 == ["+4915123456789", "+4315123456789", None, "+33612345678", "+33612345678"]


def test_records_take_the_city_and_a_birth_date_from_any_source() -> None:
    """Issue 17, item 4: the city is in the record; a Mailchimp birthday with its year (a date
    merge field) is a birth date, Mailchimp's own MM/DD only a birthday."""
    rows = [
        ("mysql/customer:1", "Köln", dt.date(1980, 3, 1), None),
        ("mailchimp/member:a", None, None, "1985-03-14"),
        ("mailchimp/member:b", None, None, "03/14/1985"),
        ("mailchimp/member:c", None, None, "03/14"),
        ("mailchimp/member:d", None, None, "02/30/1985"),
    ]
    n = len(rows)
    text = pa.nulls(n, pa.string())
    raw = pa.table(
        {
            "record_key": [r[0] for r in rows],
            "source": [r[0].partition("/")[0] for r in rows],
            "record_type": [r[0].partition("/")[2].partition(":")[0] for r in rows],
            "record_id": [r[0].partition(":")[2] for r in rows],
            "customer_id": pa.nulls(n, pa.int64()),
            **{c: text for c in ("email", "first_name", "last_name", "full_name", "phone")},
            **{c: text for c in ("country", "address", "postcode")},
            "city": pa.array([r[1] for r in rows], pa.string()),
            "birth_date": pa.array([r[2] for r in rows], pa.date32()),
            "birthday": pa.array([r[3] for r in rows], pa.string()),
            "alt_id": text,
            "first_seen": pa.nulls(n, pa.timestamp("us", tz="UTC")),
        }
    )
    out = normalise_records(open_compute(ComputeSettings()), raw, IdentitySettings()).to_pylist()
    assert out[0]["city"] == "koln" and out[0]["birth_md"] == "03-01"
    assert [r["birth_date"] for r in out[1:]] == [dt.date(1985, 3, 14)] * 2 + [None, None]
    assert [r["birth_md"] for r in out[1:]] == ["03-14", "03-14", "03-14", None]


def _raw(columns: dict[str, list[str | None]]) -> pa.Table:
    """A raw extract (``identity_raw_records``) with the given text columns, others null."""
    n = max(len(v) for v in columns.values())
    text = pa.nulls(n, pa.string())

    def padded(name: str) -> pa.Array:
        values = columns.get(name)
        return text if values is None else pa.array(values + [None] * (n - len(values)))

    return pa.table(
        {
            "record_key": [f"mysql/order:{i}" for i in range(n)],
            "source": ["mysql"] * n,
            "record_type": ["order"] * n,
            "record_id": [str(i) for i in range(n)],
            "customer_id": pa.nulls(n, pa.int64()),
            **{c: padded(c) for c in ("email", "first_name", "last_name", "full_name")},
            **{c: padded(c) for c in ("phone", "country", "address", "postcode", "city")},
            "birth_date": pa.nulls(n, pa.date32()),
            "birthday": padded("birthday"),
            "alt_id": text,
            "first_seen": pa.nulls(n, pa.timestamp("us", tz="UTC")),
        }
    )


TEXTS = [
    "Zoë Müller-Lüdenscheidt",
    "  ZOE   müller ",
    "Søren Łukasz Æbelø",
    "ŒUVRE Œdipe",
    "Straße 12a",
    "Anna-Lena O.",
    "François O'Brien",
    "---",
    "\tAnna\x0b ",
    "O'Neil  Jr.",
    "12 High St.",
    "SW1A 1AA",
    "",
    " ",
    "İstanbul",
    "ﬁne",
    "Mary Ann Smith",
    "Prince",
    None,
]
EMAILS = [
    "Anna.Smith12@Gmail.com ",
    "anna.smith12+shop@googlemail.com",
    "a.n.n.a.smith12@gmail.com",
    "anna.smith12+news@outlook.com",
    "not-an-address",
    "@gmail.com",
    "+only@gmail.com",
    "anna@localhost",
    " Test@Test.com",
    "NULL",
    "Jürgen.Groß@Example.de",
    "a@b@c.com",
    "x.y@gmail.com\n",
    "\x1canna@x.com",
    "...@gmail.com",
    "a+@x.com",
    "first\nlast@x.com",
    None,
]
PHONES = [
    ("+31165183612", None),
    ("+31 165 183612", None),
    (" +31 (165) 183-612 ", "DE"),
    ("0031 165 183612", "DE"),
    ("0165 183612", "NL"),
    ("0165-183612", "nl"),
    ("+4915123456789", "FR"),
    ("0151 23456789", "DE"),
    ("0151 23456789", None),
    ("0151 23456789", ""),
    ("12", "DE"),
    ("phone", "DE"),
    ("", "DE"),
    ("0000000", "DE"),
    ("+49 151 23456789 ", "AT"),
    ("\uff0b49 151 23456789", "DE"),  # a full-width plus: not ASCII, so Python reads it
    (None, "DE"),
]
BIRTHDAYS = ["1985-03-14", "03/14/1985", "03/14", "02/30/1985", "3-4", "13/01", " 12/31 ", None]


@pytest.mark.parametrize("in_workers", [False, True], ids=["in-process", "worker-processes"])
def test_records_normalise_in_sql_exactly_as_the_python_functions_do(
    in_workers: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The step normalises in SQL (Python only for what SQL cannot do exactly): every column
    must equal the Python definition, ASCII or not, blocked or not — also where the Python
    part runs in worker processes, split in two (as a million values are)."""
    workers: list[int] = []
    if in_workers:
        monkeypatch.setattr(records, "PARALLEL_FROM", 1)
        in_worker = records._map_in_worker

        def counted(function: Any, rows: list[tuple[Any, ...]]) -> list[tuple[object, ...]]:
            workers.append(len(rows))
            return in_worker(function, rows)

        monkeypatch.setattr(records, "_map_in_worker", counted)
    settings = IdentitySettings()
    placeholders = settings.blocked_values
    raw = _raw(
        {
            "email": EMAILS,
            "first_name": TEXTS,
            "last_name": TEXTS[::-1],
            "full_name": TEXTS[3:] + TEXTS[:3],
            "address": TEXTS,
            "postcode": TEXTS[::-1],
            "city": TEXTS,
            "phone": [p for p, _ in PHONES],
            "country": [c for _, c in PHONES],
            "birthday": BIRTHDAYS,
        }
    )
    out = normalise_records(open_compute(ComputeSettings(threads=2)), raw, settings)
    assert (len(workers) > 4) if in_workers else not workers  # four lookups, split in two
    rows = raw.to_pylist()
    emails = [None if blocked(r["email"], placeholders) else r["email"] for r in rows]
    emails = [None if e is None else normalise("email", e) for e in emails]
    keys = [None if e is None or blocked(e, placeholders) else email_key(e) for e in emails]
    phones = []
    for r in rows:
        region = r["country"] if r["country"] is not None else settings.default_phone_region
        value = r["phone"]
        e164 = (
            None
            if value is None or blocked(value, placeholders)
            else phone_e164(value, region or None)
        )
        phones.append(None if e164 is None or blocked(e164, placeholders) else e164)
    full = [fold_text(r["full_name"]) for r in rows]
    first = [fold_text(r["first_name"]) for r in rows]
    last = [fold_text(r["last_name"]) for r in rows]
    assert out["email"].to_pylist() == emails
    assert out["email_key"].to_pylist() == keys
    assert out["phone"].to_pylist() == phones
    assert out["first_name"].to_pylist() == [
        f if f is not None else (v.rpartition(" ")[0] or None if v is not None else None)
        for f, v in zip(first, full, strict=True)
    ]
    assert out["last_name"].to_pylist() == [
        f if f is not None else (v.rpartition(" ")[2] if v is not None else None)
        for f, v in zip(last, full, strict=True)
    ]
    assert out["address"].to_pylist() == [fold_text(r["address"]) for r in rows]
    assert out["city"].to_pylist() == [fold_text(r["city"]) for r in rows]
    assert out["postcode"].to_pylist() == [
        None if r["postcode"] is None else fold_text(r["postcode"].replace(" ", "")) for r in rows
    ]
    assert out["birth_md"].to_pylist()[: len(BIRTHDAYS)] == [
        "03-14",
        "03-14",
        "03-14",
        None,
        "03-04",
        None,
        "12-31",
        None,
    ]


def test_a_failing_lookup_worker_names_the_error_not_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker process that fails is reported with its exception's type: the message of a
    ValueError quotes the value it choked on, personal data that must not reach an error."""
    monkeypatch.setattr(records, "PARALLEL_FROM", 1)
    rows = [("12",), ("+31 6 secret-value",)]
    with pytest.raises(TerminalError, match="ValueError") as failed:
        records.map_rows(int, rows, 2)
    assert "secret" not in str(failed.value)
    assert records.map_rows(str, rows, 2) == ["12", "+31 6 secret-value"]
