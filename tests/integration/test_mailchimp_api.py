"""The Mailchimp Marketing API client against a local fake API with scripted behaviours."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Iterator

import pytest
from mailchimp_server import FakeMailchimp, Fault, campaign, member, recipient
from pydantic import SecretStr

from c360.config import MailchimpSourceSettings, load_config
from c360.contracts.lake import MAILCHIMP_ACTIVITY_SCHEMA, MAILCHIMP_MEMBERS_API_SCHEMA
from c360.errors import ConfigError, DataError, TerminalError, TransientError
from c360.sources.mailchimp_api import (
    MailchimpAuthError,
    MailchimpClient,
    RetryPolicy,
    iso_utc,
)

KEY = "0123456789abcdef0123456789abcdef-us6"
MEMBERS = "/3.0/lists/L1/members"
FAST = RetryPolicy(max_attempts=3, backoff_base=0.001, backoff_cap=0.005)
UTC = dt.UTC


@pytest.fixture
def fake() -> Iterator[FakeMailchimp]:
    with FakeMailchimp(KEY) as server:
        yield server


def _client(
    fake: FakeMailchimp,
    *,
    key: str = KEY,
    retry: RetryPolicy = FAST,
    max_connections: int = 10,
) -> MailchimpClient:
    settings = MailchimpSourceSettings(
        api_key=SecretStr(key),
        base_url=fake.url,
        list_id="L1",
        page_size=10,
        max_connections=max_connections,
        timeout_seconds=5.0,
    )
    return MailchimpClient(settings, retry=retry)


def _ids(numbers: list[int] | range) -> list[str]:
    return [member(i)["id"] for i in numbers]


def _offsets(fake: FakeMailchimp, path: str = MEMBERS) -> list[int]:
    return [int(r.query["offset"]) for r in fake.requests if r.path == path]


# -- members: paging and shape -------------------------------------------------------------------


def test_members_are_paged_until_a_short_page_and_flattened(fake: FakeMailchimp) -> None:
    fake.members["L1"] = [member(i) for i in range(25)]

    with _client(fake) as client:
        table = client.members()

    assert table.schema == MAILCHIMP_MEMBERS_API_SCHEMA
    assert table.column("id").to_pylist() == _ids(range(25))
    assert [(r.query["count"], r.query["offset"]) for r in fake.requests] == [
        ("10", "0"),
        ("10", "10"),
        ("10", "20"),
    ]
    assert all(r.authorized for r in fake.requests)
    row = table.slice(3, 1).to_pylist()[0]
    assert json.loads(row.pop("merge_fields")) == member(3)["merge_fields"]
    assert row == {
        "email_address": "user3@example.com",
        "first_name": "First3",
        "last_name": "Last3",
        "address": "3 High St  Leeds  LS1  GB",
        "phone_number": "",
        "birthday": "01/31",
        "member_rating": "3",
        "optin_time": "",
        "optin_ip": "",
        "confirm_time": "2025-01-01T09:00:00+00:00",
        "confirm_ip": "10.0.0.1",
        "latitude": "53.8",
        "longitude": "-1.55",
        "gmtoff": "0",
        "dstoff": "0",
        "timezone": "Europe/London",
        "cc": "GB",
        "region": "ENG",
        "last_changed": "2025-01-02T10:00:00+00:00",
        "leid": "1003",
        "euid": "euid0003",
        "notes": None,
        "tags": '"VIP","Spring 25"',
        "id": hashlib.md5(b"user3@example.com").hexdigest(),
        "unique_email_id": "euid0003",
        "status": "subscribed",
        "list_id": "L1",
        "stats_avg_open_rate": 0.5,
        "stats_avg_click_rate": 0.25,
        "stats_ecommerce_total_revenue": 12.5,
        "stats_ecommerce_number_of_orders": 2,
        "stats_ecommerce_currency_code": "GBP",
    }


def test_a_full_last_page_stops_at_total_items(fake: FakeMailchimp) -> None:
    fake.members["L1"] = [member(i) for i in range(20)]

    with _client(fake) as client:
        assert client.members().num_rows == 20

    assert _offsets(fake) == [0, 10]


def test_members_since_last_changed_reads_only_recent_changes(fake: FakeMailchimp) -> None:
    old, new = "2025-01-02T10:00:00+00:00", "2025-01-05T08:30:00+00:00"
    fake.members["L1"] = [member(i, last_changed=new if i >= 20 else old) for i in range(25)]

    with _client(fake) as client:
        table = client.members(since_last_changed=dt.datetime(2025, 1, 3, 1, tzinfo=_plus_one()))

    assert table.column("id").to_pylist() == _ids(range(20, 25))
    assert fake.requests[0].query["since_last_changed"] == "2025-01-03T00:00:00+00:00"


def test_iso_utc_takes_naive_times_as_utc() -> None:
    assert iso_utc(dt.datetime(2025, 1, 3)) == "2025-01-03T00:00:00+00:00"


def _plus_one() -> dt.tzinfo:
    return dt.timezone(dt.timedelta(hours=1))


def test_members_added_while_paging_are_followed_to_the_new_total(fake: FakeMailchimp) -> None:
    audience = fake.members["L1"] = [member(i) for i in range(25)]

    def grow(path: str, offset: int) -> None:
        if path == MEMBERS and offset == 0:
            audience.insert(0, member(100))  # before the cursor: page 2 repeats member 9
            audience.extend(member(i) for i in range(101, 107))  # total 25 -> 32

    fake.after_page = grow
    with _client(fake) as client:
        ids = client.members().column("id").to_pylist()

    # Member 100 landed before the cursor: offset paging cannot see it; the next incremental
    # run (since_last_changed) does. Nothing else is lost, nothing is duplicated.
    assert ids == _ids([*range(25), *range(101, 107)])
    assert _offsets(fake) == [0, 10, 20, 30]


def test_members_removed_before_the_cursor_are_not_skipped(fake: FakeMailchimp) -> None:
    audience = fake.members["L1"] = [member(i) for i in range(25)]

    def shrink(path: str, offset: int) -> None:
        if path == MEMBERS and offset == 0 and len(audience) == 25:
            del audience[3]  # already read; members 10.. shift left past the cursor

    fake.after_page = shrink
    with _client(fake) as client:
        ids = client.members().column("id").to_pylist()

    assert sorted(ids) == sorted(_ids(range(25)))  # member 10 is not lost, none is repeated
    assert _offsets(fake) == [0, 10, 9, 19]  # the page re-read from offset - shrink


# -- retries and classification ------------------------------------------------------------------


def test_429_honours_retry_after_then_succeeds(fake: FakeMailchimp) -> None:
    fake.members["L1"] = [member(i) for i in range(3)]
    fake.fail(MEMBERS, Fault(status=429, retry_after="0"))
    slow = RetryPolicy(max_attempts=3, backoff_base=60.0, backoff_cap=60.0)

    started = time.monotonic()
    with _client(fake, retry=slow) as client:
        table = client.members()

    assert time.monotonic() - started < 5  # Retry-After: 0 beat a backoff of up to 60 s
    assert table.column("id").to_pylist() == _ids(range(3))
    assert fake.count(MEMBERS) == 2


@pytest.mark.parametrize(
    "fault", [Fault(status=500), Fault(status=503), Fault(kind="drop")], ids=["500", "503", "drop"]
)
def test_server_and_transport_errors_are_retried(fake: FakeMailchimp, fault: Fault) -> None:
    fake.members["L1"] = [member(i) for i in range(3)]
    fake.fail(MEMBERS, fault)

    with _client(fake) as client:
        table = client.members()

    assert table.column("id").to_pylist() == _ids(range(3))
    assert fake.count(MEMBERS) == 2


def test_500_forever_is_transient_after_bounded_attempts(fake: FakeMailchimp) -> None:
    fake.members["L1"] = [member(i) for i in range(3)]
    fake.fail(MEMBERS, Fault(status=500), times=None)

    with _client(fake) as client, pytest.raises(TransientError) as caught:
        client.members()

    message = str(caught.value)
    assert "/3.0/lists/L1/members at offset 0" in message
    assert "3 attempts" in message and "HTTP 500" in message
    assert KEY.split("-")[0] not in message
    assert fake.count(MEMBERS) == 3


def test_malformed_json_is_read_once_more(fake: FakeMailchimp) -> None:
    fake.members["L1"] = [member(i) for i in range(15)]
    fake.fail(MEMBERS, Fault(kind="malformed"), times=1, offset=10)

    with _client(fake) as client:
        assert client.members().column("id").to_pylist() == _ids(range(15))

    assert _offsets(fake) == [0, 10, 10]


def test_malformed_json_twice_is_a_data_error_naming_endpoint_and_offset(
    fake: FakeMailchimp,
) -> None:
    fake.members["L1"] = [member(i) for i in range(15)]
    fake.fail(MEMBERS, Fault(kind="malformed"), times=None, offset=10)

    with _client(fake) as client, pytest.raises(DataError, match="malformed JSON") as caught:
        client.members()

    assert "/3.0/lists/L1/members at offset 10" in str(caught.value)
    assert _offsets(fake) == [0, 10, 10]


def test_a_rejected_key_is_terminal_without_retry(fake: FakeMailchimp) -> None:
    fake.members["L1"] = [member(i) for i in range(3)]
    wrong = "ffffffffffffffffffffffffffffffff-us6"

    with _client(fake, key=wrong) as client, pytest.raises(MailchimpAuthError) as caught:
        client.members()

    message = str(caught.value)
    assert message.startswith("Mailchimp rejected the API key for data centre us6")
    assert "check sources.mailchimp.api_key" in message
    assert "ffff" not in message
    assert isinstance(caught.value, TerminalError)
    assert [r.authorized for r in fake.requests] == [False]


def test_403_is_terminal_without_retry(fake: FakeMailchimp) -> None:
    fake.members["L1"] = [member(i) for i in range(3)]
    fake.fail(MEMBERS, Fault(status=403), times=None)

    with _client(fake) as client, pytest.raises(MailchimpAuthError, match="HTTP 403"):
        client.members()

    assert fake.count(MEMBERS) == 1


def test_an_unknown_list_is_terminal_and_names_the_setting(fake: FakeMailchimp) -> None:
    with _client(fake) as client, pytest.raises(TerminalError) as caught:
        client.members("NOPE")

    assert str(caught.value) == (
        "Mailchimp GET /3.0/lists/NOPE/members failed with HTTP 404 (Resource Not Found): "
        "check sources.mailchimp.list_id"
    )
    assert not isinstance(caught.value, MailchimpAuthError)
    assert len(fake.requests) == 1


def test_logs_carry_neither_key_nor_email_addresses(
    fake: FakeMailchimp, caplog: pytest.LogCaptureFixture
) -> None:
    fake.members["L1"] = [member(i) for i in range(15)]
    fake.fail(MEMBERS, Fault(status=500))
    fake.fail(MEMBERS, Fault(kind="malformed"), offset=10)
    caplog.set_level(logging.DEBUG)

    with _client(fake) as client:
        assert client.members().num_rows == 15

    assert "Mailchimp GET /3.0/lists/L1/members: HTTP 500; attempt 2 of 3" in caplog.text
    assert "at offset 10: malformed JSON" in caplog.text
    assert "@" not in caplog.text
    assert KEY.split("-")[0] not in caplog.text


# -- campaigns and email activity ----------------------------------------------------------------


def test_sent_campaigns_since_a_time_are_paged(fake: FakeMailchimp) -> None:
    fake.campaigns = [
        campaign(f"c{day}", f"2025-01-{day:02d}T10:00:00+00:00") for day in range(1, 16)
    ]
    fake.campaigns.append({**campaign("draft", "2025-01-20T10:00:00+00:00"), "status": "save"})

    with _client(fake) as client:
        recent = client.campaigns(since=dt.datetime(2025, 1, 3, tzinfo=UTC))
        every = client.campaigns()

    assert [c["id"] for c in recent] == [f"c{day}" for day in range(3, 16)]
    assert recent[0]["recipients"] == {"list_id": "L1"}
    assert [c["id"] for c in every] == [f"c{day}" for day in range(1, 16)]
    first = fake.requests[0].query
    assert first["since_send_time"] == "2025-01-03T00:00:00+00:00"
    assert first["status"] == "sent"
    assert _offsets(fake, "/3.0/campaigns") == [0, 10, 0, 10]


def test_email_activity_matches_the_file_schema(fake: FakeMailchimp) -> None:
    opened = {"action": "open", "timestamp": "2025-01-05T10:00:00+00:00", "ip": "10.0.0.1"}
    clicked = {**opened, "action": "click", "url": "https://shop.example/p/1"}
    bounced = {"action": "bounce", "type": "hard", "timestamp": "2025-01-05T09:00:00+00:00"}
    fake.activity = {
        "c1": [recipient("c1", 1, [opened, clicked]), recipient("c1", 2, [bounced])],
        "c2": [],
    }

    with _client(fake) as client:
        table = client.email_activity(["c1", "c2", "c1"])

    assert table.schema == MAILCHIMP_ACTIVITY_SCHEMA
    email_id = hashlib.md5(b"user1@example.com").hexdigest()
    assert table.to_pylist()[0] == {
        "campaign_id": "c1",
        "list_id": "L1",
        "email_id": email_id,
        "email_address": "user1@example.com",
        "activity": [
            {**opened, "url": None},
            {**clicked},
        ],
    }
    assert table.to_pylist()[1]["activity"] == [
        {"action": "bounce", "timestamp": "2025-01-05T09:00:00+00:00", "url": None, "ip": None}
    ]
    assert table.num_rows == 2
    assert sorted(r.path for r in fake.requests) == [
        "/3.0/reports/c1/email-activity",
        "/3.0/reports/c2/email-activity",
    ]


def test_no_campaigns_give_an_empty_activity_table(fake: FakeMailchimp) -> None:
    with _client(fake) as client:
        table = client.email_activity([])

    assert table.schema == MAILCHIMP_ACTIVITY_SCHEMA and table.num_rows == 0
    assert fake.requests == []


def test_campaign_reports_run_concurrently_within_the_connection_cap(
    fake: FakeMailchimp,
) -> None:
    ids = [f"c{n}" for n in range(9)]
    open_ = {"action": "open", "timestamp": "2025-01-05T10:00:00+00:00", "ip": "10.0.0.1"}
    fake.activity = {c: [recipient(c, i, [open_]) for i in range(12)] for c in ids}
    fake.delay_seconds = 0.05

    with _client(fake, max_connections=3) as client:
        table = client.email_activity(ids)

    assert 1 < fake.max_in_flight <= 3
    assert table.num_rows == 9 * 12
    assert table.column("campaign_id").to_pylist() == [c for c in ids for _ in range(12)]
    assert len(fake.requests) == 9 * 2  # 12 recipients: a full page of 10, then 2


def test_a_failing_report_stops_the_others(fake: FakeMailchimp) -> None:
    ids = [f"c{n}" for n in range(4)]
    fake.activity = {c: [] for c in ids}
    fake.fail("/3.0/reports/c0/email-activity", Fault(status=401))

    with _client(fake, max_connections=2) as client, pytest.raises(MailchimpAuthError):
        client.email_activity(ids)

    assert fake.count("/3.0/reports/c0/email-activity") == 1


# -- configuration -------------------------------------------------------------------------------


def test_the_data_centre_comes_from_the_key() -> None:
    settings = MailchimpSourceSettings(api_key=SecretStr("abc123-us6"))
    with MailchimpClient(settings) as client:
        assert client.base_url == "https://us6.api.mailchimp.com/3.0"
        assert client.data_centre == "us6"


@pytest.mark.parametrize("key", [None, "0123456789abcdef", "0123456789abcdef-", "-us6"])
def test_a_key_without_a_data_centre_is_a_config_error(key: str | None) -> None:
    settings = MailchimpSourceSettings(api_key=None if key is None else SecretStr(key))

    with pytest.raises(ConfigError) as caught:
        MailchimpClient(settings)

    assert caught.value.key == "sources.mailchimp.api_key"
    assert "0123456789abcdef" not in str(caught.value)


def test_members_without_a_list_id_is_a_config_error() -> None:
    settings = MailchimpSourceSettings(api_key=SecretStr("abc123-us6"))
    with MailchimpClient(settings) as client, pytest.raises(ConfigError) as caught:
        client.members()

    assert caught.value.key == "sources.mailchimp.list_id"


def test_base_url_must_be_http() -> None:
    environ = {"C360_SOURCES_MAILCHIMP_BASE_URL": "ftp://proxy"}
    with pytest.raises(ConfigError) as caught:
        load_config(environ=environ)

    assert caught.value.key == "sources.mailchimp.base_url"
