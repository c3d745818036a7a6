"""Identity stage 1 on the hand-made world: every record with its normalised attributes."""

from __future__ import annotations

import hashlib
from typing import Any

import pyarrow as pa
import pytest
from tiny_world import DAY

from c360.batch.features import identity_record_steps
from c360.config import Settings
from c360.contracts.identity import RECORDS
from c360.engines import open_compute, open_engine
from c360.identity import records
from c360.ingest.run import ingest
from c360.lake import Lake
from c360.pipeline.lake_inputs import raw_inputs


def _extract(settings: Settings) -> records.IdentityRecords:
    ingest(settings, DAY)
    engine = open_engine(settings.compute)
    try:
        lake = Lake(settings.lake.url)
        raw = dict(
            engine.run(raw_inputs(lake, DAY), identity_record_steps(DAY), records.RAW_OUTPUTS)
        )
    finally:
        engine.close()
    return records.build(open_compute(settings.compute), raw, settings.identity)


@pytest.fixture
def extracted(tiny_world: Settings) -> records.IdentityRecords:
    return _extract(tiny_world)


def _by_key(table: pa.Table) -> dict[str, dict[str, Any]]:
    return {row["record_key"]: row for row in table.to_pylist()}


def test_every_source_record_is_there_once(extracted: records.IdentityRecords):
    keys = extracted.records["record_key"].to_pylist()
    assert len(keys) == len(set(keys))
    kinds = {k.split(":")[0] for k in keys}
    assert kinds == {
        "mysql/customer",
        "mysql/order",
        "zendesk/user",
        "mailchimp/member",
        "clickstream/cookie",
    }
    assert extracted.records.schema == RECORDS


def test_records_carry_normalised_attributes(extracted: records.IdentityRecords):
    rows = _by_key(extracted.records)
    alice = rows["mysql/customer:1"]
    assert (alice["customer_id"], alice["email"], alice["first_name"]) == (
        1,
        "alice@x.com",
        "alice",
    )
    assert alice["birth_md"] == "01-11"
    assert alice["city"] == "leeds"  # folded like the address (issue 17: every field used)
    guest = rows["mysql/order:4"]  # a guest checkout under Alice's work address
    assert guest["customer_id"] is None and guest["email_key"] == "alice.work@x.com"
    assert guest["city"] is None  # the order's shipping_city, empty here
    member = rows["mailchimp/member:77df0c091681b71e32b643dc62e4a567"]  # md5("alice@x.com")
    assert member["email"] == "alice@x.com" and member["customer_id"] is None
    user = rows["zendesk/user:10"]  # the user event's detail.phone, as orders' phones
    assert (user["phone"], user["first_name"], user["last_name"]) == ("+441134960000", "alice", "a")
    assert rows["zendesk/user:11"]["phone"] is None  # no phone in the detail
    cookie = rows["clickstream/cookie:c-a"]
    assert cookie["customer_id"] == 1 and cookie["first_seen"] is not None


def test_mailchimp_address_parts_as_the_orders_show_them(extracted: records.IdentityRecords):
    """ADDRESS in the export's form (parts joined by two spaces) gives the street line, zip and
    city, folded like an order's shipping address; an empty one gives nothing."""
    rows = _by_key(extracted.records)

    def member(email: str) -> tuple[str | None, ...]:
        row = rows[f"mailchimp/member:{hashlib.md5(email.encode()).hexdigest()}"]
        return row["address"], row["postcode"], row["city"]

    assert member("alice@x.com") == ("1 park row", "ls15ab", "leeds")
    # all six parts (a second line and a state), a run of three spaces read as two
    assert member("bob@y.com") == ("2 mill lane", "yo17hh", "york")
    assert member("eve@n.com") == (None, None, None)


def test_identifiers_in_lookup_form(extracted: records.IdentityRecords):
    rows = {
        (r["record_key"], r["id_type"], r["id_value"]) for r in extracted.identifiers.to_pylist()
    }
    assert ("clickstream/cookie:c-a", "anonymous_id", "c-a") in rows
    assert ("clickstream/cookie:c-a", "customer_id", "1") in rows
    assert ("zendesk/user:10", "zendesk_user_id", "10") in rows
    member = "mailchimp/member:77df0c091681b71e32b643dc62e4a567"
    assert (member, "mailchimp_id", "77df0c091681b71e32b643dc62e4a567") in rows
    assert (member, "mailchimp_id", "a1") in rows  # the EUID as well
    assert ("mysql/order:4", "email", "alice.work@x.com") in rows
    assert ("zendesk/user:10", "phone", "+441134960000") in rows


def test_blocked_values_are_no_evidence(tiny_world: Settings):
    settings = tiny_world.model_copy(
        update={
            "identity": tiny_world.identity.model_copy(update={"blocked_values": ("dave@g.com",)})
        }
    )
    rows = _by_key(_extract(settings).records)
    assert rows["mysql/order:6"]["email"] is None and rows["mysql/order:6"]["email_key"] is None
