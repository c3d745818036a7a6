"""Mailchimp into the lake through the Marketing API (a local fake server) and the files."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pyarrow.compute as pc
import pytest
from mailchimp_server import FakeMailchimp, campaign, member, recipient
from pydantic import SecretStr

from c360.config import MailchimpSourceSettings
from c360.ingest.mailchimp import ingest_mailchimp
from c360.lake import Lake

KEY = "0123456789abcdef-us6"
DAY = dt.date(2025, 3, 31)
OPEN = {"action": "open", "timestamp": "2025-03-30T10:00:00+00:00", "ip": "10.0.0.1"}


@pytest.fixture
def fake() -> Iterator[FakeMailchimp]:
    with FakeMailchimp(KEY) as server:
        server.members["L1"] = [member(i) for i in range(25)]
        server.campaigns = [
            campaign("old", "2025-01-05T09:00:00+00:00"),  # outside the 30-day window
            campaign("recent", "2025-03-20T09:00:00+00:00"),
            campaign("future", "2025-04-01T00:00:00+00:00"),  # after the cutoff of D
        ]
        server.activity = {
            name: [recipient(name, i, [OPEN] if i % 2 else []) for i in range(25)]
            for name in ("old", "recent", "future")
        }
        yield server


def test_api_mode_writes_the_audience_and_recent_campaign_activity(
    fake: FakeMailchimp, tmp_path: Path
) -> None:
    settings = MailchimpSourceSettings(
        api_key=SecretStr(KEY), base_url=fake.url, list_id="L1", page_size=10
    )
    lake = Lake(str(tmp_path / "lake"))
    reports = {r.table: r.rows for r in ingest_mailchimp(settings, lake, DAY)}
    assert reports == {"members": 25, "email_activity": 25}
    activity = lake.read_partition("mailchimp", "email_activity", DAY)
    assert set(activity.column("campaign_id").to_pylist()) == {"recent"}
    opened = [row for row in activity.to_pylist() if row["activity"]]
    assert len(opened) == 12 and opened[0]["activity"][0]["action"] == "open"
    members = lake.read_partition("mailchimp", "members", DAY)
    assert sorted(members.column("email_address").to_pylist())[:2] == [
        "user0@example.com",
        "user10@example.com",
    ]
    # merge_fields.ADDRESS (an object) in the export's form, as identity reads it
    row = members.filter(pc.equal(members["email_address"], "user3@example.com")).to_pylist()
    assert row[0]["address"] == "3 High St  Leeds  LS1  GB"
    assert all(r.path != "/3.0/reports/future/email-activity" for r in fake.requests)


def test_file_mode_reads_the_export(tmp_path: Path) -> None:
    folder = tmp_path / "mc"
    folder.mkdir()
    (folder / "members_export.csv").write_text(
        '"Email Address","Address","EUID"\n"a@x.com","1 Park Row  Leeds  LS1 5AB  GB","e1"\n'
    )
    (folder / "email_activity.jsonl").write_text(
        '{"campaign_id": "c1", "list_id": "L1", "email_id": "x", "email_address": "a@x.com", '
        '"activity": []}\n'
    )
    lake = Lake(str(tmp_path / "lake"))
    reports = {
        r.table: r.rows
        for r in ingest_mailchimp(MailchimpSourceSettings(dir=str(folder)), lake, DAY)
    }
    assert reports == {"members": 1, "email_activity": 1}
    members = lake.read_partition("mailchimp", "members", DAY)
    assert members.column("euid").to_pylist() == ["e1"]
    assert members.column("address").to_pylist() == ["1 Park Row  Leeds  LS1 5AB  GB"]
