"""Benchmark: what recording one profile read in the read audit costs, buffer to table.

    python bench/bench_audit.py [--reads 20000] [--rounds 5] [--url postgresql://…]

Records ``--reads`` reads through :class:`~c360.api.audit.ReadAudit` (``record``, then one
``flush`` of them all, as the API's flush thread writes a second's reads) into a real store:
a SQLite file in a temporary folder, and the PostgreSQL server of ``--url`` when given (in a
scratch database, ``c360_bench_audit``, dropped and created). Two mixes of persons: every read
a different person (``distinct``: the erasure check's largest list) and 200 persons read over
and over (``repeated``). One person is erased first, so the flush checks the suppression list
as it does in any store where someone ever was.

Prints one JSON line per store and mix: microseconds per recorded read, wall-clock and the recording
thread's CPU (on PostgreSQL the server's work is in the wall-clock figure only), the median
of ``--rounds`` rounds; the table is emptied between rounds, untimed.

``--busy``: as in the API, another thread of the process runs Python the whole time (the event
loop's stand-in: a loop of additions), so the flush's thread has to win the interpreter's lock
back whenever it lets go of it; the figures then include those waits.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from c360.api.audit import ReadAudit
from c360.privacy.identifiers import PERSON, identifier_hash
from c360.stores import ServingStore, open_store

ROUTE = "/v1/profiles/{person_id}"
KEY_ID = "0123456789abcdef"
REPEATED = 200


def fresh_postgres(url: str, name: str = "c360_bench_audit") -> str:
    """A scratch database ``name`` on the server of ``url`` (dropped and created)."""
    admin = sa.create_engine(
        url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return url.rsplit("/", 1)[0] + f"/{name}"


@contextmanager
def busy_thread(busy: bool) -> Iterator[None]:
    """With ``busy``, a thread running Python until the block exits."""
    if not busy:
        yield
        return
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            total = 0
            for i in range(1_000):
                total += i

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def one_round(store: ServingStore, persons: list[str], busy: bool) -> tuple[float, float]:
    """Seconds (wall, CPU of the flushing thread) to record and write one read of each of
    ``persons``."""
    audit = ReadAudit(store, buffer_size=len(persons), flush_seconds=60)
    with busy_thread(busy):
        wall, cpu = time.perf_counter(), time.thread_time()
        for person_id in persons:
            audit.record(KEY_ID, person_id, ROUTE)
        written = audit.flush()
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    assert written == len(persons), written
    return wall, cpu


def measure(url: str, reads: int, rounds: int, busy: bool) -> list[dict[str, object]]:
    store = open_store(url)
    try:
        store.migrate()
        salt = store.erasure_salt()
        store.suppress([{"type": PERSON, "hash": identifier_hash(salt, PERSON, "p_gone")}], "e-1")
        mixes = {
            "distinct": [f"p_{i:016x}" for i in range(reads)],
            "repeated": [f"p_{i % REPEATED:016x}" for i in range(reads)],
        }
        lines = []
        for mix, persons in mixes.items():
            walls, cpus = [], []
            for _ in range(rounds):
                with store.engine.begin() as conn:
                    conn.execute(sa.text("DELETE FROM read_audit"))
                wall, cpu = one_round(store, persons, busy)
                walls.append(wall)
                cpus.append(cpu)
            lines.append(
                {
                    "bench": "audit",
                    "store": url.split(":")[0],
                    "persons": mix,
                    "reads": reads,
                    "rounds": rounds,
                    "busy": busy,
                    "us_per_read": round(statistics.median(walls) / reads * 1e6, 2),
                    "cpu_us_per_read": round(statistics.median(cpus) / reads * 1e6, 2),
                    "best_us_per_read": round(min(walls) / reads * 1e6, 2),
                }
            )
        return lines
    finally:
        store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--url", help="a PostgreSQL server URL to measure as well")
    parser.add_argument("--busy", action="store_true", help="another thread runs Python meanwhile")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        urls = [f"sqlite:///{Path(folder) / 'serving.db'}"]
        if args.url:
            urls.append(fresh_postgres(args.url))
        for url in urls:
            for line in measure(url, args.reads, args.rounds, args.busy):
                print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
