"""Stage 1 of identity: every source record that carries identity attributes, normalised.

The extraction is SQL over the lake inputs (so it runs on DuckDB or Spark like the features);
the normalisation that needs a library (E.164 phones, Unicode folding, mailbox folding) runs in
Python over distinct values (:mod:`c360.identity.normalise`). Records:

- ``mysql/customer:<customer_id>`` — the account: email, names, phone, address, city, birth
  date;
- ``mysql/order:<order_id>`` — the order's email, shipping name/address/postcode/city and phone,
  its customer_id (NULL for a guest checkout);
- ``zendesk/user:<user_id>`` — the requester: email, name, ``external_id`` (the customer id
  when the help centre's SSO knew it);
- ``mailchimp/member:<md5 of the lower-cased address>`` — Mailchimp's member id: email, names,
  phone, birthday (Mailchimp's ``MM/DD``: month and day; a date field with its year —
  ``YYYY-MM-DD`` or ``MM/DD/YYYY`` — is a birth date too);
- ``clickstream/cookie:<anonymous_id>`` — a cookie that identified as a customer (identify,
  alias or any message carrying a userId). Anonymous-only cookies make no record: with no
  attribute to match on they would only add persons without data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from c360.config import IdentitySettings
from c360.contracts import identity as contract
from c360.contracts.compute import SqlStep
from c360.identity.normalise import (
    blocked,
    email_key,
    fold_text,
    map_distinct,
    map_distinct_pairs,
    normalise,
    phone_e164,
)

_LOOKUP_EMAIL = "lower(trim({}))"

RAW_OUTPUTS = ("identity_raw_records", "identity_cookie_customers")

STEPS = (
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
               NULL, NULL, NULL, NULL, NULL, CAST(NULL AS DATE), NULL, NULL, first_seen
        FROM (
            SELECT user_id, email, name, external_id, first_seen FROM (
                SELECT user_id, email, name,
                       payload ->> '$.detail.external_id' AS external_id,
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
               phone_number, cc, NULL, NULL, NULL, CAST(NULL AS DATE), birthday, euid,
               TRY_CAST(optin_time AS TIMESTAMP)
        FROM mailchimp_members WHERE email_address IS NOT NULL
        UNION ALL
        SELECT 'clickstream/cookie:' || anonymous_id, 'clickstream', 'cookie', anonymous_id,
               CASE WHEN min(TRY_CAST(user_id AS BIGINT)) = max(TRY_CAST(user_id AS BIGINT))
                    THEN min(TRY_CAST(user_id AS BIGINT)) END,
               NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, CAST(NULL AS DATE), NULL, NULL,
               min(event_time)
        FROM events_clickstream
        WHERE anonymous_id IS NOT NULL AND TRY_CAST(user_id AS BIGINT) IS NOT NULL
        GROUP BY anonymous_id
        """,
    ),
    # Every account a cookie identified as: one identifier each (a shared device shows here).
    SqlStep(
        "identity_cookie_customers",
        """
        SELECT DISTINCT 'clickstream/cookie:' || anonymous_id AS record_key,
               TRY_CAST(user_id AS BIGINT) AS customer_id
        FROM events_clickstream
        WHERE anonymous_id IS NOT NULL AND TRY_CAST(user_id AS BIGINT) IS NOT NULL
        """,
    ),
)


@dataclass(frozen=True)
class IdentityRecords:
    records: pa.Table  # contract.RECORDS
    identifiers: pa.Table  # contract.IDENTIFIERS


def _names(raw: pa.Table) -> tuple[pa.Array, pa.Array]:
    """First and last name: the given columns, else a full name split at its last space."""
    full = map_distinct(raw["full_name"], fold_text)
    split_first = map_distinct(full, lambda v: v.rpartition(" ")[0] or None)
    split_last = map_distinct(full, lambda v: v.rpartition(" ")[2])
    first = map_distinct(raw["first_name"], fold_text)
    last = map_distinct(raw["last_name"], fold_text)
    return pc.coalesce(first, split_first), pc.coalesce(last, split_last)


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


def _birth_date(raw: pa.Table) -> pa.Array:
    """The source's birth date, else a birthday that carries its year."""
    dated = map_distinct(raw["birthday"], _dated_birthday).cast(pa.date32())
    return pc.coalesce(raw["birth_date"].cast(pa.date32()), dated)


def _birth_md(raw: pa.Table, birth_date: pa.Array) -> pa.Array:
    def month_day(value: str) -> str | None:
        month, _, day = value.strip().replace("-", "/").partition("/")
        if not (month.isdigit() and day.isdigit() and 1 <= int(month) <= 12):
            return None
        return f"{int(month):02d}-{int(day):02d}" if 1 <= int(day) <= 31 else None

    from_date = pc.strftime(birth_date.cast(pa.timestamp("s")), format="%m-%d")
    return pc.coalesce(from_date, map_distinct(raw["birthday"], month_day))


def normalise_records(raw: pa.Table, settings: IdentitySettings) -> pa.Table:
    """RECORDS from the raw extract: lookup and matching forms, E.164 phones, folded text."""
    blocklist = settings.blocked_values
    email = map_distinct(
        raw["email"], lambda v: None if blocked(v, blocklist) else normalise("email", v)
    )
    key = map_distinct(email, lambda v: None if blocked(v, blocklist) else email_key(v))
    region = pc.fill_null(raw["country"], settings.default_phone_region)
    phone = map_distinct_pairs(
        raw["phone"],
        region,
        lambda v, r: None if v is None or blocked(v, blocklist) else phone_e164(v, r),
    )
    phone = map_distinct(phone, lambda v: None if blocked(v, blocklist) else v)
    first, last = _names(raw)
    birth_date = _birth_date(raw)
    columns = {
        "record_key": raw["record_key"],
        "source": raw["source"],
        "record_type": raw["record_type"],
        "record_id": raw["record_id"],
        "customer_id": raw["customer_id"].cast(pa.int64()),
        "email": email,
        "email_key": key,
        "phone": phone,
        "first_name": first,
        "last_name": last,
        "address": map_distinct(raw["address"], fold_text),
        "postcode": map_distinct(raw["postcode"], lambda v: fold_text(v.replace(" ", ""))),
        "city": map_distinct(raw["city"], fold_text),
        "birth_date": birth_date,
        "birth_md": _birth_md(raw, birth_date),
        "first_seen": raw["first_seen"].cast(contract.UTC_TIME),
    }
    return pa.table(columns, schema=contract.RECORDS)


def _identifier_rows(records: pa.Table, id_type: str, column: str) -> pa.Table:
    values = records[column]
    if values.type != pa.string():
        values = values.cast(pa.string())
    table = pa.table({"record_key": records["record_key"], "id_value": values})
    table = table.filter(pc.is_valid(table["id_value"]))
    kinds = pa.array([id_type] * table.num_rows, pa.string())
    return pa.table(
        {"record_key": table["record_key"], "id_type": kinds, "id_value": table["id_value"]},
        schema=contract.IDENTIFIERS,
    )


def _of_type(records: pa.Table, record_type: str) -> pa.Table:
    return records.filter(pc.equal(records["record_type"], record_type))


def identifiers_of(records: pa.Table, raw: pa.Table, cookie_customers: pa.Table) -> pa.Table:
    """IDENTIFIERS: every identifier value each record carries, in lookup form."""
    euids = pa.table({"record_key": raw["record_key"], "euid": raw["alt_id"]})
    cookies = pa.table(
        {
            "record_key": cookie_customers["record_key"],
            "customer_id": cookie_customers["customer_id"].cast(pa.int64()),
        }
    )
    parts = [
        _identifier_rows(
            records.filter(pc.not_equal(records["record_type"], "cookie")),
            "customer_id",
            "customer_id",
        ),
        _identifier_rows(cookies, "customer_id", "customer_id"),
        _identifier_rows(records, "email", "email"),
        _identifier_rows(records, "phone", "phone"),
        _identifier_rows(_of_type(records, "cookie"), "anonymous_id", "record_id"),
        _identifier_rows(_of_type(records, "user"), "zendesk_user_id", "record_id"),
        _identifier_rows(_of_type(records, "member"), "mailchimp_id", "record_id"),
        _identifier_rows(euids, "mailchimp_id", "euid"),
    ]
    return (
        pa.concat_tables(parts)
        .group_by(["record_key", "id_type", "id_value"])
        .aggregate([])
        .select(contract.IDENTIFIERS.names)
        .cast(contract.IDENTIFIERS)
    )


def build(raw: Mapping[str, pa.Table], settings: IdentitySettings) -> IdentityRecords:
    """RECORDS and IDENTIFIERS from the outputs of :data:`STEPS`."""
    extract = raw["identity_raw_records"]
    records = normalise_records(extract, settings)
    identifiers = identifiers_of(records, extract, raw["identity_cookie_customers"])
    return IdentityRecords(records.sort_by("record_key"), identifiers)
