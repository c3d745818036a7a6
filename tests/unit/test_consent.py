"""Marketing consent in the batch: the newest fact decides (the customer's opt-in or a
Mailchimp member's status), a tie is no, no fact is null — the feature SQL run on DuckDB over
hand-made inputs, one person per rule."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from c360.batch import features
from c360.config import ComputeSettings
from c360.contracts.lake import CUSTOMERS_SCHEMA, MAILCHIMP_MEMBERS_SCHEMA
from c360.engines import open_compute

DAY = dt.date(2026, 12, 5)
T = dt.datetime


def customer(customer_id: int, opt_in: bool, updated: dt.datetime) -> dict[str, object]:
    return {
        "customer_id": customer_id,
        "email": f"c{customer_id}@x.com",
        "marketing_opt_in": opt_in,
        "created_at": T(2024, 1, 1, tzinfo=dt.UTC),
        "updated_at": updated.replace(tzinfo=dt.UTC),
    }


def member(email: str, status: str, optin: str | None) -> dict[str, object]:
    return {"email_address": email, "status": status, "optin_time": optin}


# person: (customer row, Mailchimp rows, expected (consent, source, time))
CASES = {
    "p_opt_in_only": (
        customer(1, True, T(2025, 3, 1)),
        [],
        (True, "orders DB opt-in", T(2025, 3, 1)),
    ),
    "p_newer_mailchimp_subscribe": (
        customer(2, False, T(2025, 3, 1)),
        [member("C2@x.com ", "subscribed", "2025-06-01 10:00:00")],
        (True, "Mailchimp subscribed", T(2025, 6, 1, 10)),
    ),
    "p_unsubscribed_later": (  # seen in the snapshot of DAY: newer than the opt-in
        customer(3, True, T(2025, 3, 1)),
        [member("c3@x.com", "unsubscribed", "2024-01-01 00:00:00")],
        (False, "Mailchimp unsubscribed", T(2026, 12, 5)),
    ),
    "p_opted_out_after_subscribing": (
        customer(4, False, T(2025, 9, 1)),
        [member("c4@x.com", "subscribed", "2025-06-01 00:00:00")],
        (False, "orders DB opt-in", T(2025, 9, 1)),
    ),
    "p_tie_is_no": (
        customer(5, True, T(2025, 6, 1)),
        [member("c5@x.com", "pending", None), member("c5b@x.com", "subscribed", None)],
        (False, "Mailchimp pending", T(2026, 12, 5)),
    ),
    "p_mailchimp_only_cleaned": (
        None,
        [member("m6@x.com", "cleaned", "2025-01-01 00:00:00")],
        (False, "Mailchimp cleaned", T(2026, 12, 5)),
    ),
    "p_no_fact": (None, [], (None, None, None)),
}


def test_the_newest_fact_decides_and_a_tie_is_no() -> None:
    customers, members, person, identity = [], [], [], []
    for person_id, (cust, rows, _) in CASES.items():
        person.append({"person_id": person_id, "customer_id": cust and cust["customer_id"]})
        if cust is not None:
            customers.append(cust)
            identity.append(("email", str(cust["email"]), person_id))
        for row in rows:
            members.append({**{n: None for n in MAILCHIMP_MEMBERS_SCHEMA.names}, **row})
            identity.append(("email", str(row["email_address"]).strip().lower(), person_id))
    steps = [s for s in features.feature_steps(DAY) if s.name in ("consent_facts", "consent")]
    with open_compute(ComputeSettings(threads=1)).local() as local:
        local.register("person", pa.table({
            "person_id": [p["person_id"] for p in person],
            "customer_id": pa.array([p["customer_id"] for p in person], pa.int64()),
        }))  # fmt: skip
        full = [{**{n: None for n in CUSTOMERS_SCHEMA.names}, **c} for c in customers]
        local.register("customers", pa.Table.from_pylist(full, CUSTOMERS_SCHEMA))
        mailchimp = pa.Table.from_pylist(members, MAILCHIMP_MEMBERS_SCHEMA)
        local.register("mailchimp_members", mailchimp.append_column(
            "dt", pa.array([DAY] * mailchimp.num_rows, pa.date32())
        ))  # fmt: skip
        local.register("identity_map", pa.table({
            "id_type": [i[0] for i in identity],
            "id_value": [i[1] for i in identity],
            "person_id": [i[2] for i in identity],
        }))  # fmt: skip
        out = local.run(steps, ["consent"])["consent"].to_pylist()
    found = {
        r["person_id"]: (
            r["marketing_consent"],
            r["marketing_consent_source"],
            r["marketing_consent_at"].replace(tzinfo=None),
        )
        for r in out
    }
    for person_id, (_, _, expected) in CASES.items():
        if expected[0] is None:
            assert person_id not in found
        else:
            assert found[person_id] == expected, person_id
