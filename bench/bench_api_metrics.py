"""The Profile API's throughput with and without its Prometheus metrics, interleaved (issue 19).

    python bench/bench_api_metrics.py --dir /tmp/ops-api --customers 20000 --days 365

Two ``c360 serve`` processes on the same published store (prepared as ``bench_api.py`` does),
one with ``api.metrics = true`` and one with ``false``; then ``--rounds`` rounds, each a wrk burst
of ``--seconds`` on lookups by person id against one server and then the other (the order
swapped every round). A machine shared with other jobs changes speed over minutes: bursts a few
seconds apart see the same machine, so the per-round ratio and the median of the rounds hold
where separate runs do not. Prints one JSON line per round and a summary."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_api import _free_port, _wait_up, api_key, lookups, prepare
from http_load import wrk


def _serve(store_url: str, metrics: bool, work: Path, stack: ExitStack) -> str:
    port = _free_port()
    env = {**os.environ, "C360_SERVING_URL": store_url, "C360_API_PORT": str(port),
           "C360_API_METRICS": str(metrics).lower()}  # fmt: skip
    errors = work / f"server-{metrics}.err"
    with errors.open("wb") as err:
        server = subprocess.Popen(
            [sys.executable, "-m", "c360", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=err
        )
    stack.callback(server.wait, 30)
    stack.callback(server.terminate)
    url = f"http://127.0.0.1:{port}"
    _wait_up(url, server, errors)
    return url


def bench(args: argparse.Namespace) -> dict[str, Any]:
    store_url = f"sqlite:///{args.dir / 'serving.db'}"
    prepare(args.dir, store_url, args.seed_events, (args.customers, args.days))
    by_id, _, _ = lookups(store_url, 20_000)
    headers = {"Authorization": f"Bearer {api_key(store_url)}"}
    ratios, on_rates, off_rates = [], [], []
    with ExitStack() as stack:
        urls = {m: _serve(store_url, m, args.dir, stack) for m in (True, False)}
        for metrics in (True, False):  # warm both: caches, the key, the first connections
            wrk(urls[metrics], by_id, headers=headers, seconds=2)
        for round_ in range(args.rounds):
            order = (True, False) if round_ % 2 == 0 else (False, True)
            rates = {
                m: wrk(urls[m], by_id, headers=headers, seconds=args.seconds)["requests_per_s"]
                for m in order
            }
            on_rates.append(rates[True])
            off_rates.append(rates[False])
            ratios.append(rates[True] / rates[False])
            print(json.dumps({"round": round_ + 1, "on": rates[True], "off": rates[False],
                              "on_over_off": round(ratios[-1], 3)}), flush=True)  # fmt: skip
    return {
        "bench": "api_metrics",
        "rounds": args.rounds,
        "seconds": args.seconds,
        "median_on_req_s": statistics.median(on_rates),
        "median_off_req_s": statistics.median(off_rates),
        "median_on_over_off": round(statistics.median(ratios), 3),
        "cores": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/c360-medium"))
    parser.add_argument("--customers", type=int, default=100_000, help="the world in --dir")
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--seed-events", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=3, help="each wrk burst")
    print(json.dumps(bench(parser.parse_args())))


if __name__ == "__main__":
    main()
