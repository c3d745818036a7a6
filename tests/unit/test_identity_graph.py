"""Deterministic identity links and the over-merge guards, on hand-built Arrow tables."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable, Mapping

import pyarrow as pa
import pytest

from c360.config import ComputeSettings, IdentitySettings
from c360.contracts.identity import IDENTIFIERS, IGNORED, LINKS, RECORDS
from c360.engines import open_compute
from c360.errors import DataError
from c360.identity.graph import CONTRADICTED, deterministic_links

SETTINGS = IdentitySettings()
COMPUTE = open_compute(ComputeSettings())


def records(*rows: Mapping[str, object]) -> pa.Table:
    """RECORDS rows; unnamed columns are null."""
    return pa.Table.from_pylist(
        [{f.name: row.get(f.name) for f in RECORDS} for row in rows], schema=RECORDS
    )


def identifiers(*rows: tuple[str, str, str]) -> pa.Table:
    return pa.Table.from_pylist(
        [dict(zip(IDENTIFIERS.names, row, strict=True)) for row in rows], schema=IDENTIFIERS
    )


def customer(cid: int, email: str | None = None) -> dict[str, object]:
    return {"record_key": f"mysql/customer:{cid}", "customer_id": cid, **_email(email)}


def order(oid: int, cid: int | None = None, email: str | None = None) -> dict[str, object]:
    return {"record_key": f"mysql/order:{oid}", "customer_id": cid, **_email(email)}


def cookie(anonymous_id: str, cid: int | None = None) -> dict[str, object]:
    return {"record_key": f"clickstream/cookie:{anonymous_id}", "customer_id": cid}


def _email(email: str | None) -> dict[str, object]:
    # Tests hand the matching form in directly (records.py computes it); lookup form = same.
    return {"email": email, "email_key": email}


def pairs(links: pa.Table) -> set[tuple[str, str, str]]:
    return {(r["left_key"], r["right_key"], r["evidence"]) for r in links.to_pylist()}


def ignored(graph_ignored: pa.Table) -> set[tuple[str, str, str, int]]:
    return {
        (r["id_type"], r["id_value"], r["reason"], r["customers"])
        for r in graph_ignored.to_pylist()
    }


def test_shared_email_links_guest_order_to_the_customer() -> None:
    recs = records(customer(1, "ann@x.com"), order(10, None, "ann@x.com"), order(11, 2, "b@x.com"))
    graph = deterministic_links(COMPUTE, recs, identifiers(), SETTINGS)
    assert graph.links.schema == LINKS
    assert pairs(graph.links) == {("mysql/customer:1", "mysql/order:10", "email")}
    assert set(graph.links["kind"].to_pylist()) == {"deterministic"}
    assert graph.links["match_weight"].null_count == graph.links.num_rows
    assert graph.ignored.schema == IGNORED
    assert graph.ignored.num_rows == 0


def test_customer_id_links_orders_and_a_pair_is_kept_once_with_the_first_evidence() -> None:
    recs = records(
        customer(1, "ann@x.com"),
        order(10, 1, "ann@x.com"),  # shares both the account and the email
        order(11, 1, "other@x.com"),
    )
    graph = deterministic_links(COMPUTE, recs, identifiers(), SETTINGS)
    assert pairs(graph.links) == {
        ("mysql/customer:1", "mysql/order:10", "customer_id"),
        ("mysql/customer:1", "mysql/order:11", "customer_id"),
    }


def test_gmail_folded_key_links_records_whose_lookup_emails_differ() -> None:
    # records.py folds "A.nn+shop@googlemail.com" and "ann@gmail.com" to one matching key.
    recs = records(
        {**customer(1), "email": "a.nn+shop@googlemail.com", "email_key": "ann@gmail.com"},
        {**order(10), "email": "ann@gmail.com", "email_key": "ann@gmail.com"},
    )
    graph = deterministic_links(COMPUTE, recs, identifiers(), SETTINGS)
    assert pairs(graph.links) == {("mysql/customer:1", "mysql/order:10", "email")}


def test_cookie_identified_as_one_customer_links_to_the_account() -> None:
    recs = records(customer(1, "ann@x.com"), cookie("c1", 1))
    ids = identifiers(("clickstream/cookie:c1", "customer_id", "1"))
    graph = deterministic_links(COMPUTE, recs, ids, SETTINGS)
    assert pairs(graph.links) == {("clickstream/cookie:c1", "mysql/customer:1", "customer_id")}


def test_blocked_values_yield_no_link_and_are_reported() -> None:
    recs = records(
        # records.py nulls a blocked email key; the lookup form still shows the value
        {**order(10), "email": "test@test.com", "email_key": None},
        {**order(11), "email": "test@test.com", "email_key": None},
        # defensive: a blocked key that slipped through (other case, spaces) is dropped too
        {**order(12), "email": "Test@Test.com ", "email_key": " TEST@test.com"},
        {**order(13), "email": "test@test.com", "email_key": "test@test.com"},
        customer(0),  # an account id that reads as the placeholder "0000000"
        order(14, 0),
        cookie("c9"),
    )
    ids = identifiers(("clickstream/cookie:c9", "customer_id", "0000000"))
    graph = deterministic_links(
        COMPUTE, recs, ids, IdentitySettings(blocked_values=("test@test.com", "0"))
    )
    assert graph.links.num_rows == 0
    # each value is reported as seen: the cookie's "0000000" claim reads as account 0
    assert ignored(graph.ignored) == {
        ("customer_id", "0", "blocked value", 1),
        ("customer_id", "0000000", "blocked value", 1),
        ("email", "test@test.com", "blocked value", 0),
    }
    default = deterministic_links(COMPUTE, recs, ids, SETTINGS)
    # with the default list, "0000000" (the cookie's claim) is blocked but account 0 is not
    assert pairs(default.links) == {("mysql/customer:0", "mysql/order:14", "customer_id")}
    assert ("customer_id", "0000000", "blocked value", 1) in ignored(default.ignored)


def test_email_used_by_two_accounts_is_ignored_and_reported() -> None:
    recs = records(
        customer(1, "ann@x.com"),
        customer(2, "bob@x.com"),
        order(10, 1, "desk@shop.com"),  # the store's front-desk email on both accounts' orders
        order(11, 2, "desk@shop.com"),
        order(12, None, "desk@shop.com"),
    )
    graph = deterministic_links(COMPUTE, recs, identifiers(), SETTINGS)
    assert pairs(graph.links) == {
        ("mysql/customer:1", "mysql/order:10", "customer_id"),
        ("mysql/customer:2", "mysql/order:11", "customer_id"),
    }
    assert ignored(graph.ignored) == {("email", "desk@shop.com", "too many customer accounts", 2)}
    # allowing two accounts per identifier makes the email evidence again
    relaxed = deterministic_links(
        COMPUTE, recs, identifiers(), IdentitySettings(max_customers_per_identifier=2)
    )
    assert ("mysql/order:10", "mysql/order:11", "email") in pairs(relaxed.links)
    assert relaxed.ignored.num_rows == 0


def test_cookie_that_identified_as_two_customers_links_to_neither() -> None:
    recs = records(customer(1, "ann@x.com"), customer(2, "bob@x.com"), cookie("shared"))
    ids = identifiers(
        ("clickstream/cookie:shared", "anonymous_id", "shared"),
        ("clickstream/cookie:shared", "customer_id", "1"),
        ("clickstream/cookie:shared", "customer_id", "2"),
    )
    graph = deterministic_links(COMPUTE, recs, ids, SETTINGS)
    assert graph.links.num_rows == 0
    assert ignored(graph.ignored) == {
        ("record", "clickstream/cookie:shared", "too many customer accounts", 2)
    }


def test_ambiguous_record_counts_against_its_email() -> None:
    # A cookie that logged in as two accounts and carries an email: that email is not
    # evidence either, even though only one other record shares it.
    recs = records(
        {**cookie("shared"), "email": "fam@x.com", "email_key": "fam@x.com"},
        order(10, None, "fam@x.com"),
    )
    ids = identifiers(
        ("clickstream/cookie:shared", "customer_id", "1"),
        ("clickstream/cookie:shared", "customer_id", "2"),
    )
    graph = deterministic_links(COMPUTE, recs, ids, SETTINGS)
    assert graph.links.num_rows == 0
    assert ("email", "fam@x.com", "too many customer accounts", 2) in ignored(graph.ignored)


def test_a_shared_mailbox_with_contradicting_people_is_not_proof() -> None:
    """A couple's mailbox: other first names and other birth dates (an account and a newsletter
    birthday), or other names at another address (two guests) — the email links nothing, is
    reported with the reason, and the customer_id evidence still holds."""
    anna = {"first_name": "anna", "last_name": "smith", "birth_date": dt.date(1980, 3, 1)}
    recs = records(
        {**customer(1, "smiths@x.com"), **anna},
        {**order(10, 1, "smiths@x.com"), "first_name": "anna", "last_name": "smith"},
        {**order(11, None, "smiths@x.com"), "first_name": "tom", "last_name": "smith"},
        {
            "record_key": "mailchimp/member:m1",
            **_email("smiths@x.com"),
            "first_name": "tom",
            "birth_md": "11-23",
        },
        {
            **order(20, None, "a.b@y.com"),
            "first_name": "jan",
            "last_name": "visser",
            "address": "kerkstraat 1",
        },
        {
            **order(21, None, "a.b@y.com"),
            "first_name": "piet",
            "last_name": "bakker",
            "address": "dorpsweg 22",
        },
    )
    graph = deterministic_links(COMPUTE, recs, identifiers(), SETTINGS)
    assert pairs(graph.links) == {("mysql/customer:1", "mysql/order:10", "customer_id")}
    assert ignored(graph.ignored) == {
        ("email", "smiths@x.com", CONTRADICTED, 1),
        ("email", "a.b@y.com", CONTRADICTED, 0),
    }


def test_a_typo_or_a_missing_birth_date_is_no_contradiction() -> None:
    """One person's records: a mistyped first name without a birth date, a short form of the
    first name with the same birthday — all linked."""
    recs = records(
        {
            **customer(1, "jo@x.com"),
            "first_name": "johanna",
            "last_name": "de vries",
            "birth_date": dt.date(1975, 6, 14),
            "address": "laan 3",
        },
        {**order(10, None, "jo@x.com"), "first_name": "johana", "last_name": "de vries"},
        {
            "record_key": "mailchimp/member:m2",
            **_email("jo@x.com"),
            "first_name": "jo",
            "birth_md": "06-14",
        },
    )
    graph = deterministic_links(COMPUTE, recs, identifiers(), SETTINGS)
    linked = pairs(graph.links)
    assert len(linked) == 2  # a star over the three records
    assert {key for left, right, _ in linked for key in (left, right)} == set(
        recs["record_key"].to_pylist()
    )
    assert graph.ignored.num_rows == 0


def test_a_household_members_guest_order_contradicts_the_mailbox() -> None:
    """The simulator's households: a member's guest order carries the shared mailbox, the
    surname, the address, the phone — and no birth date. A missing birth date is no alibi:
    other first names make the mailbox no proof, for records with and without accounts."""
    recs = records(
        {
            **customer(1, "the.smiths@x.com"),
            "first_name": "anna",
            "last_name": "smith",
            "birth_date": dt.date(1980, 3, 1),
            "address": "mill road 57",
            "phone": "+49179273143",
        },
        {
            **order(11, None, "the.smiths@x.com"),
            "first_name": "tom",
            "last_name": "smith",
            "address": "mill road 57",
            "phone": "+49179273143",
        },
        {**order(12, None, "clara.lang@y.com"), "first_name": "clara", "last_name": "lang"},
        {**order(13, None, "clara.lang@y.com"), "first_name": "thomas", "last_name": "lang"},
        # a nickname is no contradiction when the birth dates make it one person
        {**customer(2, "rob@z.com"), "first_name": "robert", "birth_date": dt.date(1970, 1, 2)},
        {
            "record_key": "mailchimp/member:m3",
            **_email("rob@z.com"),
            "first_name": "bob",
            "birth_md": "01-02",
        },
    )
    graph = deterministic_links(COMPUTE, recs, identifiers(), SETTINGS)
    assert pairs(graph.links) == {("mailchimp/member:m3", "mysql/customer:2", "email")}
    assert ignored(graph.ignored) == {
        ("email", "the.smiths@x.com", CONTRADICTED, 1),
        ("email", "clara.lang@y.com", CONTRADICTED, 0),
    }


def test_star_links_not_quadratic() -> None:
    recs = records(*(order(1000 + i, None, "many@x.com") for i in range(1000)))
    graph = deterministic_links(COMPUTE, recs, identifiers(), SETTINGS)
    assert graph.links.num_rows == 999
    assert set(graph.links["left_key"].to_pylist()) == {"mysql/order:1000"}
    assert len(set(graph.links["right_key"].to_pylist())) == 999


def test_links_are_ordered_deduplicated_and_independent_of_row_order() -> None:
    rows = [
        customer(1, "ann@x.com"),
        order(10, 1, "ann@x.com"),
        order(11, None, "ann@x.com"),
        order(12, 2, "bob@x.com"),
        customer(2, "bob@x.com"),
        order(13, None, "zed@x.com"),
        order(14, None, "zed@x.com"),
        cookie("c1", 2),
        cookie("c2"),
    ]
    id_rows = [
        ("clickstream/cookie:c1", "customer_id", "2"),
        ("clickstream/cookie:c2", "customer_id", "1"),
        ("clickstream/cookie:c2", "customer_id", "2"),
        ("mysql/order:10", "customer_id", "1"),  # the same claim twice
    ]
    first = deterministic_links(COMPUTE, records(*rows), identifiers(*id_rows), SETTINGS)
    for seed in range(3):
        random.Random(seed).shuffle(rows)
        random.Random(seed).shuffle(id_rows)
        again = deterministic_links(COMPUTE, records(*rows), identifiers(*id_rows), SETTINGS)
        assert again.links.equals(first.links)
        assert again.ignored.equals(first.ignored)
    link_rows = first.links.to_pylist()
    assert all(r["left_key"] < r["right_key"] for r in link_rows)
    keys = [(r["left_key"], r["right_key"]) for r in link_rows]
    assert keys == sorted(set(keys))
    assert pairs(first.links) == {
        ("mysql/customer:1", "mysql/order:10", "customer_id"),
        ("mysql/customer:1", "mysql/order:11", "email"),
        ("clickstream/cookie:c1", "mysql/customer:2", "customer_id"),
        ("clickstream/cookie:c1", "mysql/order:12", "customer_id"),
        ("mysql/customer:2", "mysql/order:12", "email"),
        ("mysql/order:13", "mysql/order:14", "email"),
    }


def _bad(rows: Iterable[tuple[str, str, str]]) -> str:
    with pytest.raises(DataError) as error:
        deterministic_links(COMPUTE, records(customer(1)), identifiers(*rows), SETTINGS)
    return str(error.value)


def test_bad_inputs_are_named() -> None:
    assert "'abc'" in _bad([("mysql/customer:1", "customer_id", "abc")])
    assert "'mysql/order:404'" in _bad([("mysql/order:404", "customer_id", "1")])
    with pytest.raises(DataError, match="email_key"):
        deterministic_links(
            COMPUTE, records(customer(1)).drop(["email_key"]), identifiers(), SETTINGS
        )
