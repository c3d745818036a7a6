"""Deterministic links: records that share a customer account or an email matching key.

Evidence is a shared value: ``customer_id`` (the account a record names in RECORDS, or one of
the ``customer_id`` identifiers it carries — a cookie identified as that customer) and
``email_key`` (the matching form of an email). Before a value counts, the over-merge guards
drop it:

* **blocked values** (``identity.blocked_values``: ``test@test.com``, ``null``, ``0000000`` …),
  compared lower-cased and trimmed. ``records`` already nulls blocked email keys with the
  folded comparison; this step re-checks both email forms and the customer ids, and reports
  every blocked value it sees;
* **contradicting evidence**: an email key whose records include two with clearly other
  first names — unless their birth dates say one person (both known and agreeing beyond a
  typo: two of year, month and day; a Mailchimp birthday without a year: both month and day,
  one of twelve households sharing a birth month by chance) — is
  the mailbox of several people (a couple, a family), not proof: it links nothing here, and
  its records meet as Splink candidates, scored like any others (with or without accounts).
  A missing birth date is no alibi: a household member's guest orders carry none, and share
  the surname, the address and often the phone. (So a nickname without a birth date, or a gift
  shipped under the recipient's name, is scored rather than linked here.)
* **too many accounts**: a record that names more than ``identity.max_customers_per_identifier``
  customer accounts (a shared device that logged in as two customers) is not evidence for any of
  them, and an email key seen on records of more than that many accounts (a store's front-desk
  email on several customers' orders) links nothing. An ambiguous record's accounts still count
  against its email — the guard errs on the side of not merging.

Each usable value links its records as a *star*: every record to the smallest record_key
sharing the value (n records, n - 1 links, never n² pairs). A pair linked by several values
is kept once, with the first evidence type in alphabetical order (``customer_id`` before
``email``). Refused values are listed in ``ignored`` (id_type, id_value, reason, customers) for
``identity explain`` and review; an ambiguous record appears as id_type ``record`` with its
record_key.

The step is a handful of named SQL steps over the Arrow inputs, run in an in-process session of
the compute swap point (DuckDB; 1M records in about a second on two cores).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from c360.config import IdentitySettings
from c360.contracts.compute import Compute, LocalSql, SqlStep
from c360.contracts.identity import IDENTIFIERS, IGNORED, LINKS, RECORDS, require
from c360.errors import DataError
from c360.identity.normalise import blocked_table
from c360.identity.records import keyed_links_sql, load_in

BLOCKED = "blocked value"
TOO_MANY_ACCOUNTS = "too many customer accounts"
CONTRADICTED = "contradicting evidence: other first names (birth dates do not make them one person)"

_RECORD_COLUMNS = (
    "record_key",
    "customer_id",
    "email",
    "email_key",
    "first_name",
    "last_name",
    "address",
    "birth_date",
    "birth_md",
)
# Two values "clearly differ" below this Jaro-Winkler similarity (a typo stays above it).
_DIFFERENT = 0.8
_IDENTIFIER_COLUMNS = ("record_key", "id_type", "id_value")


@dataclass(frozen=True)
class DeterministicGraph:
    links: pa.Table  # LINKS, kind "deterministic", sorted by (left_key, right_key)
    ignored: pa.Table  # IGNORED, sorted by (id_type, id_value, reason)


def _steps(max_customers: int) -> tuple[SqlStep, ...]:
    limit = int(max_customers)
    return (
        # Every (record, account) claim, with the text form the blocked list is compared with.
        SqlStep(
            "claims_raw",
            """
            SELECT pos, customer_id, CAST(customer_id AS VARCHAR) AS raw
            FROM records_in WHERE customer_id IS NOT NULL
            UNION ALL
            SELECT pos, TRY_CAST(trim(id_value) AS BIGINT), lower(trim(id_value))
            FROM identifiers_in WHERE id_type = 'customer_id' AND id_value IS NOT NULL
            """,
        ),
        SqlStep(
            "claims",
            """
            SELECT DISTINCT pos, customer_id FROM claims_raw
            WHERE customer_id IS NOT NULL
              AND raw NOT IN (SELECT value FROM blocked_values)
              AND CAST(customer_id AS VARCHAR) NOT IN (SELECT value FROM blocked_values)
            """,
        ),
        SqlStep(
            "record_accounts",
            "SELECT pos, count(*) AS customers FROM claims GROUP BY pos",
        ),
        # Claims of records naming at most `limit` accounts: the customer_id evidence.
        SqlStep(
            "customer_members",
            f"""
            SELECT c.pos, c.customer_id
            FROM claims c JOIN record_accounts a USING (pos)
            WHERE a.customers <= {limit}
            """,
        ),
        SqlStep(
            "shared_customers",
            """
            SELECT customer_id, min(pos) AS hub FROM customer_members
            GROUP BY customer_id HAVING count(*) > 1
            """,
        ),
        # Records whose email (either form) is a blocked value: no email evidence.
        SqlStep(
            "blocked_emails",
            """
            SELECT DISTINCT pos, value FROM (
                SELECT pos, lower(trim(email_key)) AS value FROM records_in
                WHERE email_key IS NOT NULL
                UNION ALL
                SELECT pos, lower(trim(email)) FROM records_in WHERE email IS NOT NULL
            ) WHERE value IN (SELECT value FROM blocked_values)
            """,
        ),
        SqlStep(
            "email_members",
            """
            SELECT pos, email_key FROM records_in
            WHERE email_key IS NOT NULL
              AND pos NOT IN (SELECT pos FROM blocked_emails)
            """,
        ),
        SqlStep(
            "shared_emails",
            """
            SELECT email_key, min(pos) AS hub FROM email_members
            GROUP BY email_key HAVING count(*) > 1
            """,
        ),
        # The distinct name/birth/address profiles on each shared email key, then the keys two
        # of whose profiles clearly disagree (see the module docstring).
        SqlStep(
            "email_profiles",
            """
            SELECT DISTINCT m.email_key, r.first_name, r.last_name, r.address, r.birth_date,
                   coalesce(strftime(r.birth_date, '%m-%d'), r.birth_md) AS birth_md
            FROM email_members m JOIN records_in r USING (pos)
            WHERE m.email_key IN (SELECT email_key FROM shared_emails)
              AND r.first_name IS NOT NULL
            """,
        ),
        SqlStep(
            "email_conflicts",
            f"""
            SELECT DISTINCT a.email_key FROM email_profiles a JOIN email_profiles b
              ON a.email_key = b.email_key
             AND jaro_winkler_similarity(a.first_name, b.first_name) < {_DIFFERENT}
            WHERE NOT (
                    (a.birth_date IS NOT NULL AND b.birth_date IS NOT NULL
                     AND (year(a.birth_date) = year(b.birth_date))::INTEGER
                         + (month(a.birth_date) = month(b.birth_date))::INTEGER
                         + (day(a.birth_date) = day(b.birth_date))::INTEGER >= 2)
                    OR ((a.birth_date IS NULL OR b.birth_date IS NULL)
                        AND a.birth_md IS NOT NULL AND a.birth_md = b.birth_md))
               OR (jaro_winkler_similarity(a.last_name, b.last_name) < {_DIFFERENT}
                   AND jaro_winkler_similarity(a.address, b.address) < {_DIFFERENT})
            """,
        ),
        SqlStep(
            "email_accounts",
            """
            SELECT m.email_key, any_value(s.hub) AS hub,
                   count(DISTINCT c.customer_id) AS customers
            FROM shared_emails s
            JOIN email_members m USING (email_key)
            LEFT JOIN claims c USING (pos)
            GROUP BY m.email_key
            """,
        ),
        SqlStep(
            "star_links",
            f"""
            SELECT s.hub AS left_pos, m.pos AS right_pos, 'customer_id' AS evidence
            FROM customer_members m JOIN shared_customers s USING (customer_id)
            WHERE m.pos <> s.hub
            UNION ALL
            SELECT a.hub, m.pos, 'email'
            FROM email_members m JOIN email_accounts a USING (email_key)
            WHERE a.customers <= {limit} AND m.pos <> a.hub
              AND m.email_key NOT IN (SELECT email_key FROM email_conflicts)
            """,
        ),
        SqlStep(
            "deterministic_links",
            """
            SELECT left_pos, right_pos, 'deterministic' AS kind, min(evidence) AS evidence,
                   CAST(NULL AS DOUBLE) AS match_weight,
                   CAST(NULL AS DOUBLE) AS match_probability,
                   CAST(NULL AS VARCHAR) AS contributions
            FROM star_links GROUP BY left_pos, right_pos
            ORDER BY left_pos, right_pos
            """,
        ),
        SqlStep(
            "ignored",
            f"""
            SELECT 'customer_id' AS id_type, raw AS id_value, '{BLOCKED}' AS reason,
                   count(DISTINCT customer_id) AS customers
            FROM claims_raw
            WHERE customer_id IS NOT NULL AND (
                raw IN (SELECT value FROM blocked_values)
                OR CAST(customer_id AS VARCHAR) IN (SELECT value FROM blocked_values))
            GROUP BY raw
            UNION ALL
            SELECT 'email', b.value, '{BLOCKED}', count(DISTINCT c.customer_id)
            FROM blocked_emails b LEFT JOIN claims c USING (pos)
            GROUP BY b.value
            UNION ALL
            SELECT 'email', email_key, '{TOO_MANY_ACCOUNTS}', customers
            FROM email_accounts WHERE customers > {limit}
            UNION ALL
            SELECT 'email', email_key, '{CONTRADICTED}', customers
            FROM email_accounts
            WHERE customers <= {limit} AND email_key IN (SELECT email_key FROM email_conflicts)
            UNION ALL
            SELECT 'record', r.record_key, '{TOO_MANY_ACCOUNTS}', a.customers
            FROM record_accounts a JOIN records_in r USING (pos) WHERE a.customers > {limit}
            ORDER BY id_type, id_value, reason
            """,
        ),
    )


def _check_claims(local: LocalSql) -> None:
    (bad,) = local.rows(
        """
        SELECT any_value(pos), any_value(id_value), count(*) FROM identifiers_in
        WHERE id_type = 'customer_id' AND id_value IS NOT NULL
          AND TRY_CAST(trim(id_value) AS BIGINT) IS NULL
        """
    )
    if bad[2]:
        ((key,),) = local.rows("SELECT record_key FROM records WHERE rowid = ?", [bad[0]])
        raise DataError(
            f"identity identifiers: {bad[2]} customer_id value(s) are not integers, "
            f"e.g. {bad[1]!r} of record {key!r}"
        )


_OUTPUTS = ("deterministic_links", "ignored")


def deterministic_in(local: LocalSql, settings: IdentitySettings) -> None:
    """The tables ``deterministic_links`` (LINKS but for the record positions ``left_pos``,
    ``right_pos`` in place of the keys; sorted) and ``ignored`` (IGNORED) of ``local``, from
    its tables ``records`` and ``identifiers`` (with record positions:
    :func:`c360.identity.records.records_in_order`; the intermediate steps are dropped
    afterwards)."""
    local.execute("CREATE OR REPLACE TEMP VIEW records_in AS SELECT rowid AS pos, * FROM records")
    local.execute("CREATE OR REPLACE TEMP VIEW identifiers_in AS SELECT * FROM identifiers")
    blocked_table(local, settings.blocked_values)
    _check_claims(local)
    steps = _steps(settings.max_customers_per_identifier)
    local.run(steps, [])
    for step in reversed(steps):
        if step.name not in _OUTPUTS:
            local.execute(f"DROP TABLE {step.name}")
    local.execute("DROP VIEW records_in")
    local.execute("DROP VIEW identifiers_in")


def deterministic_links(
    compute: Compute, records: pa.Table, identifiers: pa.Table, settings: IdentitySettings
) -> DeterministicGraph:
    """Star links between records sharing a usable customer_id or email key, and the refusals.
    They are computed in one in-process session of ``compute``."""
    records = require(records, RECORDS, "records", _RECORD_COLUMNS)
    if records["record_key"].null_count:
        raise DataError("identity records: record_key is null in some rows; every record needs one")
    identifiers = require(identifiers, IDENTIFIERS, "identifiers", _IDENTIFIER_COLUMNS)
    with compute.local() as local:
        load_in(local, records, identifiers)
        deterministic_in(local, settings)
        links = local.table(keyed_links_sql("deterministic_links"))
        ignored = local.table("SELECT * FROM ignored")
    return DeterministicGraph(links=links.cast(LINKS), ignored=ignored.cast(IGNORED))
