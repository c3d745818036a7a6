"""Consent at every exit and the read audit, through a real uvicorn server and real stores
(SQLite and PostgreSQL): a withdrawal arriving now — an admin's PUT or Mailchimp's unsubscribe
webhook — wins over the batch's older consent at the Profile API, the segment export and the
webhook outbox before the next batch; the newest decision wins; profile reads are audited."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
from click.testing import CliRunner
from sqlalchemy import insert

from c360.access.keys import generate
from c360.api.app import create_app
from c360.api.audit import ReadAudit
from c360.api.server import serve_in_thread
from c360.cli.main import cli
from c360.config import Settings, load_config
from c360.contracts import serving
from c360.privacy.identifiers import PERSON, identifier_hash
from c360.segments import membership
from c360.stores import ServingStore, StoreUnavailable, open_store
from c360.stores.audit import Read

DAY = dt.date(2026, 12, 5)
IDS = ["p_1", "p_2", "p_3"]
EMAILS = ["ann@example.com", "bob@example.com", "cy@example.com"]
CONSENT = [True, True, False]  # as of the batch, decided on 1 Dec
SECRET = "mc-hook-secret-0123456789"


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    environ = {"C360_LAKE_URL": str(tmp_path / "lake")}
    return load_config(environ=environ, overrides=overrides).settings


def publish(store: ServingStore, outbox: bool = True) -> None:
    """Three persons, a segment of all three and an entered event of each, due now."""
    decided = dt.datetime(2026, 12, 1, 9, 0)
    store.publish_batch(
        DAY,
        {
            "person": pa.table({"person_id": IDS, "email": EMAILS, "first_name": ["A", "B", "C"]}),
            "identity_map": pa.table(
                {
                    "id_type": ["email"] * 3 + ["customer_id"],
                    "id_value": [*EMAILS, "101"],
                    "person_id": [*IDS, "p_1"],
                }
            ),
            "batch_profile": pa.table(
                {
                    "person_id": IDS,
                    "total_lifetime_spend": [100.0, 200.0, 300.0],
                    "churn_risk": [0.7, 0.2, 0.9],
                    "email_open_rate": [0.5, 0.4, 0.3],
                    "marketing_consent": pa.array(CONSENT, pa.bool_()),
                    "marketing_consent_source": ["mailchimp"] * 3,
                    "marketing_consent_at": pa.array([decided] * 3, pa.timestamp("us")),
                }
            ),
        },
    )
    if not outbox:
        return
    made = store.create_segment("everyone", "total_lifetime_spend >= 0")
    spells = pa.Table.from_pylist(
        [
            {
                "segment": "everyone",
                "segment_version": made.created_at.isoformat(),
                "person_id": pid,
                "entered_on": DAY,
                "exited_on": None,
            }
            for pid in IDS
        ],
        membership.SCHEMA,
    )
    store.replace_segment_members(DAY, spells, ["everyone"])
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with store.engine.begin() as conn:
        conn.execute(
            insert(serving.segment_event),
            [
                {
                    "event_id": str(uuid.uuid4()),
                    "segment": "everyone",
                    "person_id": pid,
                    "kind": "segment.entered",
                    "occurred_at": now,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now - dt.timedelta(seconds=1),
                }
                for pid in IDS
            ],
        )


def key(store: ServingStore, *scopes: str) -> dict[str, str]:
    made = generate(scopes)
    store.add_api_key(made.record)
    return {"Authorization": f"Bearer {made.key}"}


@contextmanager
def api(settings: Settings, store: ServingStore) -> Iterator[httpx.Client]:
    with (
        serve_in_thread(create_app(settings, store=store)) as url,
        httpx.Client(base_url=url) as client,
    ):
        yield client


def consenting(store: ServingStore) -> dict[str, bool]:
    """Who each exit would market to now: the export's audience and the webhook outbox."""
    audience = store.segment_audience("everyone").members.column("person_id").to_pylist()
    due = {e.person_id: e.consent for e in store.due_events(dt.datetime(2100, 1, 1), 100)}
    assert set(audience) == {pid for pid, yes in due.items() if yes}
    return due


def test_a_withdrawal_now_wins_at_every_exit(store: ServingStore, tmp_path: Path) -> None:
    publish(store)
    reader = key(store, "profiles:read")
    service = key(store, "profiles:read", "profiles:service")
    admin = key(store, "admin")
    assert consenting(store) == {"p_1": True, "p_2": True, "p_3": False}
    with api(settings_for(tmp_path), store) as client:
        before = client.get("/v1/profiles/p_1", headers=reader).json()
        assert before["profile"]["churn_risk"] == 0.7
        assert before["profile"]["marketing_consent"] is True
        # without consent in the batch, the marketing fields are null unless for service use
        refused = client.get("/v1/profiles/p_3?explain=true", headers=reader).json()
        assert refused["profile"]["churn_risk"] is None
        assert refused["batch"]["email_open_rate"] is None
        assert refused["profile"]["total_lifetime_spend"] == 300.0  # not a marketing field
        assert client.get("/v1/profiles/p_3", headers=service).json()["profile"]["churn_risk"]

        put = client.put("/v1/persons/p_1/consent", json={"consent": False}, headers=admin)
        assert put.status_code == 200, put.text
        assert put.json()["person_id"] == "p_1" and put.json()["consent"] is False

        after = client.get("/v1/profiles/by/email/ANN@example.com", headers=reader).json()
        assert after["profile"]["marketing_consent"] is False
        assert after["profile"]["marketing_consent_source"] == "api"
        assert after["profile"]["churn_risk"] is None
        assert after["profile"]["email_open_rate"] is None
        narrowed = client.get("/v1/profiles/p_1?fields=churn_risk", headers=reader).json()
        assert narrowed["profile"] == {"churn_risk": None}
        kept = client.get("/v1/profiles/p_1", headers=service).json()
        assert kept["profile"]["churn_risk"] == 0.7
        assert kept["profile"]["marketing_consent"] is False
        assert consenting(store) == {"p_1": False, "p_2": True, "p_3": False}
        export = client.get("/v1/segments/everyone/export?format=csv", headers=reader)
        assert export.status_code == 200
        assert "ann@example.com" not in export.text and "bob@example.com" in export.text
        assert export.headers["x-c360-left-out"] == "2"

        # an older decision does not undo a newer one; a newer opt-in wins over the batch's no
        older = {"consent": True, "decided_at": "2026-12-02T00:00:00Z"}
        assert client.put("/v1/persons/p_1/consent", json=older, headers=admin).status_code == 200
        profile = client.get("/v1/profiles/p_1", headers=reader).json()["profile"]
        assert profile["churn_risk"] is None
        assert client.put(
            "/v1/persons/p_3/consent", json={"consent": True}, headers=admin
        ).is_success
        assert client.get("/v1/profiles/p_3", headers=reader).json()["profile"]["churn_risk"] == 0.9
        assert consenting(store) == {"p_1": False, "p_2": True, "p_3": True}

        # the route's refusals
        unknown = client.put("/v1/persons/p_nobody/consent", json={"consent": False}, headers=admin)
        assert unknown.status_code == 404
        forbidden = client.put("/v1/persons/p_1/consent", json={"consent": True}, headers=reader)
        assert forbidden.status_code == 403
        future = {"consent": True, "decided_at": "2999-01-01T00:00:00Z"}
        assert client.put("/v1/persons/p_1/consent", json=future, headers=admin).status_code == 422
        bad = client.put("/v1/persons/p_1/consent", json={"consent": "maybe"}, headers=admin)
        assert bad.status_code == 422
    assert consenting(store) == {"p_1": False, "p_2": True, "p_3": True}


def test_the_next_batch_does_not_bring_back_an_older_consent(store: ServingStore) -> None:
    publish(store)
    from c360.access.consent import Decision

    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert store.record_consent("p_2", Decision(False, now, "api")) == "p_2"
    publish(store, outbox=False)  # the next batch still says yes as of 1 Dec: older than that
    assert consenting(store)["p_2"] is False
    # a decision stored by identifier follows the person, whatever their id becomes
    store.record_identifier_consent("email", "cy@example.com", Decision(True, now, "mailchimp"))
    assert consenting(store)["p_3"] is True
    # the erasure removes a person's decisions (they hold the identifiers)
    assert store.erase_consent([("email", "cy@example.com"), ("person_id", "p_3")]) == 1
    assert consenting(store)["p_3"] is False
    assert store.consent_decisions() == {"p_2": store.consent_decisions()["p_2"]}


def _form(kind: str, email: str, fired_at: str, list_id: str = "L1") -> dict[str, str]:
    return {
        "type": kind,
        "fired_at": fired_at,
        "data[email]": email,
        "data[list_id]": list_id,
        "data[reason]": "manual",
    }


def test_a_mailchimp_unsubscribe_withdraws_consent_at_once(
    store: ServingStore, tmp_path: Path
) -> None:
    publish(store)
    reader = key(store, "profiles:read")
    settings = settings_for(
        tmp_path,
        **{"sources.mailchimp.webhook_secret": SECRET, "sources.mailchimp.list_id": "L1"},
    )
    url = f"/v1/webhooks/mailchimp?secret={SECRET}"
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    with api(settings, store) as client:
        assert client.get(url).status_code == 200  # Mailchimp's check of the URL
        assert client.post("/v1/webhooks/mailchimp?secret=wrong", data={}).status_code == 401
        assert client.post("/v1/webhooks/mailchimp", data={}).status_code == 401
        other_list = client.post(url, data=_form("unsubscribe", "bob@example.com", now, "L9"))
        assert other_list.json() == {"recorded": False}
        done = client.post(url, data=_form("unsubscribe", "BOB@example.com", now))
        assert done.status_code == 200 and done.json() == {"recorded": True}
        profile = client.get("/v1/profiles/p_2", headers=reader).json()["profile"]
        assert profile["marketing_consent"] is False
        assert profile["marketing_consent_source"] == "mailchimp"
        assert profile["churn_risk"] is None
        assert consenting(store)["p_2"] is False
        bad = client.post(url, data=_form("unsubscribe", "not-an-address", now))
        assert bad.status_code == 400
        assert "not-an-address" not in bad.text
    with api(settings_for(tmp_path), store) as client:  # no secret configured
        closed = client.post(url, data=_form("unsubscribe", "bob@example.com", now))
        assert closed.status_code == 503


def test_profile_reads_are_audited_and_an_admin_can_query_them(
    store: ServingStore, tmp_path: Path
) -> None:
    publish(store)
    reader = key(store, "profiles:read")
    admin = key(store, "admin")
    reader_id = reader["Authorization"].split("_")[1]
    settings = settings_for(tmp_path, **{"api.audit_flush_seconds": 0.05})
    with api(settings, store) as client:
        for _ in range(3):
            assert client.get("/v1/profiles/p_1", headers=reader).status_code == 200
        assert client.get("/v1/profiles/by/email/bob@example.com", headers=reader).is_success
        assert client.get("/v1/profiles/p_1/timeline", headers=reader).is_success
        assert client.get("/v1/profiles/p_nobody", headers=reader).status_code == 404
        deadline = time.monotonic() + 5
        while len(store.audited_reads("p_1")) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        page = client.get("/v1/audit?person_id=p_1&limit=3", headers=admin).json()
        assert [r["route"] for r in page["reads"]] == [
            "/v1/profiles/{person_id}/timeline",
            "/v1/profiles/{person_id}",
            "/v1/profiles/{person_id}",
        ]
        assert {r["key_id"] for r in page["reads"]} == {reader_id}
        assert reader["Authorization"].split("_", 2)[2] not in str(page)  # never the secret
        rest = client.get(
            f"/v1/audit?person_id=p_1&before={page['next_before']}", headers=admin
        ).json()
        assert len(rest["reads"]) == 1 and rest["next_before"] is None
        by_key = client.get(f"/v1/audit?key_id={reader_id}", headers=admin).json()["reads"]
        assert {r["person_id"] for r in by_key} == {"p_1", "p_2"}
        assert client.get("/v1/audit", headers=reader).status_code == 403
        assert client.get("/v1/audit?limit=0", headers=admin).status_code == 422
    assert store.erase_from_audit(["p_1"]) == 4
    assert store.audited_reads("p_1") == [] and len(store.audited_reads("p_2")) == 1


def test_the_server_writes_the_buffered_reads_when_it_stops(
    store: ServingStore, tmp_path: Path
) -> None:
    publish(store)
    reader = key(store, "profiles:read")
    settings = settings_for(tmp_path, **{"api.audit_flush_seconds": 60})
    with api(settings, store) as client:
        for _ in range(5):
            assert client.get("/v1/profiles/p_2", headers=reader).is_success
        assert store.audited_reads("p_2") == []  # still buffered
    assert len(store.audited_reads("p_2")) == 5


class _Down:
    """A store whose writes fail until it is told to come back."""

    def __init__(self, store: ServingStore) -> None:
        self.store, self.up = store, False

    def record_reads(self, reads: list[Read]) -> None:
        if not self.up:
            raise StoreUnavailable("serving store down")
        self.store.record_reads(reads)


def test_the_audit_buffer_is_bounded_and_keeps_reads_a_failed_write_could_not_store(
    store: ServingStore,
) -> None:
    down = _Down(store)
    audit = ReadAudit(down, buffer_size=100, flush_seconds=60)  # type: ignore[arg-type]
    for i in range(150):
        audit.record("k1", f"p_{i}", "/v1/profiles/{person_id}")
    assert audit.flush() == 0  # the store is down: kept
    down.up = True
    assert audit.flush() == 100
    rows = store.query("SELECT count(*) AS n FROM read_audit")[0]["n"]
    assert rows == 100  # the 50 beyond the bound were counted as dropped, never stored


def test_a_read_buffered_before_an_erasure_is_not_written_after_it(store: ServingStore) -> None:
    """The audit's buffer may hold a read of a person erased before it is flushed: the flush
    leaves that read out (the person's id is on the suppression list) and keeps the others."""
    audit = ReadAudit(store, buffer_size=100, flush_seconds=60)
    audit.record("k1", "p_1", "/v1/profiles/{person_id}")
    audit.record("k1", "p_2", "/v1/profiles/{person_id}")
    salt = store.erasure_salt()
    store.suppress([{"type": PERSON, "hash": identifier_hash(salt, PERSON, "p_1")}], "e-1")
    audit.flush()
    assert store.audited_reads("p_1") == []
    assert [r.person_id for r in store.audited_reads("p_2")] == ["p_2"]


def test_recording_a_read_costs_microseconds(store: ServingStore) -> None:
    audit = ReadAudit(store, buffer_size=1_000_000, flush_seconds=60)
    n = 200_000
    started = time.perf_counter()
    for _ in range(n):
        audit.record("0123456789abcdef", "p_0123456789abcdef", "/v1/profiles/{person_id}")
    per_read = (time.perf_counter() - started) / n
    assert per_read < 5e-6, f"{per_read * 1e6:.2f} µs a read"


def test_c360_audit_lists_the_reads_of_a_person(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serving.db'}"
    store = open_store(url)
    store.migrate()
    at = dt.datetime(2026, 12, 6, 10, 0)
    store.record_reads(
        [
            Read(at, "k1", "p_1", "/v1/profiles/{person_id}"),
            Read(at + dt.timedelta(seconds=1), "k2", "p_1", "/v1/profiles/{person_id}/timeline"),
            Read(at, "k1", "p_2", "/v1/profiles/{person_id}"),
        ]
    )
    store.dispose()
    environ = {"C360_SERVING_URL": url, "C360_LAKE_URL": str(tmp_path / "lake")}
    listed = CliRunner().invoke(cli, ["audit", "--person", "p_1", "--json"], env=environ)
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [(r["key_id"], r["route"]) for r in rows] == [
        ("k2", "/v1/profiles/{person_id}/timeline"),
        ("k1", "/v1/profiles/{person_id}"),
    ]
    assert rows[0]["read_at"] == "2026-12-06T10:00:01+00:00"
    by_key = CliRunner().invoke(cli, ["audit", "--key", "k1"], env=environ)
    assert by_key.exit_code == 0 and by_key.stdout.count("k1") == 2


def test_an_identify_stating_consent_takes_effect_at_once(
    store: ServingStore, tmp_path: Path
) -> None:
    publish(store)
    reader = key(store, "profiles:read")
    settings = settings_for(
        tmp_path, **{"collector.write_keys": "wk_test", "log.url": f"local://{tmp_path}/log"}
    )
    now = dt.datetime.now(dt.UTC).isoformat()
    with api(settings, store) as client:
        withdrawn = {"userId": "101", "timestamp": now, "traits": {"marketing_consent": False}}
        answer = client.post("/v1/identify", json=withdrawn, auth=("wk_test", ""))
        assert answer.status_code == 200, answer.text
        profile = client.get("/v1/profiles/p_1", headers=reader).json()["profile"]
        assert profile["marketing_consent"] is False
        assert profile["marketing_consent_source"] == "segment"
        assert consenting(store)["p_1"] is False
        # Segment's consent context, in a batch, by email
        given = {
            "type": "identify",
            "anonymousId": "a-1",
            "timestamp": now,
            "traits": {"email": "CY@example.com"},
            "context": {"consent": {"categoryPreferences": {"Marketing": True}}},
        }
        unrelated = {"type": "identify", "userId": "101", "traits": {"plan": "gold"}}
        batch = {"batch": [given, unrelated]}
        assert client.post("/v1/batch", json=batch, auth=("wk_test", "")).status_code == 200
        assert consenting(store) == {"p_1": False, "p_2": True, "p_3": True}
