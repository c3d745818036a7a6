"""What privacy adds to the Profile API's hot path, per read: the consent decision's query and
the read audit's record, beside the profile read itself (issue 18).

    python bench/bench_privacy.py [--persons 100000] [--reads 20000] [--store URL]

A store (SQLite in a temporary folder by default) gets ``--persons`` persons with two
identifiers each, and a consent decision for one person in ten; then, in this process, random
persons are read ``--reads`` times each way: ``ServingStore.profile``,
``ServingStore.consent_decision`` and ``ReadAudit.record`` (then one flush of everything
recorded, timed). Prints one JSON line per measurement: mean and p99 microseconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from c360.access.consent import Decision
from c360.api.audit import ReadAudit
from c360.stores import ServingStore, open_store


def publish(store: ServingStore, persons: int) -> list[str]:
    ids = [f"p_{i:016x}" for i in range(persons)]
    emails = [f"person{i}@example.com" for i in range(persons)]
    store.publish_batch(
        dt.date(2026, 12, 5),
        {
            "person": pa.table({"person_id": ids, "email": emails}),
            "identity_map": pa.table(
                {
                    "id_type": ["email"] * persons + ["customer_id"] * persons,
                    "id_value": [*emails, *map(str, range(persons))],
                    "person_id": [*ids, *ids],
                }
            ),
            "batch_profile": pa.table(
                {
                    "person_id": ids,
                    "churn_risk": [0.5] * persons,
                    "marketing_consent": [True] * persons,
                    "marketing_consent_at": pa.array(
                        [dt.datetime(2026, 12, 1)] * persons, pa.timestamp("us")
                    ),
                }
            ),
        },
    )
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for person_id in ids[::10]:
        store.record_consent(person_id, Decision(False, now, "api"))
    return ids


def timed(name: str, reads: int, call: Callable[[], object]) -> None:
    samples = []
    for _ in range(reads):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1e6)
    samples.sort()
    print(
        json.dumps(
            {
                "measure": name,
                "reads": reads,
                "mean_us": round(statistics.fmean(samples), 2),
                "p99_us": round(samples[int(len(samples) * 0.99)], 2),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--reads", type=int, default=20_000)
    parser.add_argument("--store", help="a serving.url (default: SQLite in a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(args.store or f"sqlite:///{Path(folder) / 'serving.db'}")
        store.migrate()
        ids = publish(store, args.persons)
        pick = random.Random(7).choice
        timed("profile read", args.reads, lambda: store.profile(pick(ids)))
        timed(
            "profile read with its consent decision",
            args.reads,
            lambda: store.profile_and_consent(pick(ids)),
        )
        audit = ReadAudit(store, buffer_size=args.reads, flush_seconds=60)
        timed(
            "audit record",
            args.reads,
            lambda: audit.record("0123456789abcdef", pick(ids), "/v1/profiles/{person_id}"),
        )
        started = time.perf_counter()
        written = audit.flush()
        seconds = time.perf_counter() - started
        print(json.dumps({"measure": "audit flush", "rows": written, "seconds": round(seconds, 3)}))
        store.dispose()


if __name__ == "__main__":
    main()
