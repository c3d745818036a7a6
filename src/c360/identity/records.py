"""Stage 1 of identity: every source record that carries identity attributes, normalised.

The extraction is SQL over the lake inputs (so it runs on DuckDB or Spark like the features);
the normalisation is SQL too, in the step's in-process session (:func:`normalise_in`): exact
SQL forms for ASCII text, and the Python functions of :mod:`c360.identity.normalise` once per
distinct value SQL cannot do exactly (non-ASCII text, phones not yet in E.164 — ``phonenumbers``
— and birthdays). Records:

- ``mysql/customer:<customer_id>`` — the account: email, names, phone, address, city, birth
  date;
- ``mysql/order:<order_id>`` — the order's email, shipping name/address/postcode/city and phone,
  its customer_id (NULL for a guest checkout);
- ``zendesk/user:<user_id>`` — the requester: email, name, phone (the user event's
  ``detail.phone``), ``external_id`` (the customer id when the help centre's SSO knew it);
- ``mailchimp/member:<md5 of the lower-cased address>`` — Mailchimp's member id: email, names,
  phone (in the member's country, ``cc``), the ADDRESS merge field's street line, zip and city
  (from the export's form of it, parts joined by two spaces), birthday (Mailchimp's ``MM/DD``:
  month and day; a date field with its year — ``YYYY-MM-DD`` or ``MM/DD/YYYY`` — is a birth
  date too);
- ``clickstream/cookie:<anonymous_id>`` — a cookie that identified as a customer (identify,
  alias or any message carrying a userId). Anonymous-only cookies make no record: with no
  attribute to match on they would only add persons without data.
"""

from __future__ import annotations

import datetime as dt
import pickle
import subprocess
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from c360.config import IdentitySettings
from c360.contracts import identity as contract
from c360.contracts.compute import Compute, LocalSql, SqlStep
from c360.errors import DataError, TerminalError
from c360.identity.normalise import (
    E164_PATTERN,
    ascii_sql,
    blocked,
    blocked_table,
    email_forms_sql,
    email_key,
    fold_text,
    fold_text_sql,
    normalise,
    phone_e164,
    strip_lower_sql,
)

_LOOKUP_EMAIL = "lower(trim({}))"

RAW_OUTPUTS = ("identity_raw_records", "identity_cookie_customers")

STEPS = (
    # Each (cookie, account) a cookie identified as, with its first such event: the clickstream
    # scanned once for both outputs (at a million customers, 85M events: each scan was 20 s).
    SqlStep(
        "identity_cookie_claims",
        """
        SELECT anonymous_id, TRY_CAST(user_id AS BIGINT) AS customer_id,
               min(event_time) AS first_seen
        FROM events_clickstream
        WHERE anonymous_id IS NOT NULL AND TRY_CAST(user_id AS BIGINT) IS NOT NULL
        GROUP BY anonymous_id, TRY_CAST(user_id AS BIGINT)
        """,
    ),
    SqlStep(
        "identity_raw_records",
        """
        SELECT 'mysql/customer:' || CAST(customer_id AS VARCHAR) AS record_key,
               'mysql' AS source, 'customer' AS record_type,
               CAST(customer_id AS VARCHAR) AS record_id, customer_id,
               email, first_name, last_name, CAST(NULL AS VARCHAR) AS full_name,
               phone, country, address_line AS address, postcode, city, birth_date,
               CAST(NULL AS VARCHAR) AS birthday, CAST(NULL AS VARCHAR) AS alt_id,
               created_at AS first_seen
        FROM customers
        UNION ALL
        SELECT 'mysql/order:' || CAST(order_id AS VARCHAR), 'mysql', 'order',
               CAST(order_id AS VARCHAR), customer_id,
               email, NULL, NULL, shipping_name,
               phone, shipping_country, shipping_address_line, shipping_postcode, shipping_city,
               CAST(NULL AS DATE), NULL, NULL, created_at
        FROM orders
        UNION ALL
        SELECT 'zendesk/user:' || user_id, 'zendesk', 'user', user_id,
               TRY_CAST(external_id AS BIGINT),
               email, NULL, NULL, name,
               phone, NULL, NULL, NULL, NULL, CAST(NULL AS DATE), NULL, NULL, first_seen
        FROM (
            SELECT user_id, email, name, external_id, phone, first_seen FROM (
                SELECT user_id, email, name,
                       payload ->> '$.detail.external_id' AS external_id,
                       payload ->> '$.detail.phone' AS phone,
                       min(time) OVER (PARTITION BY user_id) AS first_seen,
                       row_number() OVER (PARTITION BY user_id ORDER BY time DESC) AS latest
                FROM zendesk_events
                WHERE user_id IS NOT NULL AND type LIKE 'zen:event-type:user.%'
            ) users WHERE latest = 1
        ) zendesk_user_records
        UNION ALL
        SELECT 'mailchimp/member:' || md5(lower(trim(email_address))), 'mailchimp', 'member',
               md5(lower(trim(email_address))), CAST(NULL AS BIGINT),
               email_address, first_name, last_name, NULL,
               phone_number, cc,
               CASE WHEN parts >= 2 THEN split_part(address, '  ', 1) END,
               CASE WHEN parts >= 4
                         AND regexp_matches(split_part(address, '  ', greatest(parts - 1, 1)),
                                            '[0-9]')
                    THEN split_part(address, '  ', greatest(parts - 1, 1)) END,
               CASE WHEN parts >= 6 THEN split_part(address, '  ', 3)
                    WHEN parts >= 4 THEN split_part(address, '  ', 2) END,
               CAST(NULL AS DATE), birthday, euid,
               TRY_CAST(optin_time AS TIMESTAMP)
        FROM (
            -- ADDRESS as the export writes it: its filled parts (addr1, addr2, city, state,
            -- zip, country) joined by two spaces. Counted from both ends: the first part is
            -- the street line, the one before the country the zip (when it has a digit), the
            -- city second — third when all six are there (a five-part address is read as
            -- having a state, not a second line).
            SELECT *, (length(address) - length(replace(address, '  ', ''))) // 2 + 1 AS parts
            FROM (
                SELECT email_address, first_name, last_name, phone_number, cc, birthday,
                       euid, optin_time,
                       regexp_replace(trim(address), ' {{3,}}', '  ', 'g') AS address
                FROM mailchimp_members WHERE email_address IS NOT NULL
            ) members
        ) mailchimp_member_records
        UNION ALL
        SELECT 'clickstream/cookie:' || anonymous_id, 'clickstream', 'cookie', anonymous_id,
               CASE WHEN min(customer_id) = max(customer_id) THEN min(customer_id) END,
               NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, CAST(NULL AS DATE), NULL, NULL,
               min(first_seen)
        FROM identity_cookie_claims
        GROUP BY anonymous_id
        """,
    ),
    # Every account a cookie identified as: one identifier each (a shared device shows here).
    SqlStep(
        "identity_cookie_customers",
        """
        SELECT 'clickstream/cookie:' || anonymous_id AS record_key, customer_id
        FROM identity_cookie_claims
        """,
    ),
)


@dataclass(frozen=True)
class IdentityRecords:
    records: pa.Table  # contract.RECORDS
    identifiers: pa.Table  # contract.IDENTIFIERS


def _dated_birthday(value: str) -> str | None:
    """A birthday with its year (a date merge field: ``YYYY-MM-DD`` or ``MM/DD/YYYY``), ISO."""
    text = value.strip()
    if "/" in text:
        month, day, year = ([*text.split("/"), "", ""])[:3]
    else:
        year, month, day = ([*text.split("-"), "", ""])[:3]
    if not (len(year) == 4 and year.isdigit() and month.isdigit() and day.isdigit()):
        return None
    try:
        return dt.date(int(year), int(month), int(day)).isoformat()
    except ValueError:
        return None


def _month_day(value: str) -> str | None:
    """Mailchimp's ``MM/DD`` birthday as ``MM-DD`` (None when it is not one)."""
    month, _, day = value.strip().replace("-", "/").partition("/")
    if not (month.isdigit() and day.isdigit() and 1 <= int(month) <= 12):
        return None
    return f"{int(month):02d}-{int(day):02d}" if 1 <= int(day) <= 31 else None


# The raw extract's text columns folded like names (postcode: its spaces dropped first).
_FOLDED = {
    "first_name": "first_name",
    "last_name": "last_name",
    "full_name": "full_name",
    "address": "address",
    "postcode": "replace(postcode, ' ', '')",
    "city": "city",
}


# Distinct values a lookup maps in worker processes, one per session thread, from this many
# on: below it the workers' start (half a second) costs more than it saves. At a million
# customers a million phones take 22 s in phonenumbers on one core.
PARALLEL_FROM = 100_000


def _lookup(
    local: LocalSql,
    name: str,
    distinct_sql: str,
    function: Callable[..., tuple[object, ...]],
    schema: pa.Schema,
) -> None:
    """Table ``name``: each row of ``distinct_sql`` (its key columns) with ``function``'s
    values (the remaining columns of ``schema``), computed once per row in Python — in
    worker processes when there are many rows (:data:`PARALLEL_FROM`; ``function`` must then
    be picklable: a module function or a partial of one)."""
    keys = local.table(distinct_sql)
    width = keys.num_columns
    rows = list(zip(*(keys[i].to_pylist() for i in range(width)), strict=True))
    mapped = map_rows(function, rows, _session_threads(local))
    columns = [keys[i] for i in range(width)]
    columns += [
        pa.array([m[i] for m in mapped], schema.field(width + i).type)
        for i in range(len(schema) - width)
    ]
    local.load(name, pa.table(columns, schema=schema))


def _session_threads(local: LocalSql) -> int:
    return int(local.rows("SELECT current_setting('threads')")[0][0])


def map_rows(
    function: Callable[..., tuple[object, ...]], rows: list[tuple[Any, ...]], workers: int
) -> list[tuple[object, ...]]:
    """``function`` over ``rows``, in order; split between ``workers`` worker processes
    (:mod:`c360.identity.map_worker`) when there are at least :data:`PARALLEL_FROM` rows."""
    if workers < 2 or len(rows) < PARALLEL_FROM:
        return _map_chunk(function, rows)
    size = -(-len(rows) // workers)
    chunks = [rows[at : at + size] for at in range(0, len(rows), size)]
    with ThreadPoolExecutor(len(chunks)) as waiting:  # each thread waits for one process
        done = waiting.map(partial(_map_in_worker, function), chunks)
        return [values for chunk in done for values in chunk]


def _map_in_worker(
    function: Callable[..., tuple[object, ...]], rows: list[tuple[Any, ...]]
) -> list[tuple[object, ...]]:
    job = pickle.dumps((function, rows), pickle.HIGHEST_PROTOCOL)
    worker = [sys.executable, "-m", "c360.identity.map_worker"]
    done = subprocess.run(worker, input=job, capture_output=True, check=False)
    if done.returncode != 0:
        # The exception's type only: its message may quote a value of the rows.
        last = (done.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise TerminalError(
            f"identity: a lookup worker ({sys.executable} -m c360.identity.map_worker) failed "
            f"with exit code {done.returncode}, {last.partition(':')[0]}"
        )
    values: list[tuple[object, ...]] = pickle.loads(done.stdout)
    return values


def _map_chunk(
    function: Callable[..., tuple[object, ...]], rows: list[tuple[Any, ...]]
) -> list[tuple[object, ...]]:
    return [function(*row) for row in rows]


def _folded_forms(value: str) -> tuple[str | None]:
    return (fold_text(value),)


def _email_forms(blocklist: tuple[str, ...], value: str) -> tuple[str | None, str | None]:
    """The email and its matching key; None where it (or its key) is a blocked value."""
    email = None if blocked(value, blocklist) else normalise("email", value)
    return email, None if email is None or blocked(email, blocklist) else email_key(email)


def _phone_forms(blocklist: tuple[str, ...], value: str, region: str) -> tuple[str | None]:
    """The E.164 form read in ``region``; None where it (or the raw value) is blocked."""
    e164 = None if blocked(value, blocklist) else phone_e164(value, region or None)
    return (None if e164 is None or blocked(e164, blocklist) else e164,)


def _birthday_forms(value: str) -> tuple[str | None, str | None]:
    return _dated_birthday(value), _month_day(value)


def _lookups(local: LocalSql, raw: str, settings: IdentitySettings) -> None:
    """Lookup tables from each distinct raw value to its normalised forms (``fold_lookup``,
    ``email_lookup``, ``phone_lookup`` by value and region, ``birthday_lookup``): in SQL where
    its form is exact (ASCII text, phones blocked or already E.164), else the Python function
    once per value (non-ASCII text, other phones, birthdays)."""
    blocklist = settings.blocked_values
    texts = " UNION ".join(f"SELECT {expr} AS value FROM {raw}" for expr in _FOLDED.values())
    _lookup(
        local,
        "fold_lookup",
        f"SELECT DISTINCT value FROM ({texts}) "
        f"WHERE value IS NOT NULL AND NOT {ascii_sql('value')}",
        _folded_forms,
        pa.schema([("value", pa.string()), ("folded", pa.string())]),
    )
    local.execute(
        f"""
        INSERT INTO fold_lookup
        SELECT value, {fold_text_sql("value")} FROM ({texts}) texts
        WHERE value IS NOT NULL AND {ascii_sql("value")}
        """
    )
    _lookup(
        local,
        "email_lookup",
        f"SELECT DISTINCT email FROM {raw} WHERE email IS NOT NULL AND NOT {ascii_sql('email')}",
        partial(_email_forms, blocklist),
        pa.schema([("value", pa.string()), ("email", pa.string()), ("email_key", pa.string())]),
    )
    ascii_emails = (
        f"SELECT DISTINCT email AS value FROM {raw} "
        f"WHERE email IS NOT NULL AND {ascii_sql('email')}"
    )
    local.execute(f"INSERT INTO email_lookup {email_forms_sql(ascii_emails)}")
    trivial = (
        f"{ascii_sql('phone')} AND ({strip_lower_sql('phone')} IN "
        f"(SELECT value FROM blocked_values) OR regexp_full_match(phone, '{E164_PATTERN}'))"
    )
    _lookup(
        local,
        "phone_lookup",
        f"SELECT DISTINCT phone, region FROM {raw}_regions WHERE phone IS NOT NULL AND NOT "
        f"({trivial})",
        partial(_phone_forms, blocklist),
        pa.schema([("value", pa.string()), ("region", pa.string()), ("phone", pa.string())]),
    )
    # Blocked (null) or already E.164 (itself): no library needed.
    local.execute(
        f"""
        INSERT INTO phone_lookup
        SELECT phone, region, CASE WHEN regexp_full_match(phone, '{E164_PATTERN}')
                                        AND {strip_lower_sql("phone")}
                                            NOT IN (SELECT value FROM blocked_values)
                                   THEN phone END
        FROM (SELECT DISTINCT phone, region FROM {raw}_regions
              WHERE phone IS NOT NULL AND {trivial}) trivial
        """
    )
    _lookup(
        local,
        "birthday_lookup",
        f"SELECT DISTINCT birthday FROM {raw} WHERE birthday IS NOT NULL",
        _birthday_forms,
        pa.schema([("value", pa.string()), ("dated", pa.string()), ("md", pa.string())]),
    )


def _folded(column: str) -> str:
    return f"f_{column}.folded"


def _normalise_sql(raw: str) -> str:
    """RECORDS from the raw extract ``raw`` (with ``<raw>_regions``) and the lookups."""
    folds = "\n".join(
        f"LEFT JOIN fold_lookup f_{c} ON f_{c}.value = {_FOLDED[c].replace(c, f'r.{c}')}"
        for c in _FOLDED
    )
    return f"""
        SELECT record_key, source, record_type, record_id, customer_id, email, email_key,
               phone,
               coalesce(first_name,
                        CASE WHEN contains(full_name, ' ')
                             THEN regexp_extract(full_name, '^(.*) ', 1) END) AS first_name,
               coalesce(last_name, regexp_extract(full_name, '[^ ]*$')) AS last_name,
               address, postcode, city, birth_date,
               coalesce(strftime(birth_date, '%m-%d'), birthday_md) AS birth_md,
               first_seen
        FROM (
            SELECT r.record_key, r.source, r.record_type, r.record_id,
                   CAST(r.customer_id AS BIGINT) AS customer_id,
                   e.email, e.email_key, p.phone,
                   {_folded("first_name")} AS first_name,
                   {_folded("last_name")} AS last_name,
                   {_folded("full_name")} AS full_name,
                   {_folded("address")} AS address,
                   {_folded("postcode")} AS postcode,
                   {_folded("city")} AS city,
                   coalesce(CAST(r.birth_date AS DATE), CAST(b.dated AS DATE)) AS birth_date,
                   b.md AS birthday_md,
                   CAST(r.first_seen AS TIMESTAMPTZ) AS first_seen
            FROM {raw}_regions r
            LEFT JOIN email_lookup e ON e.value = r.email
            LEFT JOIN phone_lookup p ON p.value = r.phone AND p.region = r.region
            LEFT JOIN birthday_lookup b ON b.value = r.birthday
            {folds}
        ) normalised
    """


# A record's position (``pos``) is its row in the session's table ``records``, which is written
# in record_key order: DuckDB's rowid of a table written by an ordered statement, so it costs
# no column and no sort (``records_in_order``). Positions order like the keys, so the smallest
# position of a group is its smallest record_key: the later stages join, group and sort on
# positions (BIGINT) rather than on the key strings — at a million customers each string sort
# and join of 13M record keys took seconds — and join the keys back only for what they write.
_IDENTIFIERS_SQL = """
SELECT DISTINCT pos, id_type, id_value FROM (
    SELECT rowid AS pos, 'customer_id' AS id_type, CAST(customer_id AS VARCHAR) AS id_value
    FROM records WHERE record_type <> 'cookie'
    UNION ALL
    SELECT r.pos, 'customer_id', CAST(CAST(c.customer_id AS BIGINT) AS VARCHAR)
    FROM {cookies} c
    JOIN (SELECT rowid AS pos, record_key FROM records WHERE record_type = 'cookie') r
      USING (record_key)
    UNION ALL SELECT rowid, 'email', email FROM records
    UNION ALL SELECT rowid, 'phone', phone FROM records
    UNION ALL
    SELECT rowid, CASE record_type WHEN 'cookie' THEN 'anonymous_id'
                                   WHEN 'user' THEN 'zendesk_user_id'
                                   WHEN 'member' THEN 'mailchimp_id' END, record_id
    FROM records WHERE record_type IN ('cookie', 'user', 'member')
    UNION ALL
    SELECT r.pos, 'mailchimp_id', x.alt_id
    FROM {raw} x
    JOIN (SELECT rowid AS pos, record_key FROM records WHERE record_type = 'member') r
      USING (record_key)
    WHERE x.alt_id IS NOT NULL
) every_identifier
WHERE id_value IS NOT NULL
"""


# Each record's position and key (a subquery, to join on the key; by position, join on rowid).
RECORD_KEYS = "SELECT rowid AS pos, record_key FROM records"
# The record keys that appear more than once (in key order: a key equal to the next row's).
REPEATED_KEYS = (
    "SELECT a.record_key FROM records a JOIN records b ON b.rowid = a.rowid + 1 "
    "WHERE a.record_key = b.record_key"
)


def records_in_order(local: LocalSql, sql: str) -> None:
    """The session table ``records`` from ``sql``'s rows (RECORDS columns), in record_key
    order: a record's position is its rowid (``SELECT rowid AS pos, * FROM records``)."""
    local.execute(
        f"CREATE OR REPLACE TEMP TABLE records AS SELECT * FROM ({sql}) ORDER BY record_key"
    )


def load_in(local: LocalSql, records: pa.Table, identifiers: pa.Table | None = None) -> None:
    """The session tables ``records`` (:func:`records_in_order`) and ``identifiers`` (each row
    by its record's position ``pos``, as :func:`normalise_in` makes it) from Arrow, as the
    stages' Arrow forms take them. A customer_id identifier of a record the records lack is a
    DataError (it would be a claim on an account by no one); other such identifiers are left
    out."""
    local.register("records_arrow", records)
    try:
        records_in_order(local, "SELECT * FROM records_arrow")
    finally:
        local.unregister("records_arrow")
    if identifiers is None:
        return
    local.register("identifiers_arrow", identifiers)
    try:
        local.execute(
            "CREATE OR REPLACE TEMP TABLE identifiers_keyed AS SELECT r.pos, i.* "
            f"FROM identifiers_arrow i LEFT JOIN ({RECORD_KEYS}) r USING (record_key)"
        )
    finally:
        local.unregister("identifiers_arrow")
    ((example, orphans),) = local.rows(
        "SELECT any_value(record_key), count(*) FROM identifiers_keyed "
        "WHERE id_type = 'customer_id' AND pos IS NULL"
    )
    if orphans:
        local.execute("DROP TABLE identifiers_keyed")
        raise DataError(
            f"identity identifiers: {orphans} customer_id identifier(s) belong to no record "
            f"of the records table, e.g. record {example!r}"
        )
    local.execute(
        "CREATE OR REPLACE TEMP TABLE identifiers AS SELECT pos, id_type, id_value "
        "FROM identifiers_keyed WHERE pos IS NOT NULL"
    )
    local.execute("DROP TABLE identifiers_keyed")


def load_links_in(local: LocalSql, links: pa.Table) -> None:
    """The session table ``links`` (by record positions, as the stages make it) from LINKS
    rows (by record keys) of the session's ``records``; a key the records lack is a
    DataError."""
    local.register("links_arrow", links)
    try:
        local.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE links AS
            SELECT l.pos AS left_pos, r.pos AS right_pos, k.* EXCLUDE (left_key, right_key),
                   CASE WHEN l.pos IS NULL THEN k.left_key WHEN r.pos IS NULL THEN k.right_key
                   END AS unknown
            FROM links_arrow k
            LEFT JOIN ({RECORD_KEYS}) l ON l.record_key = k.left_key
            LEFT JOIN ({RECORD_KEYS}) r ON r.record_key = k.right_key
            """
        )
    finally:
        local.unregister("links_arrow")
    unknown = local.rows("SELECT unknown FROM links WHERE unknown IS NOT NULL LIMIT 1")
    if unknown:
        raise DataError(f"identity links: record {unknown[0][0]!r} is not in the records table")
    local.execute("ALTER TABLE links DROP COLUMN unknown")


def keyed_links_sql(table: str) -> str:
    """SQL: the session's links ``table`` (positions ``left_pos``, ``right_pos`` and the other
    LINKS columns) as LINKS, the record keys joined back, in position order (a pair linked
    both ways: deterministic first)."""
    return f"""
        SELECT l.record_key AS left_key, r.record_key AS right_key, k.kind, k.evidence,
               k.match_weight, k.match_probability, k.contributions
        FROM {table} k
        JOIN records l ON l.rowid = k.left_pos JOIN records r ON r.rowid = k.right_pos
        ORDER BY k.left_pos, k.right_pos, k.kind, k.evidence
    """


def normalise_in(
    local: LocalSql,
    settings: IdentitySettings,
    raw: str = RAW_OUTPUTS[0],
    cookies: str = RAW_OUTPUTS[1],
) -> None:
    """RECORDS and IDENTIFIERS as the tables ``records`` and ``identifiers`` of ``local``, from
    the raw extract's tables (:data:`RAW_OUTPUTS`, dropped afterwards); ``identifiers`` names
    each row's record by its position ``pos`` (:func:`records_in_order`), not its key.

    Normalised in SQL, with the Python functions of :mod:`c360.identity.normalise` over the
    distinct values SQL cannot do exactly; the rows stay in the session (spilling past
    ``compute.memory_limit``), ordered by record_key.
    """
    blocked_table(local, settings.blocked_values)
    region = "'" + settings.default_phone_region.replace("'", "''") + "'"
    local.execute(
        f"CREATE OR REPLACE TEMP VIEW {raw}_regions AS SELECT *, "
        f"coalesce(country, {region}, '') AS region FROM {raw}"
    )
    _lookups(local, raw, settings)
    records_in_order(local, _normalise_sql(raw))
    local.execute(
        "CREATE OR REPLACE TEMP TABLE identifiers AS "
        + _IDENTIFIERS_SQL.format(raw=raw, cookies=cookies)
    )
    local.execute(f"DROP VIEW {raw}_regions")
    for table in (raw, cookies, "fold_lookup", "email_lookup", "phone_lookup", "birthday_lookup"):
        local.execute(f"DROP TABLE {table}")


def _records_table(local: LocalSql) -> pa.Table:
    return local.table("SELECT * FROM records").cast(contract.RECORDS)


def _identifiers_table(local: LocalSql) -> pa.Table:
    return (
        local.table(
            "SELECT r.record_key, i.id_type, i.id_value FROM identifiers i "
            "JOIN records r ON r.rowid = i.pos ORDER BY i.pos, i.id_type, i.id_value"
        )
        .select(contract.IDENTIFIERS.names)
        .cast(contract.IDENTIFIERS)
    )


def normalise_records(compute: Compute, raw: pa.Table, settings: IdentitySettings) -> pa.Table:
    """RECORDS from a raw extract (the columns of ``identity_raw_records``; unique
    record_keys), as Arrow, in the extract's order."""
    with compute.local() as local:
        local.load(RAW_OUTPUTS[0], raw)
        local.execute(
            f"CREATE TEMP TABLE {RAW_OUTPUTS[1]} (record_key VARCHAR, customer_id BIGINT)"
        )
        normalise_in(local, settings)
        normalised = _records_table(local)
    # In the extract's order (the session orders by record_key).
    at = pc.index_in(raw["record_key"], value_set=normalised["record_key"])
    return normalised.take(at)


def build(
    compute: Compute, raw: Mapping[str, pa.Table], settings: IdentitySettings
) -> IdentityRecords:
    """RECORDS and IDENTIFIERS (as Arrow) from the outputs of :data:`STEPS`."""
    with compute.local() as local:
        for name in RAW_OUTPUTS:
            local.load(name, raw[name])
        normalise_in(local, settings)
        return IdentityRecords(_records_table(local), _identifiers_table(local))
