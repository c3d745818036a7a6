"""Benchmark: the Profile API's garbage-collection pauses while its profile cache fills (issue 14,
the p99 target). A full collection walks every object the cyclic collector tracks, and a
server's profile cache is its largest store of long-lived objects.

The ASGI app of ``c360 serve`` over the store (``--store``, default the medium world's SQLite
file as ``bench_api.py`` prepared it) reads 20,000 persons by id, then by email, one request
after the other in this process, from a cold start (the cache as a new server has it). Printed
as one JSON line: each request's latency (p50, p99, p99.9, max, ms), the collections of each
generation (count, longest and total pause, ms), the objects the collector tracks at the end,
and how long a full collection takes then.

    python bench/bench_gc_pauses.py --dir /tmp/c360-medium
    python bench/bench_gc_pauses.py --dir /tmp/c360-medium --profile-cache 0
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_api import api_key, lookups
from bench_api_cpu import _request, settings_over
from c360.api.app import create_app
from c360.stores import open_store


class Pauses:
    """Each collection's generation and pause, from ``gc.callbacks``."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, float]] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seen.append((info["generation"], (time.perf_counter() - self._started) * 1e3))

    def summary(self) -> dict[str, Any]:
        out = {}
        for generation in (0, 1, 2):
            pauses = [ms for gen, ms in self.seen if gen == generation]
            out[f"gen{generation}"] = {
                "count": len(pauses),
                "max_ms": round(max(pauses, default=0.0), 2),
                "total_ms": round(sum(pauses), 1),
            }
        return out


def _percentile(ordered: list[float], share: float) -> float:
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * share))], 3)


async def _run(app: Any, paths: list[str], key: str) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {key}".encode())]
    pauses = Pauses()
    latencies = []
    async with app.router.lifespan_context(app):
        gc.collect()
        gc.freeze()  # as c360 serve does (api/app.py: serving_process_app)
        gc.callbacks.append(pauses)
        try:
            for path in paths:
                started = time.perf_counter()
                status = await _request(app, path, headers)
                latencies.append((time.perf_counter() - started) * 1e3)
                if status != 200:
                    raise SystemExit(f"{path}: status {status}")
        finally:
            gc.callbacks.remove(pauses)
        tracked = len(gc.get_objects())
        started = time.perf_counter()
        gc.collect()
        full_ms = (time.perf_counter() - started) * 1e3
    latencies.sort()
    return {
        "requests": len(latencies),
        "latency_ms": {
            "p50": _percentile(latencies, 0.5),
            "p99": _percentile(latencies, 0.99),
            "p99_9": _percentile(latencies, 0.999),
            "max": round(latencies[-1], 1),
        },
        "collections": pauses.summary(),
        "tracked_objects_at_end": tracked,
        "full_collection_at_end_ms": round(full_ms, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/c360-medium"))
    parser.add_argument("--store", help="serving store URL (default: SQLite in --dir)")
    parser.add_argument(
        "--profile-cache", type=int, help="api.profile_cache_size (default: the setting's)"
    )
    args = parser.parse_args()
    store_url = args.store or f"sqlite:///{args.dir / 'serving.db'}"
    by_id, by_email, _ = lookups(store_url, 20_000)
    settings = settings_over(store_url, args.profile_cache)
    store = open_store(store_url)
    app = create_app(settings, store=store)
    result = asyncio.run(_run(app, [*by_id, *by_email], api_key(store_url)))
    store.dispose()
    result["profile_cache"] = settings.api.profile_cache_size
    print(json.dumps({"bench": "gc_pauses", "store": store_url.split(":")[0], **result}))


if __name__ == "__main__":
    main()
