"""Probabilistic identity links (Splink on DuckDB): hand-made cases in a generated population,
FEBRL4 against its true pairs, and link precision at a production-like scale."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import math
import random
import re
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
import pytest

from c360.config import ComputeSettings, IdentitySettings, Settings
from c360.contracts import identity as contract
from c360.engines import open_compute
from c360.errors import DataError
from c360.identity.probabilistic import (
    COMPARISONS,
    LinkRun,
    _contributions_sql,
    _one_birthday_sql,
    _one_mailbox_sql,
    email_level_pairs,
    link,
    link_run,
)

COMPUTE = open_compute(ComputeSettings())
IDENTITY = IdentitySettings()


@cache
def bench() -> ModuleType:
    """bench/bench_febrl.py: the FEBRL mapping, scoring and the population generator."""
    path = Path(__file__).parents[2] / "bench" / "bench_febrl.py"
    spec = importlib.util.spec_from_file_location("bench_febrl", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record(key: str, customer_id: int | None = None, **fields: Any) -> dict[str, Any]:
    source, _, rest = key.partition("/")
    record_type, _, record_id = rest.partition(":")
    row = dict.fromkeys(contract.RECORDS.names)
    row.update(
        record_key=key,
        source=source,
        record_type=record_type,
        record_id=record_id,
        customer_id=customer_id,
        **fields,
    )
    row["email"] = row["email_key"]
    return row


MARTA = {
    "email_key": "marta.kowalczyk@example.org",
    "first_name": "marta",
    "last_name": "kowalczyk",
    "phone": "+4915112345678",
    "address": "12 lindenstrasse",
    "postcode": "10115",
}
JAN = {
    "first_name": "jan",
    "last_name": "novak",
    "address": "3 am markt",
    "postcode": "20095",
    "birth_date": dt.date(1970, 1, 1),
}
OSKAR = {
    "email_key": "oskar.lindqvist@example.net",
    "first_name": "oskar",
    "last_name": "lindqvist",
    "phone": "+4917099887766",
    "address": "7 hafenweg",
    "postcode": "24103",
}
EVA = {
    "email_key": "nowak.family@example.org",
    "first_name": "eva",
    "last_name": "nowak",
    "phone": "+4915155544433",
    "address": "41 birkenweg",
    "postcode": "30159",
}

CASES = [
    # An account, and a guest order of the same person with a mistyped email.
    record("mysql/customer:900001", 900001, **MARTA, birth_date=dt.date(1985, 3, 14)),
    record("mysql/order:900001", **{**MARTA, "email_key": "marta.kowalcyzk@example.org"}),
    # Two accounts of namesakes at one address: never linked, however alike.
    record(
        "mysql/customer:900002",
        900002,
        **JAN,
        email_key="jan.novak@example.org",
        phone="+4915100000002",
    ),
    record(
        "mysql/customer:900003",
        900003,
        **JAN,
        email_key="jan.novak77@example.com",
        phone="+4915100000003",
    ),
    # Too little to weigh: a cookie, an email-only member, a support user with a name only.
    record("clickstream/cookie:c900001", 900001),
    record("mailchimp/member:m900001", email_key=MARTA["email_key"]),
    record("zendesk/user:z900001", first_name="marta", last_name="kowalczyk"),
    # A household: Eva's account and Piotr's guest order share mailbox, surname, address and
    # phone — everything but the first name (issue 17). Eva's own guest order is hers.
    record("mysql/customer:900020", 900020, **EVA, birth_date=dt.date(1979, 5, 2)),
    record("mysql/order:900020", **{**EVA, "first_name": "piotr"}),
    record("mysql/order:900021", **EVA),
    # Three identical guest checkouts.
    record("mysql/order:900010", **OSKAR),
    record("mysql/order:900011", **OSKAR),
    record("mysql/order:900012", **OSKAR),
    # ... and Oskar at the help desk: a link of the checkouts' representative besides its
    # twin's, which must not link the further checkout a second time.
    record(
        "zendesk/user:z900010",
        email_key=OSKAR["email_key"],
        first_name="oskar",
        last_name="lindqvist",
    ),
]


def population(cases: list[dict[str, Any]], persons: int = 800) -> pa.Table:
    background, _ = bench().synthetic_records(persons, seed=11)
    return pa.concat_tables([background, pa.Table.from_pylist(cases, schema=contract.RECORDS)])


@pytest.fixture(scope="module")
def records() -> pa.Table:
    return population(CASES)


@pytest.fixture(scope="module")
def run(records: pa.Table) -> LinkRun:
    return link_run(COMPUTE, records, IDENTITY, blocked_pairs=True)


def links_of(table: pa.Table) -> dict[tuple[str, str], dict[str, Any]]:
    return {(row["left_key"], row["right_key"]): row for row in table.to_pylist()}


def test_guest_order_with_a_mistyped_email_links_to_its_account(run: LinkRun) -> None:
    found = links_of(run.links)
    pair = found[("mysql/customer:900001", "mysql/order:900001")]
    assert pair["kind"] == "probabilistic" and pair["evidence"] == "splink"
    assert pair["match_probability"] >= 0.99 and pair["match_weight"] > 6.6
    contributions = json.loads(pair["contributions"])
    # The order carries no birth date: that comparison had nothing to weigh.
    assert set(contributions) == {"name", "phone", "email", "address", "postcode"}
    assert contributions["name"] > 0 and contributions["phone"] > 0
    assert contributions["email"] > 0  # one typo in the local part still counts for the pair


def test_a_shared_mailbox_does_not_link_two_first_names(run: LinkRun) -> None:
    found = links_of(run.links)
    household = ("mysql/customer:900020", "mysql/order:900020")
    assert household not in found
    assert ("mysql/order:900020", "mysql/order:900021") not in found
    assert ("mysql/customer:900020", "mysql/order:900021") in found


def test_contributions_and_the_prior_add_up_to_the_match_weight(run: LinkRun) -> None:
    prior = json.loads(run.model)["probability_two_random_records_match"]
    assert 0 < prior < 1
    assert run.links.num_rows > 0
    for row in run.links.to_pylist():
        contributions = json.loads(row["contributions"])
        assert set(contributions) <= set(COMPARISONS)
        expected = math.log2(prior / (1 - prior)) + sum(contributions.values())
        assert row["match_weight"] == pytest.approx(expected, abs=1e-6)


def test_two_accounts_are_never_linked(records: pa.Table, run: LinkRun) -> None:
    pairs = set(links_of(run.links))
    assert ("mysql/customer:900002", "mysql/customer:900003") not in pairs
    # Nowhere does a link join records of two different accounts.
    account = dict(
        zip(records["record_key"].to_pylist(), records["customer_id"].to_pylist(), strict=True)
    )
    for left, right in pairs:
        assert account[left] is None or account[right] is None, (left, right)


def test_records_with_too_little_to_compare_take_no_part(run: LinkRun) -> None:
    assert run.profile_of is not None
    eligible = set(run.profile_of["record_key"].to_pylist())
    left_out = {"clickstream/cookie:c900001", "mailchimp/member:m900001", "zendesk/user:z900001"}
    assert not eligible & left_out
    assert {"mysql/customer:900001", "mysql/order:900001"} <= eligible
    linked = {key for pair in links_of(run.links) for key in pair}
    assert not linked & left_out


def test_repeat_guest_records_are_linked_with_one_score(run: LinkRun) -> None:
    found = links_of(run.links)
    first = found[("mysql/order:900010", "mysql/order:900011")]
    further = found[("mysql/order:900010", "mysql/order:900012")]
    assert first["match_probability"] >= 0.99
    assert further["match_weight"] == first["match_weight"]
    assert further["contributions"] == first["contributions"]
    assert ("mysql/order:900011", "mysql/order:900012") not in found  # a star, not a clique
    assert ("mysql/order:900010", "zendesk/user:z900010") in found


def test_links_follow_the_contract(run: LinkRun) -> None:
    links = run.links
    assert links.schema == contract.LINKS
    rows = links.to_pylist()
    assert all(r["left_key"] < r["right_key"] for r in rows)
    assert all(r["match_probability"] >= 0.99 for r in rows)
    keys = [(r["left_key"], r["right_key"]) for r in rows]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    summary = run.summary()
    assert summary["comparisons"] == sum(summary["blocking_rules"].values()) > 0
    assert summary["training_rules"], "at least one EM block was usable"
    assert json.loads(run.model)["comparisons"], "the model JSON lists m/u per comparison"


def _approx(value: Any) -> Any:
    """``value`` (parsed JSON) with every float compared to 1e-9 relative."""
    if isinstance(value, float):
        return pytest.approx(value, rel=1e-9)
    if isinstance(value, dict):
        return {key: _approx(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_approx(item) for item in value]
    return value


def test_same_input_same_links_in_any_order(records: pa.Table, run: LinkRun) -> None:
    again = link_run(COMPUTE, records, IDENTITY)
    assert again.links.equals(run.links)
    # The same model: its parameters equal but for the last bits of a float (the engine sums
    # EM's expectations in parallel, in no fixed order).
    assert json.loads(again.model) == _approx(json.loads(run.model))
    shuffled = records.take(pa.array(range(records.num_rows - 1, -1, -1)))
    assert link(COMPUTE, shuffled, IDENTITY).equals(run.links)


def test_the_threshold_comes_from_the_settings(records: pa.Table, run: LinkRun) -> None:
    loose = IdentitySettings(match_probability=0.5)
    looser = link(COMPUTE, records, loose)
    assert looser.num_rows >= run.links.num_rows
    assert min(looser["match_probability"].to_pylist()) >= 0.5
    strict = set(links_of(run.links))
    assert strict <= set(links_of(looser))


def test_the_training_values_come_from_the_settings(records: pa.Table, run: LinkRun) -> None:
    """Seed, u sample and training-block minimums are settings, not constants: a sample of
    u smaller than all pairs gives another model, another seed another sample of that size,
    and a block minimum above every block's size leaves EM no block to train on."""
    sampled = link_run(COMPUTE, records, IdentitySettings(u_sample_pairs=2_000))
    assert sampled.model != run.model
    reseeded = link_run(COMPUTE, records, IdentitySettings(u_sample_pairs=2_000, training_seed=7))
    assert reseeded.model != sampled.model
    assert run.training_rules
    untrained = link_run(COMPUTE, records, IdentitySettings(min_training_pairs=10**9))
    assert untrained.training_rules == ()
    with pytest.raises(ValueError, match="prior_recall"):
        IdentitySettings(prior_recall=0)


def _one_edit_apart(a: str, b: str) -> bool:
    """At most one insertion, deletion, substitution or swap of neighbours (brute force)."""
    if a == b:
        return True
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        swapped = len(diff) == 2 and diff[1] == diff[0] + 1
        return len(diff) == 1 or (swapped and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    shorter, longer = sorted((a, b), key=len)
    return len(longer) - len(shorter) == 1 and any(
        longer[:i] + longer[i + 1 :] == shorter for i in range(len(longer))
    )


def _email_level(left: str, right: str) -> int:
    """The email comparison's level of two email keys, as its SQL words them, pair by pair."""
    local_l, local_r = left.split("@")[0], right.split("@")[0]
    digits_l, digits_r = (re.sub("[^0-9]", "", x) for x in (local_l, local_r))
    if left == right:
        return 0
    if local_l == local_r:
        return 1
    if local_l[:1] == local_r[:1] and digits_l == digits_r and _one_edit_apart(local_l, local_r):
        return 2
    return 3 if digits_l == digits_r and digits_l else 4


def test_the_email_levels_pairs_are_counted_as_the_comparison_scores_them() -> None:
    """Every pair of profiles with an email on both sides counts once, in the first email level
    that holds; the counts equal the levels of each pair worked out one by one."""
    rng = random.Random(5)
    stems = ["anna.berg", "anan.berg", "ana.berg", "anna.brg", "naan.berg", "jo", "oj", "j"]
    emails = [
        f"{stem}{digits}@{domain}"
        for stem in stems
        for digits in ("", "7", "77", "1977")
        for domain in ("example.org", "mail.test")
    ]
    keys = [rng.choice([*emails, None]) for _ in range(400)]  # repeats: several profiles a key
    profiles = pa.table(
        {
            "email_key": keys,
            "email_local": [k and k.split("@")[0] for k in keys],
            "email_digits": [k and re.sub("[^0-9]", "", k.split("@")[0]) for k in keys],
        }
    )
    expected = [0] * 5
    present = [k for k in keys if k is not None]
    for i, left in enumerate(present):
        for right in present[i + 1 :]:
            expected[_email_level(left, right)] += 1
    with COMPUTE.local() as local:
        local.load("profiles", profiles)
        counted = email_level_pairs(local, "profiles")
    assert list(counted) == expected
    assert all(expected)  # every level is met: the case proves each count


def test_the_email_u_is_counted_and_the_sample_sets_the_rest(records: pa.Table) -> None:
    """The email comparison's u are its levels' shares of all pairs whatever the random
    sample's size; the other comparisons' u come from the sample, so they move with it."""

    def u_values(pairs: int) -> dict[str, list[Any]]:
        model = json.loads(link_run(COMPUTE, records, IdentitySettings(u_sample_pairs=pairs)).model)
        return {
            c["output_column_name"]: [
                level.get("u_probability")
                for level in c["comparison_levels"]
                if not level.get("is_null_level")
            ]
            for c in model["comparisons"]
        }

    small, large = u_values(1_000), u_values(50_000)
    assert small["email"] == large["email"]
    assert math.isclose(sum(u for u in small["email"] if u is not None), 1.0)
    assert small["name"] != large["name"]


def test_too_few_records_give_no_links() -> None:
    one = pa.Table.from_pylist(CASES[:1], schema=contract.RECORDS)
    assert link(COMPUTE, one, IDENTITY).equals(contract.LINKS.empty_table())
    empty = contract.RECORDS.empty_table()
    assert link(COMPUTE, empty, IDENTITY).num_rows == 0


def test_without_shared_identifiers_the_model_still_runs() -> None:
    """No two profiles share an email or phone: no prior rule, no EM block; λ stays at one
    match among all pairs, and nothing that weak links."""
    background, _ = bench().synthetic_records(300, seed=3)
    blank = pa.nulls(background.num_rows, pa.string())
    anonymous = background.set_column(
        background.schema.get_field_index("phone"), "phone", blank
    ).set_column(background.schema.get_field_index("email_key"), "email_key", blank)
    run = link_run(COMPUTE, anonymous, IDENTITY)
    assert run.training_rules == ()
    assert run.profiles > 100 and run.comparisons > 0
    assert run.links.schema == contract.LINKS
    assert run.links.num_rows == 0


def test_bad_input_is_named() -> None:
    table = pa.Table.from_pylist(CASES, schema=contract.RECORDS)
    with pytest.raises(DataError, match=r"\['phone'\]"):
        link(COMPUTE, table.drop_columns(["phone"]), IDENTITY)
    doubled = pa.concat_tables([table, table.slice(0, 1)])
    with pytest.raises(DataError, match="record_key must be unique"):
        link(COMPUTE, doubled, IDENTITY)


@pytest.mark.slow
def test_febrl4_f1() -> None:
    """FEBRL4 (5,000 + 5,000 records, 5,000 true pairs) through link, clustered, scored."""
    result = bench().evaluate_febrl("febrl4", Settings())
    assert result["f1"] >= 0.99, result
    assert result["blocking_recall"] >= 0.99, result


@pytest.mark.slow
def test_precision_at_a_production_like_scale() -> None:
    """~110k records of 70k people, common names shared by many, households sharing address
    and phone: training blocks must hold the same person, not namesakes or housemates."""
    result = bench().evaluate_synthetic(70_000, Settings())
    assert result["input_records"] > 100_000 and result["records"] > 90_000
    assert result["links"] > 10_000
    assert result["link_precision"] >= 0.99, result
    assert result["cluster_f1"] >= 0.99, result  # with the account links


def _namesakes(count: int) -> pa.Table:
    """``count`` guest orders of namesakes at one email domain, sharing nothing else."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    rows = [
        record(
            f"mysql/order:{700000 + i}",
            email_key=f"anna.berger.{letters[i]}{letters[-1 - i]}@example.org",
            first_name="anna",
            last_name="berger",
        )
        for i in range(count)
    ]
    return pa.Table.from_pylist(rows, schema=contract.RECORDS)


def test_a_block_larger_than_max_block_size_is_left_out_of_its_rule() -> None:
    """Blocks of one common name at one email domain grow with the square of the population:
    past identity.max_block_size the rule leaves the block out (other rules still apply)."""
    rule = "phonetic names + email domain"
    within = link_run(COMPUTE, _namesakes(12), IdentitySettings(max_block_size=12))
    assert dict(within.blocking_rules)[rule] == 12 * 11 // 2
    beyond = link_run(COMPUTE, _namesakes(12), IdentitySettings(max_block_size=11))
    assert dict(beyond.blocking_rules)[rule] == 0


def _sql_truth(expression: str, *values: str | None) -> object:
    """An SQL expression over ``a``, ``b``, … (VARCHAR) evaluated by the session DuckDB."""
    names = "abcd"[: len(values)]
    with COMPUTE.local() as local:
        columns = ", ".join(f"CAST(? AS VARCHAR) AS {name}" for name in names)
        return local.rows(f"SELECT {expression} FROM (SELECT {columns})", list(values))[0][0]


@pytest.mark.parametrize(
    ("left", "right", "one"),
    [
        ("anna.smith@gmail.com", "anna.smith@gmail.com", True),
        ("annasmith@gmail.com", "anna.smith@gmial.com", True),  # the key folds gmail's dots
        ("the.smiths@web.de", "the.smiths@wbe.de", True),
        ("the.smiths@web.de", "the.smtihs@web.de", True),
        ("anna.smith@gmail.com", "anna.smith7@gmial.com", False),
        ("anna@gmail.com", "bo@gmail.com", False),
        (None, "bo@gmail.com", False),
        ("", "", False),
    ],
)
def test_one_mailbox_allows_one_typo_in_the_address(
    left: str | None, right: str | None, one: bool
) -> None:
    """The household guard's "same mailbox": the same key, or one typo apart — a mistyped
    domain keeps the dots the key folds away at the real one. Never null."""
    assert _sql_truth(_one_mailbox_sql("a", "b"), left, right) is one


@pytest.mark.parametrize(
    ("dates", "mds", "one"),
    [
        (("1980-04-12", "1980-04-12"), ("04-12", "04-12"), True),
        (("1980-04-12", "1980-04-21"), ("04-12", "04-21"), True),  # a mistyped day
        (("1980-04-12", "1981-05-12"), ("04-12", "05-12"), False),
        ((None, "1980-04-12"), ("04-12", "04-12"), True),  # Mailchimp's birthday has no year
        ((None, "1980-04-12"), ("04-12", "05-12"), False),
        ((None, None), (None, None), False),
    ],
)
def test_one_birthday_is_two_of_three_parts_or_month_and_day(
    dates: tuple[str | None, str | None], mds: tuple[str | None, str | None], one: bool
) -> None:
    assert _sql_truth(_one_birthday_sql("a", "b", "c", "d"), *dates, *mds) is one


def test_contributions_are_json_of_the_compared_comparisons() -> None:
    """Levels -1 (no value on a side) are left out, the term-frequency adjustment is added,
    a weight that is not finite is null (as JSON has no infinity), none compared is {}."""
    gammas = {c: [-1, -1] for c in COMPARISONS} | {"name": [2, -1], "phone": [0, -1]}
    weights = {c: [0.5, 0.5] for c in COMPARISONS} | {"phone": [float("-inf"), 1.0]}
    page = pa.table(
        {f"gamma_{c}": pa.array(gammas[c], pa.int8()) for c in COMPARISONS}
        | {f"mw_{c}": weights[c] for c in COMPARISONS}
        | {"mw_tf_adj_name": [0.25, None]}
    )
    with COMPUTE.local() as local:
        local.register("page", page)
        rows = local.rows(f"SELECT {_contributions_sql(page.schema.names)} FROM page")
    assert [json.loads(text) for (text,) in rows] == [{"name": 0.75, "phone": None}, {}]
