"""Load generators for the API benchmarks: wrk for throughput, an open-loop client for latency.

- :func:`wrk` runs Debian's ``wrk`` (closed loop: as fast as the server answers) over a list of
  paths picked at random by a Lua script, and reads its throughput and latency percentiles.
- :func:`open_loop` sends requests at a fixed rate *by the clock*: request ``i`` is due at
  ``start + i / rate`` whether or not earlier ones were answered, and its latency is counted from
  that moment, so a slow answer shows in the latency of every request queued behind it (no
  coordinated omission). Plain HTTP/1.1 over keep-alive connections, a few lines of asyncio: the
  client's own cost per request is a few tens of microseconds.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_LUA = """
local paths = {}
for line in io.lines("%(paths)s") do paths[#paths + 1] = line end
%(headers)s
math.randomseed(7)
local at = 0
request = function()
  %(pick)s
  return wrk.format("GET", paths[at], headers)
end
done = function(summary, latency, requests)
  io.write(string.format("C360 %%d %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def wrk(
    base_url: str,
    paths: Sequence[str],
    *,
    headers: dict[str, str] | None = None,
    seconds: int = 10,
    connections: int = 8,
    threads: int = 1,
    in_turn: bool = False,
) -> dict[str, Any]:
    """Maximum throughput over ``paths`` (picked at random; ``in_turn``: each in turn, round
    and round, so a run long enough asks every one): requests/s, p50/p99 in ms, errors."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as work:
        path_file = Path(work) / "paths.txt"
        path_file.write_text("\n".join(paths) + "\n")
        lines = [f'headers["{k}"] = "{v}"' for k, v in (headers or {}).items()]
        script = Path(work) / "paths.lua"
        script.write_text(
            _LUA
            % {
                "paths": path_file,
                "headers": "headers = {}\n" + "\n".join(lines),
                "pick": "at = at % #paths + 1" if in_turn else "at = math.random(#paths)",
            }
        )
        done = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", str(script),
             base_url],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    match = re.search(r"^C360 (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)$", done.stdout, re.M)
    if match is None:
        raise RuntimeError(f"unexpected wrk output:\n{done.stdout}\n{done.stderr}")
    requests, duration_us, p50_us, p99_us, bad_status, socket_errors = map(int, match.groups())
    return {
        "requests_per_s": round(requests / (duration_us / 1e6)),
        "p50_ms": p50_us / 1000,
        "p99_ms": p99_us / 1000,
        "non_2xx": bad_status,
        "socket_errors": socket_errors,
        "requests": requests,
    }


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    await reader.readexactly(length)
    return status


async def _open_loop(
    host: str,
    port: int,
    paths: Sequence[str],
    headers: dict[str, str],
    rate: float,
    seconds: float,
    connections: int,
) -> dict[str, Any]:
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    rng = random.Random(7)
    total = int(rate * seconds)
    due = asyncio.Queue[tuple[float, bytes]]()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    start = time.perf_counter() + 0.2

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                at, request = await due.get()
                try:
                    status = await _exchange(reader, writer, request)
                except (ConnectionError, asyncio.IncompleteReadError):
                    status = 0
                    reader, writer = await asyncio.open_connection(host, port)
                latencies.append(time.perf_counter() - at)
                statuses[status] = statuses.get(status, 0) + 1
                due.task_done()
        finally:
            writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    for i in range(total):
        at = start + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        path = paths[rng.randrange(len(paths))]
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()
        due.put_nowait((at, request))
    await due.join()
    for worker in workers:
        worker.cancel()
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "rate": rate,
        "achieved_per_s": round(total / elapsed),
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
        "max_ms": round(latencies[-1] * 1000, 3),
        "statuses": statuses,
    }


def open_loop(
    base_url: str,
    paths: Sequence[str],
    *,
    rate: float,
    seconds: float = 15,
    headers: dict[str, str] | None = None,
    connections: int = 32,
) -> dict[str, Any]:
    """Latency at a fixed request rate, counted from each request's due time."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    return asyncio.run(_open_loop(host, port, paths, headers or {}, rate, seconds, connections))


if __name__ == "__main__":  # a quick manual check: python bench/http_load.py URL PATH
    import sys

    print(json.dumps(open_loop(sys.argv[1], [sys.argv[2]], rate=200, seconds=3)))
