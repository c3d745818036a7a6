"""What the API's Prometheus middleware costs a request, in-process: microseconds per request of
a trivial ASGI app called directly, with and without ``MetricsMiddleware`` around it (issue 19).

    python bench/bench_metrics_middleware.py [--requests 100000] [--rounds 3]

No server, no socket: the difference is the middleware's own work (route template, a counter
and a histogram). Compare it with a request's cost under load (``bench_api.py``) for its share.
Prints one JSON line per round."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import MutableMapping
from typing import Any

from c360.api.metrics import ASGIApp, MetricsMiddleware

Message = MutableMapping[str, Any]


class _Route:  # what Starlette's router leaves in the scope
    path = "/v1/profiles/{person_id}"


async def _app(scope: Message, receive: Any, send: Any) -> None:
    scope["route"] = _Route()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _receive() -> Message:
    return {"type": "http.request", "body": b""}


async def _send(message: Message) -> None:
    return None


async def _per_request_us(target: ASGIApp, requests: int) -> float:
    scope = {"type": "http", "method": "GET", "path": "/v1/profiles/p_1"}
    started = time.perf_counter()
    for _ in range(requests):
        await target(dict(scope), _receive, _send)
    return (time.perf_counter() - started) / requests * 1e6


async def _rounds(requests: int, rounds: int) -> None:
    wrapped = MetricsMiddleware(_app)
    for _ in range(rounds):
        bare = await _per_request_us(_app, requests)
        measured = await _per_request_us(wrapped, requests)
        print(json.dumps({
            "bench": "metrics_middleware", "requests": requests,
            "bare_us": round(bare, 2), "with_metrics_us": round(measured, 2),
            "cost_us": round(measured - bare, 2), "cores": os.cpu_count(),
        }))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(_rounds(args.requests, args.rounds))


if __name__ == "__main__":
    main()
