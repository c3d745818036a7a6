"""Building blocks of the simulator: vectorised text, people, catalogue, sessions."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import numpy as np
import pytest

from c360.contracts.shop_db import ORDER_STATUSES
from c360.simulator import text
from c360.simulator.behaviour import Devices, activity_factor, plan_sessions
from c360.simulator.orders import Status
from c360.simulator.params import WorldParams
from c360.simulator.rand import Stream, keyed_hash, stream
from c360.simulator.world import Calendar, EmailVariant, Kind, make_catalog, make_people

CAL = Calendar(dt.date(2025, 1, 1), 120)


def test_timestamps_match_the_standard_library() -> None:
    rng = np.random.default_rng(3)
    millis = rng.integers(-(10**12), 4 * 10**12, 2000)
    got = text.to_str(text.timestamps(millis))
    for ms, stamp in zip(millis.tolist(), got, strict=True):
        expected = dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=ms)
        assert stamp == expected.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    plain = text.to_str(text.timestamps(millis[:5] // 1000 * 1000, sep=" ", fraction=6, suffix=""))
    assert all(len(s) == 26 and s.endswith(".000000") and s[10] == " " for s in plain)


def test_uuids_are_valid_version_4_and_reproducible() -> None:
    first = text.to_str(text.uuids(np.random.default_rng(1), 500))
    again = text.to_str(text.uuids(np.random.default_rng(1), 500))
    other = text.to_str(text.uuids(np.random.default_rng(2), 500))
    assert first == again
    assert not set(first) & set(other)
    assert all(uuid.UUID(u).version == 4 and str(uuid.UUID(u)) == u for u in first)
    assert len(set(first)) == 500


def test_arrow_helpers_build_valid_json() -> None:
    cents = np.asarray([0, 5, 99, 100, 123456])
    assert text.money(cents).to_pylist() == ["0.00", "0.05", "0.99", "1.00", "1234.56"]
    items = text.join('{"id":', text.ints([1, 2, 3, 4]), "}")
    grouped = text.group_join(items, np.asarray([2, 0, 2]), ",").to_pylist()
    assert [json.loads(f"[{g}]") for g in grouped] == [
        [{"id": 1}, {"id": 2}],
        [],
        [{"id": 3}, {"id": 4}],
    ]
    lines = text.join(text.ints([7, 8]), "\n")
    assert bytes(text.concatenated(lines)) == b"7\n8\n"
    ips = text.ipv4(keyed_hash(1, 2, np.arange(100))).to_pylist()
    assert all(
        len(ip.split(".")) == 4 and all(0 <= int(o) <= 255 for o in ip.split(".")) for ip in ips
    )


def test_keyed_hash_is_stable_across_processes() -> None:
    # fixed values: a salted hash (Python's hash()) would differ from run to run
    assert keyed_hash(42, 11, np.asarray([0, 1]))[0] == np.uint64(17820060846555289698)
    assert keyed_hash(42, 11, np.asarray([0, 1]))[1] != keyed_hash(43, 11, np.asarray([0, 1]))[1]


def test_people_emails_are_unique_and_variants_differ() -> None:
    """Every address is one person's, but a household's shared mailbox (both of its people)."""
    people = make_people(5, 3000, CAL, WorldParams())
    every = np.arange(people.n)
    by_variant = {v: people.emails(every, v) for v in EmailVariant}
    owners: dict[str, int] = {}
    for variant, emails in by_variant.items():
        for person, email in enumerate(emails):
            owner = owners.setdefault(email, person)
            if owner != person:  # the same household, the same shared address
                assert people.household[owner] == people.household[person] >= 0, (variant, email)
                assert people.mailbox[owner] == people.mailbox[person] >= 0
            assert email.count("@") == 1 and '"' not in email and "\\" not in email
    primary = by_variant[EmailVariant.PRIMARY]
    for variant in (EmailVariant.WORK, EmailVariant.TYPO, EmailVariant.TYPO_SUPPORT):
        assert all(a != b for a, b in zip(primary, by_variant[variant], strict=True))
    account = by_variant[EmailVariant.ACCOUNT]
    capital = people.capitalised
    assert all(
        (a != p) == bool(c) and a.lower() == p
        for a, p, c in zip(account, primary, capital, strict=True)
    )
    assert people.email(7, EmailVariant.TYPO) == by_variant[EmailVariant.TYPO][7]


def test_households_share_an_address_and_a_digit_free_mailbox() -> None:
    people = make_people(5, 3000, CAL, WorldParams())
    everyone = np.arange(people.n)
    heads = np.flatnonzero(people.household == everyone)
    members = np.flatnonzero((people.household >= 0) & (people.household != everyone))
    head = people.household[members]
    assert len(members) == len(heads) > 0
    for trait in (people.country, people.city, people.street, people.house, people.postcode):
        assert (trait[members] == trait[head]).all()
    assert (people.first[members] != people.first[head]).all()
    assert (people.last[members] == people.last[head]).mean() > 0.5
    sharing = members[people.mailbox[members] >= 0]
    assert (people.mailbox[sharing] == people.mailbox[people.household[sharing]]).all()
    assert len(people.mailboxes) == len(sharing) == round(0.02 * 1.27 / 0.85 * people.n)
    assert not any(c.isdigit() for box in people.mailboxes for c in box)
    keys = {box.replace(".", "") for box in people.mailboxes}
    assert len(keys) == len(people.mailboxes)
    assert (people.phone[members] == people.phone[head]).sum() > 0
    alone = make_people(5, 3000, CAL, WorldParams(shared_email_share=0, shared_phone_share=0))
    assert (alone.household == -1).all() and alone.mailboxes == []


def test_people_layout_and_latent_traits() -> None:
    people = make_people(5, 2000, CAL, WorldParams())
    assert people.n == 2000 + 200 + 80
    assert (people.kind[:2000] == Kind.CUSTOMER).all()
    assert (np.diff(people.created_s[:2000]) >= 0).all()  # customer ids follow sign-up time
    assert len(set(people.person_key.tolist())) == people.n
    assert np.all(people.created_s[:2000] <= CAL.end_s)
    assert abs(float(people.engagement.mean()) - 1.0) < 0.1
    churners = people.churn_day < CAL.days
    assert 0.25 < churners[:2000].mean() < 0.45
    assert (people.churn_day[churners] >= people.first_day[churners] + 30).all()


def test_catalog_prices_and_category_picks() -> None:
    catalog = make_catalog(5, 500, CAL)
    assert catalog.n == 500 and len(set(catalog.sku)) == 500
    assert (catalog.price_cents % 100 == 99).all() and (catalog.price_cents >= 199).all()
    rng = np.random.default_rng(0)
    wanted = rng.integers(0, 12, 5000)
    picked = catalog.pick(rng, wanted)
    assert (catalog.category[picked] == wanted).all()


def test_status_codes_follow_the_contract() -> None:
    assert tuple(s.name.lower() for s in Status) == ORDER_STATUSES


def test_sessions_decay_to_nothing_after_churn() -> None:
    params = WorldParams()
    people = make_people(9, 4000, CAL, params)
    people.churn_day[:] = 60
    devices = Devices.empty(people.n, params.max_devices)
    counts = []
    for day in (10, 40, 59, 60, 90):
        factor = activity_factor(people, day, params)
        sessions = plan_sessions(
            stream(9, Stream.VISITS, day), people, devices, factor, day, 1.0, params
        )
        counts.append(int((~sessions.signup).sum()))  # sign-ups are scheduled, not drawn
    assert counts[0] > 2 * counts[2] > 0  # day 59 is the last day before churn
    assert counts[3] == counts[4] == 0


@pytest.mark.parametrize("day", [0, 50])
def test_session_starts_keep_persons_sessions_apart(day: int) -> None:
    params = WorldParams(browse_rate=0.3, order_rate=0.3)
    people = make_people(4, 3000, CAL, params)
    devices = Devices.empty(people.n, params.max_devices)
    factor = activity_factor(people, day, params)
    sessions = plan_sessions(
        stream(4, Stream.VISITS, day), people, devices, factor, day, 1.0, params
    )
    per_person = np.bincount(sessions.person, minlength=people.n)
    assert per_person.max() <= 2
    assert (sessions.customer_id[sessions.signup] == sessions.person[sessions.signup] + 1).all()
