"""Benchmark: CPU time per Profile API request through the whole app, in-process — every
middleware, routing, the key check, the store read, the answer's JSON — but no socket and no
HTTP server, so the figure does not move with the load generator or the machine's other jobs
as much as a throughput does (issue 14). Compare code with alternating runs.

The ASGI app of ``c360 serve`` over the store (``--store``, default the medium world's SQLite
file as ``bench_api.py`` prepared it) gets requests one after the other from this process:
``GET /healthz`` (the floor's route), profiles by person id and by email (20,000 random
persons, a real ``profiles:read`` key). Rounds alternate between the three; the best round of
each is printed, in microseconds of this process's CPU time per request, as one JSON line.
``--warm N``: only N persons, each read once before the rounds — the profile cache and the
store's pages as a server that has run a while has them. ``--store-reads``: the store's profile
read alone, as the route calls it (async where ``--profile-reads async`` and the store reads
async, else inline), no app — for changes to the store's read, whose share of a request the
app's noise would hide.

    python bench/bench_api_cpu.py --dir /tmp/c360-medium
    python bench/bench_api_cpu.py --store postgresql://postgres@127.0.0.1:5432/c360_bench_api
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import sys
import time
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_api import api_key, lookups
from c360.api.app import create_app
from c360.config import Settings, load_config
from c360.stores import ServingStore, open_store

Message = MutableMapping[str, Any]


async def _request(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> int:
    """Send one GET through the ASGI app; its status."""
    status = 0

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    route, _, query = path.partition("?")
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": route, "raw_path": route.encode(), "query_string": query.encode(),
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    await app(scope, receive, send)
    return status


async def _rounds(
    app: Any,
    kinds: dict[str, Sequence[str]],
    key: str,
    per_round: int,
    rounds: int,
    warm: bool = False,
) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {key}".encode())]
    best: dict[str, float] = {}
    statuses: dict[str, dict[int, int]] = {name: {} for name in kinds}
    rng = random.Random(7)
    async with app.router.lifespan_context(app):
        gc.collect()
        gc.freeze()  # as c360 serve does (api/app.py: serving_process_app)
        if warm:  # every lookup path read once, unmeasured
            for paths in kinds.values():
                for path in paths:
                    await _request(app, path, headers)
        for _ in range(rounds):
            for name, paths in kinds.items():
                picks = [rng.choice(paths) for _ in range(per_round)]
                started = time.process_time()
                for path in picks:
                    status = await _request(app, path, headers)
                    statuses[name][status] = statuses[name].get(status, 0) + 1
                took = (time.process_time() - started) / per_round * 1e6
                best[name] = min(best.get(name, took), took)
    return {
        "cpu_us_per_request": {name: round(us, 1) for name, us in best.items()},
        "statuses": statuses,
    }


async def _store_rounds(
    store: ServingStore, person_ids: Sequence[str], per_round: int, rounds: int, reads_async: bool
) -> dict[str, Any]:
    """The best round's CPU per profile read by person id, the store's read alone."""
    rng = random.Random(7)
    best = float("inf")
    for _ in range(rounds):
        picks = [rng.choice(person_ids) for _ in range(per_round)]
        started = time.process_time()
        for person_id in picks:
            if reads_async:
                await store.aprofile_and_consent(person_id)
            else:
                store.profile_and_consent(person_id)
        best = min(best, (time.process_time() - started) / per_round * 1e6)
    return {"cpu_us_per_request": {"store_read_by_person_id": round(best, 1)}}


def settings_over(
    store_url: str, profile_cache: int | None, profile_reads: str | None = None
) -> Settings:
    """The settings of an app over ``store_url``, with the API options the benches vary (None:
    the setting's default)."""
    overrides: dict[str, object] = {"serving.url": store_url}
    if profile_cache is not None:
        overrides["api.profile_cache_size"] = profile_cache
    if profile_reads is not None:
        overrides["api.profile_reads"] = profile_reads
    return load_config(environ={}, overrides=overrides).settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/c360-medium"))
    parser.add_argument("--store", help="serving store URL (default: SQLite in --dir)")
    parser.add_argument("--per-round", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument(
        "--profile-cache", type=int, help="api.profile_cache_size (default: the setting's)"
    )
    parser.add_argument(
        "--warm",
        type=int,
        default=0,
        help="look up only this many persons, each read once before the rounds (a server "
        "that has run a while); 0 (the default): 20,000, from a cold start",
    )
    parser.add_argument(
        "--store-reads", action="store_true", help="the store's profile read alone, no app"
    )
    parser.add_argument(
        "--profile-reads",
        choices=["inline", "async"],
        help="api.profile_reads (default: the setting's)",
    )
    args = parser.parse_args()
    store_url = args.store or f"sqlite:///{args.dir / 'serving.db'}"
    by_id, by_email, _ = lookups(store_url, 20_000)
    settings = settings_over(store_url, args.profile_cache, args.profile_reads)
    store = open_store(store_url)
    app = create_app(settings, store=store)
    if args.warm:
        by_id, by_email = by_id[: args.warm], by_email[: args.warm]
    kinds = {"floor": ["/healthz"], "by_person_id": by_id, "by_email": by_email}
    if args.store_reads:
        person_ids = [path.rsplit("/", 1)[1] for path in by_id]
        store.cache_profiles(settings.api.profile_cache_size)  # as the app's start-up does
        reads_async = settings.api.profile_reads == "async" and store.reads_async
        result = asyncio.run(
            _store_rounds(store, person_ids, args.per_round, args.rounds, reads_async)
        )
    else:
        key = api_key(store_url)
        result = asyncio.run(
            _rounds(app, kinds, key, args.per_round, args.rounds, warm=bool(args.warm))
        )
    result["warm"] = args.warm
    cache = store.profile_cache
    reads = cache.hits + cache.misses
    result["profile_cache"] = {
        "size": settings.api.profile_cache_size,
        "hit_share": round(cache.hits / reads, 3) if reads else None,
    }
    store.dispose()
    print(json.dumps({"bench": "api_cpu", "store": store_url.split(":")[0], **result}))


if __name__ == "__main__":
    main()
