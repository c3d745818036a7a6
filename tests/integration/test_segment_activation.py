"""Activation: a segment exported to CSV and Parquet and synced to a Mailchimp audience (the
local fake speaking the Marketing API v3's shapes and errors: 400 with per-member errors, 200
with ``errors``, 429, 5xx) — and never a person without marketing consent, in any of them."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from mailchimp_server import FakeMailchimp, Fault
from pydantic import SecretStr

from c360.cli.main import cli
from c360.config import MailchimpSourceSettings
from c360.errors import TransientError
from c360.pipeline import activation
from c360.segments import membership
from c360.sources.mailchimp_api import MailchimpClient, RetryPolicy
from c360.stores import ServingStore, open_store

KEY = "0123456789abcdef0123456789abcdef-us6"
DAY = dt.date(2026, 12, 5)
N = 12
IDS = [f"p_{i:02d}" for i in range(N)]
FAST = RetryPolicy(max_attempts=3, backoff_base=0.001, backoff_cap=0.005)
LIST = "/3.0/lists/L1"


def consent(i: int) -> bool | None:
    return None if i % 4 == 3 else i % 4 != 2  # 2, 6, 10: refused; 3, 7, 11: never asked


def email(i: int) -> str | None:
    return None if i == 9 else f"person{i}@example.com"


def exited(i: int) -> bool:
    return i == 5  # left the segment


def expected_audience() -> list[int]:
    return [i for i in range(N) if consent(i) is True and email(i) and not exited(i)]


def without_consent() -> list[str]:
    return [e for i in range(N) if consent(i) is not True and (e := email(i))]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ServingStore]:
    opened = open_store(f"sqlite:///{tmp_path / 'serving.db'}")
    opened.migrate()
    opened.publish_batch(
        DAY,
        {
            "person": pa.table(
                {
                    "person_id": IDS,
                    "email": [email(i) for i in range(N)],
                    "first_name": [f"First{i}" for i in range(N)],
                    "last_name": [f"Last{i}" for i in range(N)],
                }
            ),
            "identity_map": pa.table(
                {"id_type": ["customer_id"] * N, "id_value": IDS, "person_id": IDS}
            ),
            "batch_profile": pa.table(
                {
                    "person_id": IDS,
                    "total_lifetime_spend": [100.0 * i for i in range(N)],
                    "marketing_consent": pa.array([consent(i) for i in range(N)], pa.bool_()),
                    "marketing_consent_source": [
                        None if consent(i) is None else "orders DB opt-in" for i in range(N)
                    ],
                    "marketing_consent_at": pa.array(
                        [dt.datetime(2026, 1, 1 + i) for i in range(N)], pa.timestamp("us")
                    ),
                }
            ),
        },
    )
    made = opened.create_segment("vip", "total_lifetime_spend >= 0")
    spells = pa.Table.from_pylist(
        [
            {
                "segment": "vip",
                "segment_version": made.created_at.isoformat(),
                "person_id": IDS[i],
                "entered_on": dt.date(2026, 12, 1),
                "exited_on": DAY if exited(i) else None,
            }
            for i in range(N)
        ],
        membership.SCHEMA,
    )
    opened.replace_segment_members(DAY, spells, ["vip"])
    yield opened
    opened.dispose()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_an_export_holds_the_consenting_members_only(
    store: ServingStore, tmp_path: Path, fmt: str
) -> None:
    path = tmp_path / "out" / f"vip.{fmt}"
    done = activation.export_segment(store, "vip", path, fmt)
    table = pa_csv.read_csv(path) if fmt == "csv" else pq.read_table(path)
    rows = table.to_pylist()
    assert [r["person_id"] for r in rows] == [IDS[i] for i in expected_audience()]
    assert [r["email"] for r in rows] == [email(i) for i in expected_audience()]
    assert {r["marketing_consent_source"] for r in rows} == {"orders DB opt-in"}
    assert done.rows == len(expected_audience())
    assert done.without_consent == N - 1 - len(expected_audience())  # exited: not a member
    raw = path.read_bytes()
    for address in without_consent():
        assert address.encode() not in raw
    assert table.column_names == activation_columns()


def activation_columns() -> list[str]:
    from c360.stores.segments import AUDIENCE_SCHEMA

    return AUDIENCE_SCHEMA.names


def client(fake: FakeMailchimp) -> MailchimpClient:
    settings = MailchimpSourceSettings(
        api_key=SecretStr(KEY), base_url=fake.url, list_id="L1", page_size=5
    )
    return MailchimpClient(settings, retry=FAST)


def sent_addresses(fake: FakeMailchimp) -> set[str]:
    """Every address any request carried."""
    text = " ".join(json.dumps(r.body) for r in fake.requests if r.body is not None)
    return {e for i in range(N) if (e := email(i)) and e in text}


def test_a_sync_upserts_tags_and_untags_and_sends_no_one_without_consent(
    store: ServingStore, tmp_path: Path
) -> None:
    wanted = {email(i) for i in expected_audience()}
    with FakeMailchimp(KEY) as fake:
        # Someone tagged by an earlier sync who is no longer in the segment.
        fake.members["L1"] = [{"email_address": "gone@example.com", "status": "subscribed"}]
        fake.tags["L1"] = {7: {"name": "vip", "members": {"gone@example.com"}}}
        with client(fake) as mailchimp:
            audience = store.segment_audience("vip")
            report = mailchimp.sync_tag(
                "vip",
                [
                    (r["email"], r["first_name"], r["last_name"])
                    for r in audience.members.to_pylist()
                ],
            )
        assert fake.tagged("L1", "vip") == wanted
        assert (report.created, report.updated, report.tagged) == (len(wanted), 0, len(wanted))
        assert (report.untagged, report.tag_id, dict(report.failed)) == (1, 7, {})
        assert sent_addresses(fake) == wanted  # and so no one without consent
        assert sent_addresses(fake).isdisjoint(without_consent())
        subscribed = {m["email_address"]: m for m in fake.members["L1"]}
        assert subscribed[email(0)]["merge_fields"] == {"FNAME": "First0", "LNAME": "Last0"}

        # Again: nothing to tag, everyone updated, nothing new.
        with client(fake) as mailchimp:
            again = mailchimp.sync_tag("vip", [(e, None, None) for e in sorted(wanted)])
        assert (again.created, again.updated, again.tagged, again.untagged) == (
            0,
            len(wanted),
            0,
            0,
        )


def test_refused_members_are_left_out_and_counted(store: ServingStore) -> None:
    audience = [(email(i), None, None) for i in expected_audience()]
    invalid, refused = str(audience[0][0]), str(audience[1][0])
    with FakeMailchimp(KEY) as fake:
        fake.invalid_emails.add(invalid)  # a 400 naming members[0]
        fake.refused_emails.add(refused)  # listed in a 200's errors
        with client(fake) as mailchimp:
            report = mailchimp.sync_tag("vip", audience)  # type: ignore[arg-type]
        posts = [r for r in fake.requests if r.path == LIST and r.method == "POST"]
        assert len(posts) == 2  # the batch, then the batch without what the 400 named
        assert invalid not in json.dumps(posts[1].body)
        assert dict(report.failed) == {"invalid email_address": 1, "ERROR_GENERIC": 1}
        assert report.failed_emails == {invalid, refused}
        assert fake.tagged("L1", "vip") == {str(e) for e, _, _ in audience} - {invalid, refused}


def test_429_and_5xx_are_retried_and_a_lasting_outage_is_transient(
    store: ServingStore,
) -> None:
    audience = [(str(email(i)), None, None) for i in expected_audience()]
    with FakeMailchimp(KEY) as fake:
        fake.fail(LIST, Fault(status=429, retry_after="0"), times=1)
        fake.fail(LIST + "/segments", Fault(status=503), times=2)
        with client(fake) as mailchimp:
            report = mailchimp.sync_tag("vip", audience)
        assert report.tagged == len(audience)
        assert fake.count(LIST) == 2  # 429, then the batch
        with client(fake) as mailchimp:
            fake.fail(LIST, Fault(status=502), times=None)
            with pytest.raises(TransientError, match="still failing after 3 attempts"):
                mailchimp.sync_tag("vip", audience)


def test_cli_exports_and_syncs(store: ServingStore, tmp_path: Path) -> None:
    runner = CliRunner()
    with FakeMailchimp(KEY) as fake:
        env = {
            "C360_SERVING_URL": f"sqlite:///{tmp_path / 'serving.db'}",
            "C360_SOURCES_MAILCHIMP_API_KEY": KEY,
            "C360_SOURCES_MAILCHIMP_BASE_URL": fake.url,
            "C360_SOURCES_MAILCHIMP_LIST_ID": "L1",
        }
        out = tmp_path / "vip.csv"
        exported = runner.invoke(cli, ["segment", "export", "vip", "--output", str(out)], env=env)
        assert exported.exit_code == 0, exported.output
        assert f"{len(expected_audience())} persons" in exported.stdout
        assert "left out without marketing consent" in exported.stdout
        assert pa_csv.read_csv(out).num_rows == len(expected_audience())
        synced = runner.invoke(cli, ["segment", "sync", "vip", "--json"], env=env)
        assert synced.exit_code == 0, synced.output
        report = json.loads(synced.stdout)
        assert report["tagged"] == len(expected_audience()) and report["tag"] == "vip"
        assert report["without_consent"] == N - 1 - len(expected_audience())
        assert sent_addresses(fake).isdisjoint(without_consent())
        assert KEY not in synced.output


def test_the_api_exports_the_consenting_members(store: ServingStore, tmp_path: Path) -> None:
    import io

    import httpx

    from c360.access.keys import generate
    from c360.api.app import create_app
    from c360.api.server import serve_in_thread
    from c360.config import load_config

    key = generate(["profiles:read"])
    store.add_api_key(key.record)
    settings = load_config(environ={"C360_LAKE_URL": str(tmp_path / "lake")}).settings
    with (
        serve_in_thread(create_app(settings, store=store)) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key.key}"}) as api,
    ):
        as_csv = api.get("/v1/segments/vip/export")
        as_parquet = api.get("/v1/segments/vip/export", params={"format": "parquet"})
        assert api.get("/v1/segments/nobody/export").status_code == 404
        assert api.get("/v1/segments/vip/export", headers={"Authorization": ""}).status_code == 401
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.headers["x-c360-left-out"] == str(N - 1 - len(expected_audience()))
    for table in (
        pa_csv.read_csv(io.BytesIO(as_csv.content)),
        pq.read_table(io.BytesIO(as_parquet.content)),
    ):
        assert table.column("email").to_pylist() == [email(i) for i in expected_audience()]
    for address in without_consent():
        assert address.encode() not in as_csv.content
