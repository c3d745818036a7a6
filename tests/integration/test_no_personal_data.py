"""No personal data where it does not belong: requests full of a person's email, phone and
name — good ones and bad ones — sent through a real server (SQLite and PostgreSQL, a real local
event log), with every c360 logger at DEBUG in the text and the JSON format; then the log lines,
the Prometheus metrics and every error body are searched for the email, the phone and the
name (as sent, lower-cased, and URL-encoded)."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import urllib.parse
from pathlib import Path

import httpx
import pyarrow as pa
import pytest
from prometheus_client import REGISTRY, generate_latest

from c360 import logformat
from c360.access.keys import generate
from c360.api.app import create_app
from c360.api.server import serve_in_thread
from c360.config import Settings
from c360.contracts.zendesk import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from c360.logs.local import LocalLog
from c360.pipeline.stream_metrics import StreamMetrics
from c360.pipeline.stream_worker import run as run_worker
from c360.stores import ServingStore, open_store

EMAIL = "Jane.Privateperson@Example.com"
SHARED = "Family.Privateperson@Example.com"  # a mailbox of several persons: ambiguous
PHONE = "+447700900123"
FIRST, LAST = "Janeprivate", "Doeprivate"
WRITE_KEY = "wk_pii"
ZENDESK_SECRET = "zendesk-secret-pii"
MAILCHIMP_SECRET = "mailchimp-secret-pii"
DAY = dt.date(2026, 12, 5)


def _forms(value: str) -> set[str]:
    return {value, value.lower(), urllib.parse.quote(value), urllib.parse.quote(value.lower())}


NEEDLES = set().union(*(_forms(v) for v in (EMAIL, SHARED, PHONE, FIRST, LAST)))


def publish(store: ServingStore) -> None:
    email = EMAIL.lower()
    store.publish_batch(
        DAY,
        {
            "person": pa.table(
                {
                    "person_id": ["p_1"],
                    "email": [email],
                    "phone": [PHONE],
                    "first_name": [FIRST],
                    "last_name": [LAST],
                }
            ),
            "identity_map": pa.table(
                {
                    "id_type": ["email", "phone"],
                    "id_value": [email, PHONE],
                    "person_id": ["p_1", "p_1"],
                }
            ),
            "batch_profile": pa.table({"person_id": ["p_1"], "total_lifetime_spend": [10.0]}),
            "ambiguous_identifier": pa.table(
                {"id_type": ["email"], "id_value": [SHARED.lower()], "persons": [2]}
            ),
        },
    )


def _requests(client: httpx.Client, key: dict[str, str]) -> list[httpx.Response]:
    """Every kind of request that carries personal data, good and bad."""
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat()
    traits = {"email": EMAIL, "phone": PHONE, "firstName": FIRST, "lastName": LAST}
    basic = (WRITE_KEY, "")
    answers = [
        client.get(f"/v1/profiles/by/email/{EMAIL}", headers=key),
        client.get(f"/v1/profiles/by/email/x{EMAIL}", headers=key),  # 404
        client.get(f"/v1/profiles/by/phone/{PHONE}", headers=key),
        client.get(f"/v1/profiles/by/email/{EMAIL}?fields={FIRST}", headers=key),  # 422
        client.get(f"/v1/profiles/by/email/{EMAIL}?{LAST}=1", headers=key),  # 422
        client.get(f"/v1/profiles/by/email/{EMAIL}"),  # 401
        client.get(f"/v1/search?q={FIRST}", headers=key),
        client.get(f"/v1/search?q={urllib.parse.quote(EMAIL)}", headers=key),
        client.get(f"/v1/search?q={FIRST}&cursor={EMAIL}", headers=key),  # 422
        client.get(f"/v1/profiles/by/email/{SHARED}", headers=key),  # 409
        client.get(f"/v1/search?q={urllib.parse.quote(SHARED)}", headers=key),  # ambiguous
        client.get(f"/v1/profiles/p_1/timeline?before={EMAIL}", headers=key),  # 422
        client.post(
            "/v1/segments/preview",
            json={"definition": f"total_lifetime_spend > '{EMAIL}'"},
            headers=key,
        ),  # 422
        client.post(
            "/v1/identify", json={"userId": "101", "traits": traits}, auth=basic
        ),  # accepted
        client.post(
            "/v1/track",
            json={"userId": EMAIL, "event": "Order Completed", "timestamp": future},
            auth=basic,
        ),  # future: 400
        client.post("/v1/track", json={"anonymousId": EMAIL}, auth=basic),  # no event: 400
        client.post("/v1/track", content=f'{{"userId": "{EMAIL}"', auth=basic),  # not JSON
        client.post("/v1/identify", json={"traits": traits}, auth=(EMAIL, "")),  # wrong key
        client.post(
            "/v1/batch",
            json={"batch": [{"type": "identify", "traits": traits}, {"type": "nope"}]},
            auth=basic,
        ),
        client.put("/v1/persons/p_1/consent", json={"consent": EMAIL}, headers=key),  # 422
    ]
    body = json.dumps(
        {"type": "zen:event-type:user.created", "id": "1", "time": future, "detail": traits}
    ).encode()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    answers.append(
        client.post(
            "/v1/webhooks/zendesk",
            content=body,
            headers={TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: sign(ZENDESK_SECRET, stamp, body)},
        )
    )  # future: 400
    answers.append(
        client.post(
            "/v1/webhooks/zendesk",
            content=body,
            headers={TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: EMAIL},
        )
    )  # 401
    mailchimp = f"/v1/webhooks/mailchimp?secret={MAILCHIMP_SECRET}"
    answers.append(
        client.post(mailchimp, data={"type": "unsubscribe", "data[email]": EMAIL})
    )  # recorded
    answers.append(
        client.post(
            mailchimp, data={"type": "unsubscribe", "data[email]": EMAIL, "fired_at": EMAIL}
        )
    )  # 400
    answers.append(
        client.post(f"/v1/webhooks/mailchimp?secret={EMAIL}", data={"data[email]": EMAIL})
    )  # 401
    return answers


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_emails_phones_and_names_never_reach_logs_metrics_or_error_bodies(
    store: ServingStore, tmp_path: Path, log_format: str
) -> None:
    publish(store)
    made = generate(["admin"])
    store.add_api_key(made.record)
    settings = Settings.model_validate(
        {
            "serving": {"url": "sqlite:///unused.db"},
            "log": {"url": f"local://{tmp_path}/log", "partitions": 2},
            "collector": {"write_keys": [WRITE_KEY]},
            "sources": {
                "zendesk": {"webhook_secret": ZENDESK_SECRET},
                "mailchimp": {"webhook_secret": MAILCHIMP_SECRET},
            },
            "api": {"audit_flush_seconds": 0.05},
        }
    )
    lines = io.StringIO()
    logformat.configure(log_format, "DEBUG", stream=lines)
    logging.getLogger().setLevel(logging.DEBUG)  # the server's libraries' lines too
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the test's client, not the server
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    try:
        with (
            serve_in_thread(create_app(settings, store=store)) as url,
            httpx.Client(base_url=url) as client,
        ):
            answers = _requests(client, {"Authorization": f"Bearer {made.key}"})
            metrics = client.get("/metrics").text
    finally:
        logformat.configure("text", "WARNING")
        logging.getLogger().setLevel(logging.WARNING)
        for client_logger in ("httpx", "httpcore"):
            logging.getLogger(client_logger).setLevel(logging.NOTSET)

    statuses = sorted({a.status_code for a in answers})
    assert statuses == [200, 400, 401, 404, 409, 422], statuses  # every kind of answer
    (shared_search,) = [a for a in answers if a.request.url.params.get("q") == SHARED]
    assert shared_search.json()["ambiguous_identifiers"] == [{"id_type": "email", "persons": 2}]
    written = lines.getvalue()
    assert written, "nothing was logged: the capture does not work"
    if log_format == "json":
        assert all(json.loads(line) for line in written.splitlines())
    errors = [a.text for a in answers if a.status_code >= 400]
    for needle in NEEDLES:
        leaking = [line for line in written.splitlines() if needle in line][:3]
        assert not leaking, f"{needle!r} in the log: {leaking}"
        assert needle not in metrics, f"{needle!r} in the metrics"
        for error in errors:
            assert needle not in error, f"{needle!r} in an error body: {error}"
        assert needle not in shared_search.text, f"{needle!r} in the shared search's answer"
    assert 'route="/v1/profiles/by/{id_type}/{id_value:path}"' in metrics


def test_the_stream_worker_logs_and_labels_no_personal_data(tmp_path: Path) -> None:
    """Good and bad events full of personal data through the speed layer: its log lines (at
    DEBUG) and every metric of the process name none of it. Dead letters keep their payloads
    (erasure covers them), their reasons do not quote them."""
    traits = {"email": EMAIL, "phone": PHONE, "firstName": FIRST, "lastName": LAST}
    now = dt.datetime.now(dt.UTC).isoformat()
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat()
    messages = [
        {"type": "identify", "messageId": "m1", "userId": "101", "anonymousId": "a1",
         "timestamp": now, "traits": traits},
        {"type": "track", "messageId": "m2", "userId": EMAIL, "event": "Order Completed",
         "timestamp": now, "properties": {"total": EMAIL, "email": EMAIL}},
        {"type": "track", "messageId": "m3", "anonymousId": EMAIL, "event": FIRST,
         "timestamp": future},
        {"type": EMAIL, "messageId": "m4", "anonymousId": PHONE, "timestamp": now},
    ]  # fmt: skip
    records = [("a1", json.dumps(m).encode()) for m in messages] + [("a1", EMAIL.encode())]
    store = open_store(f"sqlite:///{tmp_path / 'serving.db'}")
    store.migrate()
    lines = io.StringIO()
    logformat.configure("json", "DEBUG", stream=lines)
    try:
        with LocalLog(tmp_path / "log", 1) as log:
            log.append("clickstream", records)
            run_worker(log, store, "pii", ("clickstream",), stop_when_caught_up=True,
                       metrics=StreamMetrics("pii"))  # fmt: skip
        letters = store.query("SELECT reason FROM dead_letter")
    finally:
        logformat.configure("text", "WARNING")
        store.dispose()
    assert len(letters) == 4  # the order's bad total, the future, the bad type, not JSON
    exposed = generate_latest(REGISTRY).decode()
    for needle in NEEDLES:
        assert needle not in lines.getvalue(), f"{needle!r} in the log"
        assert needle not in exposed, f"{needle!r} in the metrics"
        for letter in letters:
            assert needle not in letter["reason"], f"{needle!r} in a dead letter's reason"
