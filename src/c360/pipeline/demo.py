"""`c360 demo`: every layer on embedded defaults, end to end, in one folder of its own.

generate a small ShopSmart world → daily batch (ingest, identity, features, publish) → the churn
model trained on the world's history, every buyer scored and the profiles published again →
clickstream replayed through the local event log into the speed layer → Profile API.
The ``once`` mode replays as fast as it can, checks the API's answers against the generated
sources (computed independently, straight from the orders DB and the source files) and exits.
"""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import create_engine, select

from c360.access.keys import PROFILES_READ, PROFILES_SERVICE
from c360.access.keys import generate as generate_key
from c360.batch.churn.dataset import ChurnDataError
from c360.config import Settings
from c360.contracts import shop_db
from c360.contracts.times import naive_utc
from c360.errors import TerminalError
from c360.lake import Lake
from c360.logs import open_configured
from c360.pipeline import churn
from c360.pipeline.daily import BatchResult, run_batch
from c360.pipeline.steps import run_publish
from c360.pipeline.stream_publish import publish_file
from c360.pipeline.stream_worker import run as run_worker
from c360.simulator import generate
from c360.sources.files import open_bytes
from c360.stores import open_store

API_KEY_FILE = "api-key"
# Segments the demo defines before its batch: the daily step computes their membership.
DEMO_SEGMENTS = {
    "high-value": "total_lifetime_spend > 500",
    "lapsing-buyers": "days_since_last_purchase > 60 and number_of_orders >= 2",
    "engaged-subscribers": "email_open_rate > 0.3 and marketing_consent",
    "big-cart": "cart_value > 100",  # real time: entered/exited as the clickstream streams
}


def demo_overrides(folder: Path) -> dict[str, str]:
    """Config overrides that keep every file of the demo inside ``folder``."""
    return {
        "lake.url": str(folder / "lake"),
        "serving.url": f"sqlite:///{folder / 'serving.db'}",
        "log.url": f"local://{folder / 'log'}",
        "sources.mysql.url": f"sqlite:///{folder / 'sources' / 'shopsmart.db'}",
        "sources.mailchimp.dir": str(folder / "sources" / "mailchimp"),
        "sources.clickstream.path": str(folder / "sources" / "clickstream.jsonl.gz"),
        "sources.zendesk.path": str(folder / "sources" / "zendesk_events.jsonl"),
        "simulator.truth_dir": str(folder / "truth"),
    }


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class DemoSummary:
    persons: int = 0
    profiles_published: int = 0
    events_processed: int = 0
    dead_lettered: int = 0
    batch_date: str = ""
    churn_model: dict[str, Any] = field(default_factory=dict)
    api_url: str = ""
    api_key_file: str = ""
    segments: dict[str, int | None] = field(default_factory=dict)
    live_segments: dict[str, int] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def api_checks_passed(self) -> int:
        return sum(check.passed for check in self.checks)

    @property
    def api_checks_failed(self) -> int:
        return sum(not check.passed for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "persons": self.persons,
            "profiles_published": self.profiles_published,
            "events_processed": self.events_processed,
            "dead_lettered": self.dead_lettered,
            "batch_date": self.batch_date,
            "churn_model": self.churn_model,
            "api_url": self.api_url,
            "api_key_file": self.api_key_file,
            "segments": self.segments,
            "live_segments": self.live_segments,
            "api_checks_passed": self.api_checks_passed,
            "api_checks_failed": self.api_checks_failed,
            "checks": [check.__dict__ for check in self.checks],
            "seconds": round(self.seconds, 2),
        }


def reset(folder: Path) -> None:
    """Start from nothing: the demo only ever deletes its own folder."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def prepare(settings: Settings, summary: DemoSummary) -> BatchResult:
    """Generate the world, define the demo's segments and run the daily batch for its last
    day (membership included)."""
    generate(settings, replace=True)
    last_day = settings.simulator.start_date + dt.timedelta(days=settings.simulator.days - 1)
    store = open_store(settings.serving.url)
    try:
        store.migrate()
        for name, definition in DEMO_SEGMENTS.items():
            store.create_segment(name, definition)
        result = run_batch(settings, last_day)
        published = store.latest_publish()
        summary.profiles_published = int(published["persons"]) if published else 0
        summary.segments = {s.name: s.members for s in store.segments()}
    finally:
        store.dispose()
    summary.persons = result.persons
    summary.batch_date = last_day.isoformat()
    return result


def count_live_segments(settings: Settings, summary: DemoSummary) -> None:
    """The real-time segments' members now, as the speed layer left them."""
    store = open_store(settings.serving.url)
    try:
        summary.live_segments = {
            s.name: s.live_members for s in store.segments() if s.live_members is not None
        }
    finally:
        store.dispose()


# The demo's world is short (60 days by default): churn within 14 days, snapshots a week apart.
DEMO_CHURN = {
    "churn.horizon_days": 14,
    "churn.snapshots": 3,
    "churn.snapshot_interval_days": 7,
    "churn.min_positives": 5,
}


def train_churn(settings: Settings, summary: DemoSummary) -> None:
    """Train the churn model on the world's history, score the batch, publish it again; a world
    too short or too small to train on is said so in ``summary.churn_model``."""
    day = dt.date.fromisoformat(summary.batch_date)
    try:
        trained = churn.train(settings, day, charts=False)
    except ChurnDataError as exc:
        summary.churn_model = {"trained": False, "reason": str(exc)}
        return
    scored = churn.score(settings, day, trained.version)
    run_publish(settings, Lake(settings.lake.url), day)
    summary.churn_model = {
        "trained": True,
        "version": trained.version,
        "test_snapshot": trained.report["test_snapshot"],
        "roc_auc": trained.report["models"]["churn_model"]["roc_auc"],
        "persons_scored": scored.scored,
    }


def create_api_key(settings: Settings, folder: Path, summary: DemoSummary) -> str:
    """A ``profiles:read`` key for the demo (its checks use it, and so can the user) with
    ``profiles:service`` (its checks read the churn risk and email engagement of persons
    whatever their marketing consent: :mod:`c360.access.consent`), stored
    in the demo's serving store and written to ``folder/api-key`` (readable by the owner only),
    so that the key itself never appears in the demo's output."""
    new = generate_key([PROFILES_READ, PROFILES_SERVICE], name="c360 demo")
    store = open_store(settings.serving.url)
    try:
        store.migrate()
        store.add_api_key(new.record)
    finally:
        store.dispose()
    path = folder / API_KEY_FILE
    path.touch(mode=0o600)
    path.write_text(new.key + "\n", encoding="utf-8")
    summary.api_key_file = str(path)
    return new.key


def stream(
    settings: Settings, summary: DemoSummary, *, rate: float | None, stop: threading.Event | None
) -> None:
    """Replay the clickstream into the event log and run the speed layer on it.

    ``stop`` None: replay at full speed and return once the worker has caught up.
    Otherwise: replay at ``rate`` events/s on a thread and process until ``stop`` is set.
    """
    log = open_configured(settings.log)
    store = open_store(settings.serving.url)
    path = Path(settings.sources.clickstream.path)
    skew = settings.events.max_clock_skew_seconds
    try:
        store.migrate()
        if stop is None:
            publish_file(log, path, topic="clickstream")
            stats = run_worker(log, store, stop_when_caught_up=True, max_clock_skew_seconds=skew)
        else:
            replay = threading.Thread(
                target=publish_file,
                args=(log, path),
                kwargs={"topic": "clickstream", "rate": rate},
                name="c360-replay",
                daemon=True,
            )
            replay.start()
            stats = run_worker(
                log,
                store,
                stop_when_caught_up=False,
                should_stop=stop.is_set,
                max_clock_skew_seconds=skew,
            )
        summary.events_processed = stats.events
        summary.dead_lettered = stats.dead_lettered
    finally:
        store.dispose()
        log.close()


# -- checks: expectations computed straight from the sources, not through c360 -----------


def _normal(email: str) -> str:
    return email.strip().lower()


def expected_orders(settings: Settings) -> tuple[int, Decimal, int]:
    """(customer_id, lifetime spend, order count) of the customer with the most orders.

    Spend excludes cancelled and refunded orders; the count excludes cancelled ones. Guest
    orders count for the customer when placed under an address the customer used.
    """
    engine = create_engine(settings.sources.mysql.url)
    orders = shop_db.orders
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(orders.c.customer_id, orders.c.email, orders.c.status, orders.c.total)
            ).all()
            accounts = conn.execute(
                select(shop_db.customers.c.customer_id, shop_db.customers.c.email)
            ).all()
    finally:
        engine.dispose()
    emails: dict[int, set[str]] = defaultdict(set)
    for customer_id, email in accounts:
        emails[customer_id].add(_normal(email))
    for customer_id, email, _, _ in rows:
        if customer_id is not None:
            emails[customer_id].add(_normal(email))
    owner = {}
    for customer_id in sorted(emails, reverse=True):  # the oldest account wins a shared email
        for email in emails[customer_id]:
            owner[email] = customer_id
    counts: dict[int, int] = defaultdict(int)
    spend: dict[int, Decimal] = defaultdict(Decimal)
    for customer_id, email, status, total in rows:
        person = customer_id if customer_id is not None else owner.get(_normal(email))
        if person is None:
            continue
        if status != "cancelled":
            counts[person] += 1
        if status not in ("cancelled", "refunded"):
            spend[person] += Decimal(total)
    best = max(counts, key=lambda c: (counts[c], -c))
    return best, spend[best], counts[best]


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with open_bytes(path) as lines:
        for line in lines:
            if line.strip():
                yield orjson.loads(line)


def check_api(
    base_url: str, settings: Settings, api_key: str, churn_trained: bool = False
) -> list[Check]:
    checks: list[Check] = []
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=base_url, timeout=10, headers=headers) as client:

        def get(path: str) -> dict[str, Any] | None:
            response = client.get(path)
            return response.json() if response.status_code == 200 else None

        customer_id, spend, count = expected_orders(settings)
        profile = get(f"/v1/profiles/by/customer_id/{customer_id}?explain=true")
        got = profile["batch"] if profile else {}
        checks.append(
            Check(
                "lifetime spend = sum of the orders in the orders DB",
                abs(Decimal(str(got.get("total_lifetime_spend", "nan"))) - spend)
                < Decimal("0.005"),
                f"customer {customer_id}: expected {spend}, got {got.get('total_lifetime_spend')}",
            )
        )
        checks.append(
            Check(
                "order count = orders in the orders DB",
                got.get("number_of_orders") == count,
                f"customer {customer_id}: expected {count}, got {got.get('number_of_orders')}",
            )
        )
        if profile:
            by_id = get(f"/v1/profiles/{profile['person_id']}?explain=true")
            checks.append(
                Check(
                    "lookup by person id = lookup by customer id",
                    _stable(by_id) == _stable(profile),
                    f"person {profile['person_id']}",
                )
            )
        checks.append(_segment_check(get))
        if churn_trained:
            checks.append(_churn_check(profile))
        checks.append(_support_check(settings, get))
        checks.append(_email_check(settings, get))
        checks.append(_realtime_check(settings, get))
    return checks


def _segment_check(get: Callable[[str], dict[str, Any] | None]) -> Check:
    """For every batch segment, the daily membership (batch engine, over the lake) and the
    API's preview (the serving store) count the same persons."""
    listed = get("/v1/segments")
    counts = []
    for segment in listed["segments"] if listed else []:
        if segment["members"] is None:  # real time: no daily membership
            continue
        preview = get(f"/v1/segments/{segment['name']}/preview?sample=1")
        counts.append((segment["name"], segment["members"], preview and preview["count"]))
    return Check(
        "segment membership (batch) = segment preview (serving store)",
        bool(counts) and all(members == counted for _, members, counted in counts),
        ", ".join(
            f"{name}: {members} members, preview {counted}" for name, members, counted in counts
        ),
    )


def _churn_check(profile: dict[str, Any] | None) -> Check:
    """The buyer's profile carries a churn risk, its band, the model and a first reason."""
    got = profile["profile"] if profile else {}
    risk, reason = got.get("churn_risk"), got.get("churn_reason_1")
    passed = (
        isinstance(risk, float)
        and 0.0 <= risk <= 1.0
        and got.get("churn_risk_band") in ("low", "medium", "high")
        and bool(got.get("model_version"))
        and bool(reason)
    )
    detail = (
        f"churn_risk {risk}, band {got.get('churn_risk_band')}, model {got.get('model_version')}, "
        f"first reason: {reason}"
    )
    return Check("churn risk and reasons on the profile", passed, detail)


def _stable(profile: dict[str, Any] | None) -> dict[str, Any] | None:
    """A profile without what is computed at read time (time since the last event, in the
    real-time section and in the unified profile, and the provenance's times)."""
    if profile is None:
        return None
    read_time = "time_since_last_event_seconds"
    return {
        **{k: v for k, v in profile.items() if k != "provenance"},
        "realtime": {k: v for k, v in profile["realtime"].items() if k != read_time},
        "profile": {k: v for k, v in profile["profile"].items() if k != read_time},
    }


def _support_check(settings: Settings, get: Callable[[str], dict[str, Any] | None]) -> Check:
    tickets: dict[str, set[str]] = defaultdict(set)
    for event in _jsonl(Path(settings.sources.zendesk.path)):
        if event["type"] == "zen:event-type:ticket.created":
            tickets[str(event["detail"]["requester_id"])].add(str(event["detail"]["id"]))
    if not tickets:
        return Check("profile shows support tickets", False, "the world has no tickets")
    requester = max(sorted(tickets), key=lambda r: len(tickets[r]))
    profile = get(f"/v1/profiles/by/zendesk_user_id/{requester}?explain=true")
    got = (profile or {}).get("batch", {}).get("support_ticket_count", 0)
    return Check(
        "profile shows support tickets",
        got >= len(tickets[requester]),
        f"zendesk user {requester}: at least {len(tickets[requester])} tickets, got {got}",
    )


def _email_check(settings: Settings, get: Callable[[str], dict[str, Any] | None]) -> Check:
    received: dict[str, set[str]] = defaultdict(set)
    opened: dict[str, set[str]] = defaultdict(set)
    for row in _jsonl(Path(settings.sources.mailchimp.dir) / "email_activity.jsonl"):
        email = _normal(row["email_address"])
        received[email].add(row["campaign_id"])
        if any(a["action"] == "open" for a in row["activity"]):
            opened[email].add(row["campaign_id"])
    if not opened:
        return Check("profile shows email open rate", False, "no email was ever opened")
    email = min(opened)
    profile = get(f"/v1/profiles/by/email/{email}?explain=true")
    got = (profile or {}).get("batch", {}).get("email_open_rate")
    own = len(opened[email]) / len(received[email])
    return Check(
        "profile shows email open rate",
        got is not None and got > 0,
        f"one subscriber: own address {own:.3f}, profile (all addresses) {got}",
    )


def _realtime_check(settings: Settings, get: Callable[[str], dict[str, Any] | None]) -> Check:
    cookies: dict[str, set[str]] = defaultdict(set)
    latest: dict[str, str] = {}
    for message in _jsonl(Path(settings.sources.clickstream.path)):
        anonymous_id = message.get("anonymousId")
        if not anonymous_id:
            continue
        latest[anonymous_id] = max(latest.get(anonymous_id, ""), message["timestamp"])
        if message.get("userId"):
            cookies[str(message["userId"])].add(anonymous_id)
    if not cookies:
        return Check("profile shows live activity", False, "no cookie ever identified")
    user_id = max(sorted(cookies), key=lambda u: len(cookies[u]))
    expected = max(latest[c] for c in cookies[user_id])
    profile = get(f"/v1/profiles/by/customer_id/{user_id}?explain=true")
    got = (profile or {}).get("realtime", {}).get("last_event_at")
    same = got is not None and _instant(got) == _instant(expected)
    return Check(
        "profile shows live activity (stitched cookies)",
        same,
        f"customer {user_id}: expected last event {expected}, got {got}",
    )


def _instant(value: str) -> dt.datetime:
    return naive_utc(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise TerminalError(f"the API at {url} did not answer within {seconds:.0f}s")
