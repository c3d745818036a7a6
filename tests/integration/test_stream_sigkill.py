"""Exactly-once under SIGKILL: `c360 stream run` on the local log, killed and restarted.

A fixed event set (clickstream with sessions, carts, orders, identities, client retries, late
and invalid messages; Zendesk ticket events on ``support``) is appended to a local log. One
worker consumes it uninterrupted, in-process, into a reference store. Another store is fed by
`c360 stream run` in a child process that is SIGKILLed at random points — at least five times,
restarted each time — and finished with ``--once``: its real-time tables must equal the
reference's, row for row. (Kafka's counterpart, three workers with one killed, is in
``test_kafka_workers.py``; every acknowledged collector request surviving a SIGKILL of the
server is in ``test_collector.py``.)
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from c360.contracts.serving import (
    dead_letter,
    realtime_order,
    realtime_state,
    realtime_support,
    stream_offsets,
)
from c360.logs.local import LocalLog
from c360.pipeline.stream_worker import run
from c360.stores import ServingStore, open_store

PARTITIONS = 4
BATCH_SIZE = 10  # records per partition per micro-batch: many commits to land kills between
KILLS = 5
START = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)


def _message(rng: random.Random, anonymous_id: str, minutes: float, n: int) -> dict[str, Any]:
    message: dict[str, Any] = {
        "messageId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"c360-sigkill/{anonymous_id}/{n}")),
        "timestamp": (START + dt.timedelta(minutes=minutes)).isoformat(),
        "anonymousId": anonymous_id,
    }
    roll = rng.random()
    cart = f"cart-{anonymous_id}-{int(minutes // 120)}"
    if roll < 0.4:
        message |= {"type": "page", "name": "Home"}
    elif roll < 0.6:
        message |= {"type": "track", "event": "Product Viewed", "properties": {"product_id": "p1"}}
    elif roll < 0.8:
        product = f"p{rng.randint(1, 5)}"
        message |= {
            "type": "track",
            "event": rng.choice(["Product Added", "Product Added", "Product Removed"]),
            "properties": {"cart_id": cart, "product_id": product, "price": 2.5, "quantity": 1},
        }
    elif roll < 0.88:
        message |= {
            "type": "track",
            "event": "Order Completed",
            "properties": {"checkout_id": cart, "order_id": f"o-{cart}", "total": 12.5},
        }
    elif roll < 0.95:
        message |= {"type": "identify", "userId": f"u{rng.randint(1, 40)}", "traits": {}}
    else:
        message |= {"type": "alias", "previousId": anonymous_id, "userId": f"u{rng.randint(1, 40)}"}
    return message


def _clickstream(seed: int, count: int, identifiers: int) -> list[tuple[str, bytes]]:
    """``count`` records: event-time order with some late ones, retries and invalid lines."""
    rng = random.Random(seed)
    records: list[tuple[str, bytes]] = []
    for n in range(count):
        anonymous_id = f"anon-{rng.randrange(identifiers):03d}"
        minutes = n * 0.2 - (rng.uniform(0, 40) if rng.random() < 0.05 else 0)  # 5% are late
        roll = rng.random()
        if roll < 0.01:
            records.append((anonymous_id, b"{not json"))
        elif roll < 0.015:
            records.append((anonymous_id, orjson.dumps({"type": "track", "messageId": "x"})))
        elif roll < 0.04 and records:
            records.append(rng.choice(records))  # a client retry: the same message again
        else:
            message = _message(rng, anonymous_id, minutes, n)
            records.append((anonymous_id, orjson.dumps(message)))
    return records


def _support(seed: int, count: int) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    records = []
    for n in range(count):
        requester = str(rng.randint(1, 30))
        ticket = f"{requester}-{rng.randint(1, 3)}"
        kind = rng.choice(["ticket.created", "ticket.status_changed", "ticket.comment_added"])
        payload: dict[str, Any] = {
            "type": f"zen:event-type:{kind}",
            "id": f"z{n}",
            "time": (START + dt.timedelta(minutes=n)).isoformat(),
            "detail": {"id": ticket, "requester_id": requester, "status": "NEW"},
            "event": {},
        }
        if kind == "ticket.status_changed":
            payload["event"] = {"current": rng.choice(["OPEN", "SOLVED", "CLOSED"])}
        records.append((requester, orjson.dumps(payload)))
    return records


_DIFFERS = {"id", "received_at"}  # dead_letter's surrogate key and arrival time


def _tables(store: ServingStore) -> dict[str, list[dict[str, Any]]]:
    tables = {
        "state": (realtime_state, ("id_type", "id_value")),
        "support": (realtime_support, ("id_type", "id_value")),
        "orders": (realtime_order, ("order_id",)),
        "offsets": (stream_offsets, ("consumer_group", "topic", "partition")),
        "dead": (dead_letter, ("topic", "partition", "offset")),
    }
    out = {}
    with store.engine.connect() as conn:
        for name, (table, order) in tables.items():
            query = select(table).order_by(*(table.c[column] for column in order))
            rows = [dict(row._mapping) for row in conn.execute(query)]
            out[name] = [
                {k: v for k, v in r.items() if k not in {"id", "received_at"}} for r in rows
            ]
    return out


def _consumed(store: ServingStore) -> int:
    return sum(sum(store.offsets("speed", topic).values()) for topic in ("clickstream", "support"))


@pytest.mark.slow
def test_a_worker_sigkilled_five_times_ends_like_an_uninterrupted_one(tmp_path: Path) -> None:
    clickstream = _clickstream(seed=6, count=24_000, identifiers=300)
    support = _support(seed=6, count=600)
    with LocalLog(tmp_path / "log", PARTITIONS) as log:
        for i in range(0, len(clickstream), 1_000):
            log.append("clickstream", clickstream[i : i + 1_000])
        log.append("support", support)
        total = len(clickstream) + len(support)

        reference = open_store(f"sqlite:///{tmp_path / 'reference.db'}")
        try:
            reference.migrate()
            stats = run(
                log,
                reference,
                topics=("clickstream", "support"),
                stop_when_caught_up=True,
                batch_size=BATCH_SIZE,
            )
            expected = _tables(reference)
        finally:
            reference.dispose()
    assert stats.records == total
    assert stats.duplicates > 0 and stats.dead_lettered > 0 and stats.orders > 0

    serving_url = f"sqlite:///{tmp_path / 'serving.db'}"
    store = open_store(serving_url)
    store.migrate()
    env = {k: v for k, v in os.environ.items() if not k.startswith("C360_")}
    env |= {
        "C360_LOG_URL": f"local://{tmp_path / 'log'}",
        "C360_LOG_PARTITIONS": str(PARTITIONS),
        "C360_SERVING_URL": serving_url,
    }
    command = [sys.executable, "-m", "c360", "stream", "run", "--batch-size", str(BATCH_SIZE)]
    rng = random.Random(360)
    try:
        for kill in range(KILLS):
            before = _consumed(store)
            with (tmp_path / f"worker-{kill}.err").open("wb") as errors:
                worker = subprocess.Popen(
                    command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=errors
                )
            try:
                deadline = time.monotonic() + 30
                while _consumed(store) == before:  # killed only once it is consuming
                    assert worker.poll() is None, (tmp_path / f"worker-{kill}.err").read_text()
                    assert time.monotonic() < deadline, "the worker made no progress"
                    time.sleep(0.005)
                time.sleep(rng.uniform(0, 0.08))
            finally:
                worker.send_signal(signal.SIGKILL)
                worker.wait(timeout=10)
            assert worker.returncode == -signal.SIGKILL
            assert _consumed(store) < total, f"kill {kill + 1} came after the end: add events"
        finished = subprocess.run(
            [*command, "--once"], cwd=tmp_path, env=env, capture_output=True, timeout=120
        )
        assert finished.returncode == 0, finished.stderr.decode()
        assert _tables(store) == expected
    finally:
        store.dispose()
