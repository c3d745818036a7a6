"""`c360 demo --once --json` end to end on a tiny world, then real API answers checked against
the generated sources, computed here straight from the orders DB and the source files."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from c360.api.app import create_app
from c360.api.server import serve_in_thread
from c360.config import load_config
from c360.pipeline.demo import demo_overrides


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("demo") / "world"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "c360",
            "demo",
            "--once",
            "--json",
            "--customers",
            "60",
            "--days",
            "45",
            "--dir",
            str(folder),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env={
            k: v
            for k, v in os.environ.items()
            if not k.startswith("C360_") or k.startswith("C360_TEST_")
        },
        cwd=tmp_path_factory.mktemp("cwd"),
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    return folder, json.loads(done.stdout)


@pytest.fixture(scope="module")
def api(demo_run: tuple[Path, dict[str, Any]]) -> Iterator[httpx.Client]:
    folder, summary = demo_run
    settings = load_config(environ={}, overrides=demo_overrides(folder)).settings
    key = Path(summary["api_key_file"]).read_text().strip()  # the key the demo made for itself
    headers = {"Authorization": f"Bearer {key}"}
    with (
        serve_in_thread(create_app(settings)) as url,
        httpx.Client(base_url=url, headers=headers) as client,
    ):
        yield client


def test_summary_reports_every_layer(demo_run: tuple[Path, dict[str, Any]]) -> None:
    folder, summary = demo_run
    assert summary["persons"] > 60  # customers plus guest-only and newsletter-only persons
    assert summary["profiles_published"] == summary["persons"]
    assert summary["events_processed"] > 500
    assert summary["api_checks_failed"] == 0, summary["checks"]
    assert summary["api_checks_passed"] >= 5
    churn = summary["churn_model"]
    assert churn["trained"] and churn["persons_scored"] > 0, churn
    assert "churn risk and reasons on the profile" in {c["name"] for c in summary["checks"]}
    key_file = Path(summary["api_key_file"])
    assert key_file == folder / "api-key" and key_file.stat().st_mode & 0o077 == 0
    assert key_file.read_text().strip() not in json.dumps(summary)  # shown nowhere


def test_the_demo_defines_segments_and_computes_their_membership(
    demo_run: tuple[Path, dict[str, Any]],
) -> None:
    _, summary = demo_run
    segments = summary["segments"]
    assert set(segments) == {"high-value", "lapsing-buyers", "engaged-subscribers", "big-cart"}
    assert segments["big-cart"] is None  # real time: evaluated by the speed layer
    assert set(summary["live_segments"]) == {"big-cart"}
    assert sum(count for name, count in segments.items() if name != "big-cart") > 0
    checked = [c for c in summary["checks"] if c["name"].startswith("segment membership")]
    assert len(checked) == 1 and checked[0]["passed"], checked


def test_the_api_needs_the_key(api: httpx.Client) -> None:
    answer = api.get("/v1/profiles/by/customer_id/1", headers={"Authorization": ""})
    assert answer.status_code == 401


def test_lifetime_spend_equals_the_orders_db(
    demo_run: tuple[Path, dict[str, Any]], api: httpx.Client
) -> None:
    folder, _ = demo_run
    db = sqlite3.connect(folder / "sources" / "shopsmart.db")
    try:
        # A customer none of whose addresses was used for a guest checkout: the expectation
        # is then the plain sum of their own orders.
        customer_id, expected, count = db.execute(
            """
            SELECT o.customer_id,
                   SUM(CASE WHEN o.status NOT IN ('cancelled', 'refunded') THEN o.total END),
                   SUM(o.status <> 'cancelled')
            FROM orders o
            WHERE o.customer_id IS NOT NULL AND o.customer_id NOT IN (
                SELECT mine.customer_id FROM orders mine JOIN orders guest
                  ON lower(trim(guest.email)) = lower(trim(mine.email))
                 AND guest.customer_id IS NULL
                WHERE mine.customer_id IS NOT NULL
                UNION
                SELECT c.customer_id FROM customers c JOIN orders guest
                  ON lower(trim(guest.email)) = lower(trim(c.email)) AND guest.customer_id IS NULL)
            GROUP BY o.customer_id ORDER BY COUNT(*) DESC, o.customer_id LIMIT 1
            """
        ).fetchone()
    finally:
        db.close()
    profile = api.get(f"/v1/profiles/by/customer_id/{customer_id}?explain=true").json()
    assert Decimal(str(profile["batch"]["total_lifetime_spend"])) == Decimal(
        str(expected)
    ).quantize(Decimal("0.01"))
    assert profile["batch"]["number_of_orders"] == count


def test_profiles_carry_support_tickets_and_email_engagement(
    demo_run: tuple[Path, dict[str, Any]], api: httpx.Client
) -> None:
    folder, _ = demo_run
    requesters: dict[str, int] = {}
    for line in (folder / "sources" / "zendesk_events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["type"] == "zen:event-type:ticket.created":
            requester = str(event["detail"]["requester_id"])
            requesters[requester] = requesters.get(requester, 0) + 1
    requester, tickets = max(requesters.items(), key=lambda item: (item[1], item[0]))
    by_requester = api.get(f"/v1/profiles/by/zendesk_user_id/{requester}?explain=true").json()
    assert by_requester["batch"]["support_ticket_count"] >= tickets

    opened = None
    for line in (
        (folder / "sources" / "mailchimp" / "email_activity.jsonl").read_text().splitlines()
    ):
        row = json.loads(line)
        if any(a["action"] == "open" for a in row["activity"]):
            opened = row["email_address"]
            break
    assert opened is not None, "nobody ever opened a campaign in the generated world"
    subscriber = api.get(f"/v1/profiles/by/email/{opened}?explain=true").json()
    assert 0 < subscriber["batch"]["email_open_rate"] <= 1


def test_the_lookup_check_ignores_what_is_computed_at_read_time() -> None:
    """Two reads of one person a moment apart differ only in the time since the last event,
    which the unified profile carries as well as the real-time section."""
    from c360.pipeline.demo import _stable

    def read(seconds: float) -> dict[str, object]:
        return {
            "person_id": "p_1",
            "profile": {"cart_value": 10.0, "time_since_last_event_seconds": seconds},
            "realtime": {"cart_value": 10.0, "time_since_last_event_seconds": seconds},
        }

    assert _stable(read(1.0)) == _stable(read(2.5))
    changed = read(1.0)
    changed["profile"] = {**changed["profile"], "cart_value": 11.0}  # type: ignore[dict-item]
    assert _stable(changed) != _stable(read(1.0))
