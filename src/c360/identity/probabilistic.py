"""Stage 3 of identity: probabilistic links (Fellegi-Sunter, trained and scored by Splink).

Deterministic links join records that share an identifier; this stage finds the records of one
person that share none — a guest order with a mistyped email, a support user without the
account's email — by weighing how well name, phone, email, address, postcode or city and birth date
agree. One Splink model, written once, runs on DuckDB (embedded, in-process) or Spark
(``compute.engine``): its input is prepared here in an in-process session of the compute swap
point, so both engines score the same columns and give the same links, and the swap point hands
over Splink's database API for the configured engine (``Compute.linkage``).

**Who takes part.** A record with at least two of: a name (first or last), a phone, an email
key, a birth date, an address or postcode. Cookies, email-only newsletter members and other
records with less to weigh are left to the deterministic links.

**Profiles, not records.** Most records repeat their attributes exactly — every order of a
customer carries the same name, address and phone — so Splink sees each distinct *profile*
(customer_id plus every attribute) once, through its smallest record key:

- records sharing a profile *and a customer_id* are joined by that id already (deterministic);
  only the first takes part;
- records sharing a profile *without* a customer_id (repeat guest checkouts) are linked too:
  the second record takes part as a *twin* that meets only the first one, and each further
  record is linked to the first with the twin's score (same attributes, same score).

**Guard.** Records holding different customer_ids are never compared, so never linked: two
accounts do not merge on probabilistic evidence alone. Records of the same account are not
compared either (their account links them). Every candidate pair therefore has a record without
an account; each blocking rule carries this condition, and the output is filtered on it again.

**Training, without labels**, every sample hash-seeded (``identity.training_seed``), so a run is
reproducible:

1. *u* (how often a level occurs among non-matches) from ``identity.u_sample_pairs`` random
   profile pairs (``estimate_u_using_random_sampling``), but the email comparison's, counted
   over every pair of profiles (:func:`email_level_pairs`): a sample does not see its levels
   of one person's profiles (the same digits in another address) once the population is large;
2. the prior λ (probability that two random profiles match) from rules that admit few false
   matches — same email key, same phone — assuming they find ``identity.prior_recall`` of matches;
3. *m* (how often a level occurs among matches) by expectation maximisation on blocks with a
   high share of true matches (:data:`TRAINING_RULES`): same email key *and* phonetic first name;
   same phone *and* first name (a mailbox or a phone alone also pairs the people of one
   household, and EM, seeing them agree on address, phone and surname, learns "same phone,
   other first name" as a match: a 5 %-shared world lost 0.7 points of precision); same
   postcode and birth date. A
   block is used only when most of its pairs agree on a name part (:func:`_training_rules`).
   Never first name + surname: among a million records such a block is dominated by different
   people sharing a common name, and EM learns "same name" as the definition of a match
   (cluster F1 fell to 0.39 in a measurement here).

**Households.** People of one household share address, postcode and often a phone; as separate
comparisons their agreement would outweigh the different first names. Phone and address
therefore have a level of their own for "same value, other first name", whose weight the data
decide: little where households share (c360's data), much where first names are merely
corrupted (FEBRL). Levels no training pair shows keep a small starting m (:data:`_UNSEEN_M`).

**Blocking for prediction** (:data:`BLOCKING_RULES`, fuzzy keys so one typo does not hide a
pair): phone; email local part; address + city; house number + postcode; Soundex codes of
first and last name (precomputed with jellyfish, so both engines see the same codes) with the
email domain, the birthday or the birth year, or swapped; a Soundex code with the birth date or
the postcode; postcode + birth date. A rule on attributes many people share makes blocks that
grow with the population, and pairs with its square (one common name at gmail.com: mostly
namesakes): a block of more than ``identity.max_block_size`` profiles is left out of its rule,
so the pairs stay linear in the population; the person's records still meet through the rules
on their own identifiers (phone, email local part, address, names + email digits), whose
blocks hold one person's or household's profiles and are capped only far higher
(``identity.max_identifier_block_size``: a switchboard phone, ``info@``).

**Shared mailboxes.** A pair on one email key (or two keys one typo apart) whose first names
clearly differ, birth dates not saying one person, is not linked (:func:`_household_sql`):
the deterministic guard's
contradiction applied pair by pair, since everything else such a pair agrees on is what a
household shares.

**Output.** ``LINKS`` rows of kind ``probabilistic``, evidence ``splink``, with Splink's match
weight and probability and ``contributions``: JSON ``{comparison: log2 Bayes factor}`` for each
comparison with values on both sides (term-frequency adjustment included), so the match weight
is log2(λ / (1 - λ)) plus their sum. Only pairs with match probability ≥
``identity.match_probability``; ``left_key < right_key``; sorted. :func:`link_run` also returns
the trained model (Splink's JSON: m and u per comparison level, λ, rules), the number of pairs
compared and what each blocking rule contributed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from c360.config import IdentitySettings
from c360.contracts import identity as contract
from c360.contracts.compute import Compute, Linkage, LocalSql
from c360.errors import DataError
from c360.identity.records import keyed_links_sql, load_in

# The tuning values (seed, u sample, prior recall, training block minimums) are settings:
# IdentitySettings.training_seed, u_sample_pairs, prior_recall, min_training_pairs and
# min_named_share.
# EM training rules, in the order they run: blocks with a high share of true matches.
TRAINING_RULES = (
    # A household shares a mailbox: the first name's phonetic code keeps its people apart.
    "l.email_key = r.email_key AND l.first_code = r.first_code",
    "l.phone = r.phone AND l.first_name = r.first_name",
    "l.postcode = r.postcode AND l.birth_date = r.birth_date",
)
# Deterministic rules for the prior λ.
PRIOR_RULES = ("l.email_key = r.email_key", "l.phone = r.phone")

# At least one side has no account; twins (second records of a guest profile) only meet their
# representative, through the first rule.
_GUARD = "(l.customer_id IS NULL OR r.customer_id IS NULL) AND l.twin = 0 AND r.twin = 0"


@dataclass(frozen=True)
class BlockingRule:
    """Candidate pairs for prediction: profiles equal on every column of ``key`` (and meeting
    ``where``). A *block* is the profiles sharing one key value; a block larger than the rule's
    cap is left out of the rule (:func:`_flag_large_blocks`): ``identity.max_block_size`` for
    a key of attributes many people share (names, birthdays, places), the larger
    ``identity.max_identifier_block_size`` for a key that is one person's or one household's
    own (a phone, an email's local part, an address), whose block holds all their profiles."""

    name: str
    key: tuple[str, ...]
    where: str = ""
    shared: bool = True  # the key is attributes many people share, not an identifier

    def cap(self, settings: IdentitySettings) -> int:
        return settings.max_block_size if self.shared else settings.max_identifier_block_size

    def condition(self) -> str:
        equal = [f"l.{column} = r.{column}" for column in self.key]
        return " AND ".join([*equal, self.where] if self.where else equal)


BLOCKING_RULES: tuple[BlockingRule, ...] = (
    BlockingRule("same profile (repeat records without an account)", ("profile",), shared=False),
    BlockingRule("phone", ("phone",), shared=False),
    BlockingRule("email local part", ("email_local",), shared=False),
    # A street line alone recurs in every town (Kerkstraat 12): blocked on it alone, its pairs
    # grew with the square of the population (109M at a million customers in the simulator).
    BlockingRule("address + city", ("address", "city")),
    BlockingRule("house number + postcode", ("house", "postcode"), shared=False),
    BlockingRule("phonetic names + email domain", ("first_code", "last_code", "email_domain")),
    BlockingRule(  # a second address of the same person: jan.visser765@work.com, jan_visser765@…
        "phonetic names + email digits",
        ("first_code", "last_code", "email_digits"),
        "l.email_digits <> ''",
        shared=False,
    ),
    BlockingRule("phonetic names + birth day and month", ("first_code", "last_code", "birth_md")),
    BlockingRule("phonetic names + birth year", ("first_code", "last_code", "birth_year")),
    BlockingRule(  # the names' codes in order make the key; the condition keeps them crossed
        "phonetic names swapped",
        ("names_sorted",),
        "l.first_code = r.last_code AND l.last_code = r.first_code",
    ),
    BlockingRule("phonetic first name + birth date", ("first_code", "birth_date")),
    BlockingRule("phonetic last name + birth date", ("last_code", "birth_date")),
    BlockingRule("postcode + birth date", ("postcode", "birth_date")),
    BlockingRule("phonetic last name + postcode", ("last_code", "postcode")),
    BlockingRule("phonetic first name + postcode", ("first_code", "postcode")),
)


def _large_column(rule: int) -> str:
    """The profiles' column that is 1 where the profile's block under rule ``rule`` is larger
    than the rule's cap (:func:`_flag_large_blocks`)."""
    return f"large_{rule}"


def _rule_sql(rule: int) -> str:
    """Blocking rule ``rule`` as Splink's SQL: its condition, blocks within its cap, and (but
    for the first) the guard."""
    sql = f"{BLOCKING_RULES[rule].condition()} AND l.{_large_column(rule)} = 0"
    return sql if rule == 0 else f"{sql} AND {_GUARD}"


COMPARISONS = ("name", "phone", "email", "address", "postcode", "birth_date")

_PROFILE_COLUMNS = (
    "customer_id",
    "email_key",
    "phone",
    "first_name",
    "last_name",
    "address",
    "postcode",
    "city",
    "birth_date",
    "birth_md",
)


@dataclass(frozen=True)
class LinkRun:
    """One probabilistic linkage run: the links and what the model learned and compared."""

    links: pa.Table  # LINKS, kind "probabilistic"
    model: str  # Splink's model JSON: comparisons with m/u per level, λ, blocking rules
    records: int  # records that took part (enough attributes)
    profiles: int  # distinct profiles Splink compared (twins included)
    comparisons: int  # profile pairs scored
    blocking_rules: tuple[tuple[str, int], ...]  # (rule, pairs it added), in rule order
    training_rules: tuple[str, ...]  # EM blocks used (those with enough pairs)
    seconds: dict[str, float] = field(default_factory=dict)
    # When asked for (evaluation): the candidate pairs blocking produced (left_key, right_key,
    # representatives' keys) and each eligible record's profile (record_key, profile).
    blocked_pairs: pa.Table | None = None
    profile_of: pa.Table | None = None
    # How many links there are when ``links`` is not handed back as Arrow (:func:`link_in`).
    link_count: int | None = None

    def summary(self) -> dict[str, Any]:
        """The run report's view: counts, rule counts, timings (the model JSON apart)."""
        return {
            "records": self.records,
            "profiles": self.profiles,
            "comparisons": self.comparisons,
            "links": self.links.num_rows if self.link_count is None else self.link_count,
            "blocking_rules": dict(self.blocking_rules),
            "training_rules": list(self.training_rules),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def link(compute: Compute, records: pa.Table, settings: IdentitySettings) -> pa.Table:
    """Probabilistic links between ``records`` (``RECORDS``) as ``LINKS`` rows."""
    return link_run(compute, records, settings).links


def link_run(
    compute: Compute, records: pa.Table, settings: IdentitySettings, *, blocked_pairs: bool = False
) -> LinkRun:
    """Train a Fellegi-Sunter model on ``records`` and link them; see the module docs.

    The input is prepared in an in-process session of ``compute``; Splink trains and scores
    on ``compute``'s engine. ``blocked_pairs``: also return the candidate pairs blocking
    produced (to measure its recall on labelled data).
    """
    _check_columns(records)
    with compute.local() as local:
        load_in(local, records.select(["record_key", *_PROFILE_COLUMNS]))
        run = _run(compute, local, settings, blocked_pairs)
        links = local.table(keyed_links_sql("probabilistic_links")).cast(contract.LINKS)
    return replace(run, links=links, link_count=None)


def link_in(compute: Compute, local: LocalSql, settings: IdentitySettings) -> LinkRun:
    """:func:`link_run` on the table ``records`` of ``local``; the links become its table
    ``probabilistic_links`` (LINKS, sorted) rather than Arrow (``LinkRun.links`` is empty,
    ``LinkRun.link_count`` says how many)."""
    return _run(compute, local, settings, False)


def _run(compute: Compute, local: LocalSql, settings: IdentitySettings, keep: bool) -> LinkRun:
    timings: dict[str, float] = {}
    started = time.perf_counter()
    try:
        prepared = _prepare(local, settings, keep_profiles=keep)
        timings["prepare"] = time.perf_counter() - started
        local.execute(f"CREATE OR REPLACE TEMP TABLE probabilistic_pairs ({_PAIR_COLUMNS})")
        if prepared.profiles < 2:
            _links_in(local)
            return LinkRun(
                _empty_links(), "{}", prepared.records, prepared.profiles, 0, (), (), link_count=0
            )
        training = _training_rules(local, settings)
        shared = _shares_identifiers(local)
        with _quiet_splink(), compute.linkage(local, "profiles") as linkage:
            run = _score(linkage, local, prepared, training, shared, settings, timings, keep)
        return replace(run, link_count=_links_in(local))
    finally:
        temporary = ("profile_rows", "profiles", "ranked", "eligible", "profile_members")
        for table in (*temporary, "probabilistic_pairs"):
            local.execute(f"DROP TABLE IF EXISTS {table}")


@contextmanager
def _quiet_splink() -> Iterator[None]:
    """Splink's progress and "level not observed" notes stay out of c360's output."""
    splink_logger = logging.getLogger("splink")
    level = splink_logger.level
    splink_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        splink_logger.setLevel(level)


def _check_columns(records: pa.Table) -> None:
    needed = {"record_key", *_PROFILE_COLUMNS}
    missing = sorted(needed - set(records.schema.names))
    if missing:
        raise DataError(
            f"identity probabilistic links: the records lack column(s) {missing}; "
            "they must follow c360.contracts.identity.RECORDS"
        )
    keys = records["record_key"]
    if keys.null_count or pc.count_distinct(keys).as_py() != records.num_rows:
        raise DataError(
            "identity probabilistic links: record_key must be unique and not null "
            "(<source>/<record_type>:<record_id>)"
        )


# --- preparation: eligible records → profiles with the derived blocking columns -------------


@dataclass(frozen=True)
class _Prepared:
    records: int  # eligible records
    profiles: int  # rows of Splink's input, the session's table "profiles": one per profile,
    # plus the twins
    profile_of: pa.Table | None  # (record_key, profile) of every eligible record, if asked


def _text(column: str) -> str:
    return f"nullif(trim({column}), '')"


def _prepare(
    local: LocalSql, settings: IdentitySettings, *, keep_profiles: bool = False
) -> _Prepared:
    """Eligible records of ``local``'s table ``records`` grouped into profiles, with the
    columns blocking and comparing need: the table ``profiles`` of ``local``.

    Runs in-process (the records are an Arrow table already) whichever engine scores, so both
    engines see identical input.
    """
    local.execute(
        f"""
        CREATE TEMP TABLE eligible AS
        SELECT pos, customer_id, email_key, phone, first_name, last_name, address,
               postcode, city, birth_date,
               coalesce(strftime(birth_date, '%m-%d'), birth_md) AS birth_md
        FROM (
            SELECT rowid AS pos, customer_id, {_text("email_key")} AS email_key,
                   {_text("phone")} AS phone, {_text("first_name")} AS first_name,
                   {_text("last_name")} AS last_name, {_text("address")} AS address,
                   {_text("postcode")} AS postcode, {_text("city")} AS city, birth_date,
                   {_text("birth_md")} AS birth_md
            FROM records
        )
        WHERE (first_name IS NOT NULL OR last_name IS NOT NULL)::INTEGER
              + (phone IS NOT NULL)::INTEGER + (email_key IS NOT NULL)::INTEGER
              + (birth_date IS NOT NULL)::INTEGER
              + (address IS NOT NULL OR postcode IS NOT NULL)::INTEGER >= 2
        """
    )
    local.execute(
        f"""
        CREATE TEMP TABLE ranked AS
        SELECT *,
               row_number() OVER profile_window AS member,
               first_value(pos) OVER profile_window AS profile
        FROM eligible
        WINDOW profile_window AS (PARTITION BY {", ".join(_PROFILE_COLUMNS)} ORDER BY pos)
        """
    )
    names = local.table(
        """
        SELECT DISTINCT name FROM (
            SELECT first_name AS name FROM ranked UNION ALL SELECT last_name FROM ranked
        ) WHERE name IS NOT NULL
        """
    )
    local.register("name_codes", _phonetic_codes(names["name"]))
    local.execute(
        """
        CREATE TEMP TABLE profile_rows AS
        SELECT r.pos, r.profile, CAST(r.member - 1 AS INTEGER) AS twin, r.customer_id,
               r.first_name, r.last_name, r.first_name || ' ' || r.last_name AS full_name,
               f.code AS first_code, l.code AS last_code,
               r.email_key, split_part(r.email_key, '@', 1) AS email_local,
               nullif(split_part(r.email_key, '@', 2), '') AS email_domain,
               regexp_replace(split_part(r.email_key, '@', 1), '[^0-9]', '', 'g') AS email_digits,
               r.phone, r.address,
               nullif(regexp_extract(r.address, '[0-9]+'), '') AS house,
               nullif(trim(regexp_replace(r.address, '[0-9]+', '')), '') AS street, r.postcode,
               r.city,
               strftime(r.birth_date, '%Y-%m-%d') AS birth_date, r.birth_md,
               CAST(year(r.birth_date) AS VARCHAR) AS birth_year,
               least(f.code, l.code) || ' ' || greatest(f.code, l.code) AS names_sorted
        FROM ranked r
        LEFT JOIN name_codes f ON f.name = r.first_name
        LEFT JOIN name_codes l ON l.name = r.last_name
        WHERE r.member = 1 OR (r.member = 2 AND r.customer_id IS NULL)
        """
    )
    local.unregister("name_codes")
    _flag_large_blocks(local, settings)
    eligible = _scalar(local, "SELECT count(*) FROM eligible")
    local.execute(
        """
        CREATE OR REPLACE TEMP TABLE profile_members AS
        SELECT pos, profile FROM ranked WHERE member > 2 AND customer_id IS NULL
        """
    )
    profile_of = (
        local.table(
            """
            SELECT r.record_key, p.record_key AS profile FROM ranked x
            JOIN records r ON r.rowid = x.pos JOIN records p ON p.rowid = x.profile
            ORDER BY x.pos
            """
        )
        if keep_profiles
        else None
    )
    profiles = _scalar(local, "SELECT count(*) FROM profiles")
    return _Prepared(eligible, profiles, profile_of)


def _flag_large_blocks(local: LocalSql, settings: IdentitySettings) -> None:
    """The table ``profiles``: ``profile_rows`` in record-key order with, per blocking rule, the
    column ``large_<i>``: 1 where the profile's block under the rule holds more than the rule's
    cap (:class:`BlockingRule`). The large blocks are found by grouping the rule's key columns
    alone, then joined back in the one pass that sorts: counting in windows carried every
    profile's columns through fifteen sorts (9 GB spilled at a million)."""
    joins, flags = [], []
    for i, rule in enumerate(BLOCKING_RULES):
        keys = ", ".join(rule.key)
        present = " AND ".join(f"{column} IS NOT NULL" for column in rule.key)
        local.execute(
            f"CREATE OR REPLACE TEMP TABLE {_large_column(i)} AS SELECT {keys} FROM profile_rows "
            f"WHERE {present} GROUP BY {keys} HAVING count(*) > {rule.cap(settings)}"
        )
        on = " AND ".join(f"b{i}.{column} = p.{column}" for column in rule.key)
        joins.append(f"LEFT JOIN {_large_column(i)} b{i} ON {on}")
        flags.append(f"CAST(b{i}.{rule.key[0]} IS NOT NULL AS INTEGER) AS {_large_column(i)}")
    local.execute(
        f"CREATE OR REPLACE TEMP TABLE profiles AS SELECT p.*, {', '.join(flags)} "
        f"FROM profile_rows p {' '.join(joins)} ORDER BY p.pos"
    )
    for table in ["profile_rows", *(_large_column(i) for i in range(len(BLOCKING_RULES)))]:
        local.execute(f"DROP TABLE {table}")


def _phonetic_codes(names: pa.ChunkedArray) -> pa.Table:
    """Soundex of each distinct name (None when the name has no letter)."""
    import jellyfish

    values = names.to_pylist()
    codes = [jellyfish.soundex(v) if any(c.isalpha() for c in v) else None for v in values]
    return pa.table({"name": pa.array(values, pa.string()), "code": pa.array(codes, pa.string())})


def _scalar(local: LocalSql, sql: str) -> int:
    rows = local.rows(sql)
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def _shares_identifiers(local: LocalSql) -> bool:
    """Whether two profiles share an email key or a phone (the prior's rules find pairs)."""
    return any(
        _scalar(
            local,
            f"SELECT count(*) FROM (SELECT {column} FROM profiles WHERE {column} IS NOT NULL "
            f"GROUP BY {column} HAVING count(*) > 1)",
        )
        for column in ("email_key", "phone")
    )


def _training_rules(local: LocalSql, settings: IdentitySettings) -> tuple[str, ...]:
    """The EM rules whose blocks hold enough pairs, most of them of one person.

    EM fits two classes to what it is given; on a block mostly of different people (a
    postcode and birth date shared by chance, where only account records carry a birth date)
    it learns what those people share as a match. The share of pairs agreeing on a name part
    stands in for the block's share of matches: a block is used when it is at least
    ``identity.min_named_share`` (and it holds ``identity.min_training_pairs``: smaller ones
    teach EM nothing).
    """
    used = []
    for rule in TRAINING_RULES:
        row = local.rows(
            f"""
            SELECT count(*), count(*) FILTER (
                WHERE l.first_name = r.first_name OR l.last_name = r.last_name
            )
            FROM profiles l JOIN profiles r ON {rule} AND l.pos < r.pos
            """
        )[0]
        pairs, named = int(row[0]), int(row[1])
        enough = pairs >= settings.min_training_pairs
        if enough and named >= settings.min_named_share * pairs:
            used.append(rule)
    return tuple(used)


def _two_of_three(left: str, right: str) -> str:
    """SQL: two dates (YYYY-MM-DD) agreeing on two of year, month and day: one mistyped part."""
    return (
        " + ".join(
            f"(CASE WHEN substr({left}, {start}, {n}) = substr({right}, {start}, {n})"
            " THEN 1 ELSE 0 END)"
            for start, n in ((1, 4), (6, 2), (9, 2))
        )
        + " >= 2"
    )


_TWO_OF_THREE = _two_of_three("birth_date_l", "birth_date_r")


# One typo (a letter wrong, missing, extra, or two swapped): jon.smtih1572 is jon.smith1572,
# but jon.smith6948 is a namesake — a similarity measure would let the shared name dominate.
# The cheap conditions first: Damerau-Levenshtein is slow and most pairs fail them.
_ONE_TYPO = (
    "substr({column}_l, 1, 1) = substr({column}_r, 1, 1)"
    " AND abs(length({column}_l) - length({column}_r)) <= 1"
    " AND damerau_levenshtein({column}_l, {column}_r) <= 1"
)


# First names below this Jaro-Winkler similarity are two people's (graph.py's threshold).
_OTHER_FIRST_NAME = 0.8

# Starting m of the levels that agree only through a household-shared value; EM replaces it
# where training pairs show the level, otherwise it stays (rarely seen among matches).
_UNSEEN_M = 0.001


# --- the Splink model -------------------------------------------------------------------------


def _comparisons() -> list[Any]:
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    # One comparison over both name parts, so a swap (surname typed as first name) is one
    # level rather than two disagreements.
    name = cl.CustomComparison(
        output_column_name="name",
        comparison_levels=[
            cll.CustomLevel(
                "(first_name_l IS NULL OR first_name_r IS NULL)"
                " AND (last_name_l IS NULL OR last_name_r IS NULL)"
            ).configure(is_null_level=True, label_for_charts="no name part on both sides"),
            cll.ExactMatchLevel("full_name", term_frequency_adjustments=True),
            cll.ColumnsReversedLevel("first_name", "last_name", symmetrical=True),
            cll.And(
                cll.JaroWinklerLevel("first_name", 0.92), cll.JaroWinklerLevel("last_name", 0.92)
            ),
            cll.And(
                cll.JaroWinklerLevel("first_name", 0.8), cll.JaroWinklerLevel("last_name", 0.8)
            ),
            # One part agrees, the other does not: a household member, a namesake, or (where
            # the data show it) a married name or a corrupted first name.
            cll.ExactMatchLevel("last_name", term_frequency_adjustments=True).configure(
                m_probability=_UNSEEN_M
            ),
            cll.ExactMatchLevel("first_name", term_frequency_adjustments=True).configure(
                m_probability=_UNSEEN_M
            ),
            cll.Or(
                cll.JaroWinklerLevel("first_name", 0.92), cll.JaroWinklerLevel("last_name", 0.92)
            ).configure(m_probability=_UNSEEN_M),
            cll.ElseLevel().configure(m_probability=_UNSEEN_M),
        ],
    )

    # A phone or address shared by people of one household: agreement on it while the first
    # names differ is its own level, so the data decide how much it weighs (little where
    # households share phones and addresses; much where a first name is merely corrupted).
    def shared(column: str) -> Any:
        return cll.And(
            cll.ExactMatchLevel(column), cll.Not(cll.JaroWinklerLevel("first_name", 0.8))
        ).configure(label_for_charts=f"same {column}, other first name", m_probability=_UNSEEN_M)

    phone = cl.CustomComparison(
        output_column_name="phone",
        comparison_levels=[
            cll.NullLevel("phone"),
            shared("phone"),
            cll.ExactMatchLevel("phone", term_frequency_adjustments=True),
            cll.LevenshteinLevel("phone", 1),
            cll.LevenshteinLevel("phone", 2),  # two wrong digits, or two swapped
            cll.ElseLevel(),
        ],
    )
    # Where: postcode, else the city (a move within the city, a postcode left out). One
    # comparison, so a postcode and its city are not counted as two independent agreements.
    postcode = cl.CustomComparison(
        output_column_name="postcode",
        comparison_levels=[
            cll.CustomLevel(
                "(postcode_l IS NULL OR postcode_r IS NULL) AND (city_l IS NULL OR city_r IS NULL)"
            ).configure(is_null_level=True, label_for_charts="no postcode or city on both sides"),
            cll.ExactMatchLevel("postcode", term_frequency_adjustments=True),
            cll.JaroWinklerLevel("postcode", 0.88),  # one digit wrong, or two swapped
            cll.ExactMatchLevel("city", term_frequency_adjustments=True).configure(
                label_for_charts="other or no postcode, same city"
            ),
            cll.ElseLevel(),
        ],
    )
    email = cl.CustomComparison(
        output_column_name="email",
        comparison_levels=[
            cll.NullLevel("email_key"),
            cll.ExactMatchLevel("email_key", term_frequency_adjustments=True),
            cll.ExactMatchLevel("email_local").configure(label_for_charts="same local part"),
            # Digits apart: jon.smith1572 and jon.smith1573 are namesakes more often than typos.
            cll.CustomLevel(
                _ONE_TYPO.format(column="email_local") + " AND email_digits_l = email_digits_r",
                "one typo in the letters of the local part",
            ),
            # Another mailbox (work, another provider) with the number the person uses.
            cll.CustomLevel(
                "email_digits_l = email_digits_r AND email_digits_l <> ''",
                "other address, same digits in the local part",
            ),
            cll.ElseLevel(),
        ],
    )
    address = cl.CustomComparison(
        output_column_name="address",
        comparison_levels=[
            cll.NullLevel("address"),
            shared("address"),
            cll.ExactMatchLevel("address"),
            cll.And(cll.ExactMatchLevel("house"), cll.JaroWinklerLevel("street", 0.88)),
            cll.JaroWinklerLevel("street", 0.88),
            cll.ElseLevel(),
        ],
    )
    birth = cl.CustomComparison(
        output_column_name="birth_date",
        comparison_levels=[
            cll.CustomLevel("birth_md_l IS NULL OR birth_md_r IS NULL").configure(
                is_null_level=True, label_for_charts="no birthday on one side"
            ),
            cll.ExactMatchLevel("birth_date"),
            cll.CustomLevel(
                "birth_md_l = birth_md_r AND (birth_date_l IS NULL OR birth_date_r IS NULL)",
                label_for_charts="same day and month, one side without year",
            ),
            cll.CustomLevel(_TWO_OF_THREE, "two of year, month and day agree"),
            cll.ElseLevel(),
        ],
    )
    return [
        name,
        phone,
        email,
        address,
        postcode,
        birth,
    ]


def _settings_creator(prior: float) -> Any:
    """The model; ``prior``: λ until trained (one match among all profile pairs)."""
    from splink import SettingsCreator

    rules: list[Any] = [_rule_sql(i) for i in range(len(BLOCKING_RULES))]
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="pos",  # the record's position (records.records_in_order)
        comparisons=_comparisons(),
        blocking_rules_to_generate_predictions=rules,
        retain_matching_columns=True,  # gives the gamma (level) columns
        retain_intermediate_calculation_columns=True,
        additional_columns_to_retain=["customer_id"],
        probability_two_random_records_match=prior,
        max_iterations=25,
        em_convergence=0.0001,
        linker_uid="c360",
    )


def _score(
    linkage: Linkage,
    local: LocalSql,
    prepared: _Prepared,
    training: tuple[str, ...],
    shared: bool,
    settings: IdentitySettings,
    timings: dict[str, float],
    keep_pairs: bool,
) -> LinkRun:
    """Train, block, predict on Splink's database API for the engine; ``linkage.table``: the
    profiles as that engine holds them (a DuckDB table name, a Spark DataFrame). The scored
    pairs go to ``local``'s table ``probabilistic_pairs``."""
    from splink import Linker

    started = time.perf_counter()
    table = linkage.db_api.register(linkage.table, dataset_display_name="profiles")
    n = prepared.profiles
    # Splink's tables (term frequencies among them) are shared through the database API's
    # cache: each linker's go when all are done.
    linkers: list[Any] = [Linker(table, _settings_creator(2 / (n * (n - 1))), log_level=None)]
    try:
        _train(linkers[0], training, shared, settings)
        model = linkers[0].misc.save_model_to_json()
        _count_email_u(local, "profiles", model)
        timings["train"] = time.perf_counter() - started
        started = time.perf_counter()
        linker: Any = Linker(table, model, log_level=None)
        linkers.append(linker)
        blocked: Any = linker.inference.compute_blocked_pairs_for_predict()
        counts = {
            int(row["match_key"]): int(row["pairs"])
            for row in blocked.query_sql(
                "SELECT match_key, count(*) AS pairs FROM {this} GROUP BY match_key"
            ).as_record_list()
        }
        pairs = None
        if keep_pairs:
            positions = blocked.query_sql(
                "SELECT join_key_l AS left_pos, join_key_r AS right_pos FROM {this}"
            ).as_pyarrow_table()
            pairs = _keyed_pairs(local, positions)
        threshold = settings.match_probability
        predicted: Any = linker.inference.predict(
            threshold_match_probability=threshold, warning_mode="never"
        )
        _pairs_in(linkage, local, predicted, threshold)
        timings["predict"] = time.perf_counter() - started
        model_json = orjson.dumps(
            linker.misc.save_model_to_json(), option=orjson.OPT_SORT_KEYS
        ).decode()
    finally:
        for created in linkers:
            created.table_management.delete_tables_created_by_splink_from_db()
    rule_counts = tuple((rule.name, counts.get(i, 0)) for i, rule in enumerate(BLOCKING_RULES))
    return LinkRun(
        links=_empty_links(),
        model=model_json,
        records=prepared.records,
        profiles=prepared.profiles,
        comparisons=sum(counts.values()),
        blocking_rules=rule_counts,
        training_rules=training,
        seconds=timings,
        blocked_pairs=pairs,
        profile_of=prepared.profile_of,
    )


def _keyed_pairs(local: LocalSql, positions: pa.Table) -> pa.Table:
    """Pairs of record positions (left_pos, right_pos) as pairs of record keys."""
    local.register("pair_positions", positions)
    try:
        return local.table(
            """
            SELECT l.record_key AS left_key, r.record_key AS right_key FROM pair_positions p
            JOIN records l ON l.rowid = p.left_pos JOIN records r ON r.rowid = p.right_pos
            """
        )
    finally:
        local.unregister("pair_positions")


def _train(linker: Any, training: Sequence[str], shared: bool, settings: IdentitySettings) -> None:
    from splink.internals.exceptions import SplinkException

    training_api = linker.training
    if shared:  # else λ stays at one match among all pairs
        try:
            training_api.estimate_probability_two_random_records_match(
                list(PRIOR_RULES), recall=settings.prior_recall
            )
        except ValueError:  # the rules find more pairs than the recall allows: a tiny input
            training_api.estimate_probability_two_random_records_match(
                list(PRIOR_RULES), recall=1.0
            )
    training_api.estimate_u_using_random_sampling(
        max_pairs=settings.u_sample_pairs,
        seed=settings.training_seed,
        min_count_per_level=None,
        num_chunks=1,
    )
    for rule in training:
        try:
            training_api.estimate_parameters_using_expectation_maximisation(
                rule, estimate_without_term_frequencies=True
            )
        except SplinkException:  # EM found nothing to learn in this block
            continue


# The email comparison's u is counted over every pair of profiles rather than sampled. Its
# levels short of an exact match (the same local part at another domain, a typo, the same digits
# in another address) hold mostly one person's profiles: among random pairs they are as rare as
# one person's profiles meeting, which falls as 1/n, so a fixed sample stops seeing them as the
# population grows (Splink then keeps a floor u while the prior λ falls, and the level's pairs
# stop linking: at a million customers 35k Zendesk users split off their accounts), and a
# sample grown with the population cost 32 s of the million's step. Counted, each level's
# pairs are group sizes (same key, same local part, same digits), the typo level's a join of
# the distinct local parts on their one-character deletions (two strings one edit apart share
# one: a substitution, an insertion or a swap of neighbours).
_EMAIL_PAIRS_SQL = """
WITH keys AS (
    SELECT email_key, any_value(email_local) AS email_local,
           any_value(email_digits) AS email_digits, count(*) AS n
    FROM {table} WHERE email_key IS NOT NULL GROUP BY email_key
),
locals AS (
    SELECT email_local, any_value(email_digits) AS email_digits, sum(n) AS n
    FROM keys GROUP BY email_local
),
deletions AS (
    SELECT email_local, email_digits, n, substr(email_local, 1, 1) AS first,
           unnest(list_prepend(email_local, list_transform(
               range(1, length(email_local) + 1),
               lambda i: substr(email_local, 1, i - 1) || substr(email_local, i + 1)))) AS variant
    FROM locals
),
typos AS (
    SELECT DISTINCT a.email_local AS l, b.email_local AS r, a.email_digits AS email_digits,
           a.n * b.n AS pairs
    FROM deletions a JOIN deletions b
      ON a.variant = b.variant AND a.first = b.first AND a.email_digits = b.email_digits
         AND a.email_local < b.email_local
),
counted AS (
    SELECT 'key' AS level, email_digits, n * (n - 1) // 2 AS pairs FROM keys
    UNION ALL SELECT 'local', email_digits, n * (n - 1) // 2 FROM locals
    UNION ALL SELECT 'typo', email_digits, pairs FROM typos
        WHERE abs(length(l) - length(r)) <= 1 AND damerau_levenshtein(l, r) <= 1
    UNION ALL SELECT 'digits', email_digits, sum(n) * (sum(n) - 1) // 2 FROM locals
        GROUP BY email_digits
    UNION ALL SELECT 'all', NULL, sum(n) * (sum(n) - 1) // 2 FROM keys
)
SELECT level, sum(pairs) AS pairs, sum(pairs) FILTER (WHERE email_digits <> '') AS with_digits
FROM counted GROUP BY level
"""


def email_level_pairs(local: LocalSql, table: str) -> tuple[int, ...]:
    """How many pairs of ``table``'s profiles fall in each level of the email comparison but
    its null level (in the comparison's order: same key, same local part, a typo, the same
    digits, anything else). Pairs with an email on both sides; a pair counts in its first
    level that holds."""
    found = {
        level: (int(pairs or 0), int(with_digits or 0))
        for level, pairs, with_digits in local.rows(_EMAIL_PAIRS_SQL.format(table=table))
    }
    same_key, _ = found.get("key", (0, 0))
    same_local, local_digits = found.get("local", (0, 0))
    typo, typo_digits = found.get("typo", (0, 0))
    _, same_digits = found.get("digits", (0, 0))
    every_pair, _ = found.get("all", (0, 0))
    levels = (
        same_key,
        same_local - same_key,
        typo,
        # the digit groups hold every pair of the levels above with digits: not again
        same_digits - local_digits - typo_digits,
    )
    return (*levels, every_pair - sum(levels))


def _count_email_u(local: LocalSql, table: str, model: dict[str, Any]) -> None:
    """The u of the email comparison's levels in ``model`` (Splink's model JSON), counted
    over every pair of profiles (:func:`email_level_pairs`). A level no pair holds keeps the
    sample's estimate (a u of 0 would make its agreement certain proof)."""
    pairs = email_level_pairs(local, table)
    total = sum(pairs)
    (email,) = [c for c in model["comparisons"] if c["output_column_name"] == "email"]
    levels = [level for level in email["comparison_levels"] if not level.get("is_null_level")]
    for level, count in zip(levels, pairs, strict=True):
        if count:
            level["u_probability"] = count / total


# --- back from profiles to records ---------------------------------------------------------


def _prediction_columns(predicted: Any) -> list[str]:
    """The columns of Splink's predictions that :func:`_pairs_sql` reads (of dozens)."""
    names = [column.unquote().name for column in predicted.columns]
    wanted = {
        "match_weight",
        "match_probability",
        *(f"{c}_{side}" for c in ("pos", "customer_id") for side in "lr"),
        *(
            f"{c}_{side}"
            for c in ("email_key", "first_name", "birth_date", "birth_md")
            for side in "lr"
        ),
        *(f"{p}_{c}" for p in ("gamma", "mw", "mw_tf_adj") for c in COMPARISONS),
    }
    return [name for name in names if name in wanted]


_PAIR_COLUMNS = (
    "left_pos BIGINT, right_pos BIGINT, match_weight DOUBLE, match_probability DOUBLE, "
    "contributions VARCHAR"
)
# Splink's predictions as a table of the session, where SQL turns them into pairs: handed over
# by the engine (copied within DuckDB; on Spark written by the executors, read from Parquet),
# so no pair passes through Python (2.8M pairs at a million customers).
_PREDICTIONS = "predictions"


def _pairs_in(linkage: Linkage, local: LocalSql, predicted: Any, threshold: float) -> None:
    """Splink's predictions → ``local``'s ``probabilistic_pairs`` (:func:`_pairs_sql`)."""
    columns = _prediction_columns(predicted)
    linkage.to_session(predicted, _PREDICTIONS, columns)
    try:
        local.execute(f"INSERT INTO probabilistic_pairs {_pairs_sql(columns)}", [threshold])
    finally:
        local.execute(f"DROP TABLE IF EXISTS {_PREDICTIONS}")


def _links_in(local: LocalSql) -> int:
    """``probabilistic_links`` (LINKS, sorted) from the pairs: a guest profile's twin link
    (representative, second record) also links every further record of the profile, with the
    twin's score (its attributes are the twin's). Returns how many."""
    local.execute(
        """
        CREATE OR REPLACE TEMP TABLE probabilistic_links AS
        SELECT left_pos, right_pos, 'probabilistic' AS kind, 'splink' AS evidence,
               match_weight, match_probability, contributions
        FROM (
            SELECT * FROM probabilistic_pairs
            UNION ALL
            SELECT p.left_pos, m.pos, p.match_weight, p.match_probability, p.contributions
            FROM probabilistic_pairs p
            JOIN profiles t ON t.pos = p.right_pos AND t.twin = 1  -- the twin link only
            JOIN profile_members m ON m.profile = p.left_pos
        ) links
        ORDER BY left_pos, right_pos
        """
    )
    return _scalar(local, "SELECT count(*) FROM probabilistic_links")


def _pairs_sql(columns: Sequence[str]) -> str:
    """Links (record keys, weight, probability, contributions) of the predictions in the
    session's table :data:`_PREDICTIONS` (of ``columns``) that reach the threshold (the
    statement's parameter), have an account on one side at most, and are no household pair
    (:func:`_household_sql`)."""
    household = _household_sql(
        "email_key_l", "email_key_r", "first_name_l", "first_name_r",
        "birth_date_l", "birth_date_r", "birth_md_l", "birth_md_r",
    )  # fmt: skip
    return f"""
        SELECT pos_l, pos_r, CAST(match_weight AS DOUBLE),
               CAST(match_probability AS DOUBLE), {_contributions_sql(columns)}
        FROM {_PREDICTIONS}
        WHERE match_probability >= ? AND (customer_id_l IS NULL OR customer_id_r IS NULL)
          AND NOT {household}
    """


def _household_sql(
    email_l: str, email_r: str, first_l: str, first_r: str,
    date_l: str, date_r: str, md_l: str, md_r: str,
) -> str:  # fmt: skip
    """SQL, never null: a pair on one mailbox (:func:`_one_mailbox_sql`) whose first names
    clearly differ, birth dates not saying one person (:func:`_one_birthday_sql`) — the
    deterministic guard's contradiction (:mod:`c360.identity.graph`, with the same
    Jaro-Winkler), pair by pair.

    Such a pair agrees on everything a household shares — mailbox, surname, address, postcode,
    often the phone — so its score is high, and the mailbox the guard refused as proof would
    join the two people all the same. A mailbox, like a phone or an address, is no evidence
    between two first names."""
    return (
        f"coalesce({first_l} IS NOT NULL AND {first_r} IS NOT NULL"
        f" AND {_one_mailbox_sql(email_l, email_r)}"
        f" AND jaro_winkler_similarity({first_l}, {first_r}) < {_OTHER_FIRST_NAME}"
        f" AND NOT {_one_birthday_sql(date_l, date_r, md_l, md_r)}, false)"
    )


def _one_mailbox_sql(left: str, right: str) -> str:
    """SQL, never null: the same email key, or one typo apart (a household member's mistyped
    shared address): a mistyped domain — the dots too where the key folded them at the real
    one (brunofamily@gmail.com is bruno.family@gmial.com's key at gmail.com) — or one letter
    of the local part at the same domain."""

    def local(email: str) -> str:
        return f"split_part({email}, '@', 1)"

    def domain(email: str) -> str:  # '' without an '@', as Python's partition
        return f"if(contains({email}, '@'), substr({email}, strpos({email}, '@') + 1), '')"

    return (
        f"coalesce(coalesce({left}, '') <> '' AND coalesce({right}, '') <> ''"
        f" AND ({left} = {right}"
        f" OR replace({local(left)}, '.', '') = replace({local(right)}, '.', '')"
        f" OR ({domain(left)} = {domain(right)}"
        f" AND damerau_levenshtein({local(left)}, {local(right)}) <= 1)), false)"
    )


def _one_birthday_sql(date_l: str, date_r: str, md_l: str, md_r: str) -> str:
    """SQL, never null: birth dates (``YYYY-MM-DD``) agreeing beyond a typo (two of year,
    month and day); without a year, month and day both (one of twelve households shares a
    birth month by chance)."""
    return (
        f"coalesce(CASE WHEN coalesce({date_l}, '') <> '' AND coalesce({date_r}, '') <> ''"
        f" THEN {_two_of_three(date_l, date_r)}"
        f" ELSE coalesce({md_l}, '') <> '' AND {md_l} = {md_r} END, false)"
    )


def _contributions_sql(columns: Sequence[str]) -> str:
    """SQL: per pair, JSON {comparison: log2 Bayes factor} for the comparisons with values on
    both sides (level not -1), term-frequency adjustment included; a weight that is not
    finite is null. Written as text (a double's shortest form is its JSON): building a JSON
    map per pair took twice as long."""
    entries = []
    for comparison in COMPARISONS:
        weight = f"coalesce(CAST(mw_{comparison} AS DOUBLE), 0)"
        if f"mw_tf_adj_{comparison}" in columns:
            weight += f" + coalesce(CAST(mw_tf_adj_{comparison} AS DOUBLE), 0)"
        finite = f"CAST(CASE WHEN isfinite({weight}) THEN {weight} END AS VARCHAR)"
        entries.append(
            f"""CASE WHEN gamma_{comparison} IS DISTINCT FROM -1
                THEN '"{comparison}":' || coalesce({finite}, 'null') END"""
        )
    return f"'{{' || concat_ws(',', {', '.join(entries)}) || '}}'"


def _empty_links() -> pa.Table:
    return contract.LINKS.empty_table()


__all__ = ["BLOCKING_RULES", "COMPARISONS", "BlockingRule", "LinkRun", "link", "link_run"]
