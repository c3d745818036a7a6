"""Benchmark: search and the timeline on a published world (SQLite and, when given, PostgreSQL).

Reads a world's batch from the lake (person, identity_map, person_redirect, batch_profile — the
day the feature benchmark wrote), computes its ``timeline_event`` from the raw zone with the
timeline's SQL steps (DuckDB, timed), publishes everything into a fresh store (timed: the search
terms and timeline rows are part of the publish), then times search queries of every kind — the
first page and, following the cursor, the tenth — and timeline pages of random persons, and
prints the query plan of a short name prefix. One JSON line per store.

    python bench/bench_search.py --dir /tmp/c360-medium \
        --postgres postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from bench_features import settings_for
from bench_profile_read import batch_tables, fresh_postgres
from c360.batch import features
from c360.engines import compute
from c360.identity.normalise import fold_text
from c360.lake import Lake
from c360.pipeline.lake_inputs import raw_inputs
from c360.stores import ServingStore, open_store
from c360.stores import search as search_sql


def timeline_table(settings: Any, lake: Lake, day: dt.date) -> tuple[pa.Table, float]:
    started = time.perf_counter()
    steps = features.timeline_steps(day)
    tables = compute(settings.compute, raw_inputs(lake, day), steps, ["timeline_event"])
    return tables["timeline_event"], time.perf_counter() - started


def queries(tables: dict[str, pa.Table]) -> dict[str, str]:
    """One query of each kind, taken from the data: the most common name's prefixes, a full
    name, an email prefix and identifiers that exist."""
    person = tables["person"]
    last = collections.Counter(
        fold_text(v) for v in person["last_name"].to_pylist() if v and fold_text(v)
    ).most_common(1)[0][0]
    first = next(v for v in person["first_name"].to_pylist() if v)
    identity = tables["identity_map"]

    def some(id_type: str) -> str:
        values = identity.filter(pc.equal(identity["id_type"], id_type))["id_value"]
        return str(values[len(values) // 2]) if len(values) else "none"

    email = some("email")
    return {
        "one letter": last[:1],
        "name prefix (3)": last[:3],
        "last name": last,
        "first + last": f"{first} {last[:4]}",
        "email prefix": email[: max(3, email.index("@") - 2)] if "@" in email else email[:4],
        "phone (exact)": some("phone"),
        "customer id (exact)": some("customer_id"),
        "no match": "zzqx",
    }


def timed(action: Any, runs: int) -> tuple[float, float]:
    latencies = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        latencies.append(time.perf_counter() - started)
    latencies.sort()
    return (
        round(statistics.median(latencies) * 1000, 2),
        round(latencies[int(len(latencies) * 0.95) - 1] * 1000, 2),
    )


def plan(store: ServingStore, q: str) -> list[str]:
    _exact, arms = search_sql.plan(q)
    arm = arms[0]
    params = {"lo": arm.low, "hi": search_sql._after(arm.low), "n": 21}
    sql = (
        "SELECT t.term, t.person_id FROM search_term t WHERE t.kind = 'name' "
        "AND t.term >= :lo AND t.term < :hi AND NOT EXISTS (SELECT 1 FROM search_term o "
        "WHERE o.person_id = t.person_id AND o.kind = 'name' AND o.term >= :lo "
        "AND o.term < t.term) ORDER BY t.term, t.person_id LIMIT :n"
    )
    explain = "EXPLAIN QUERY PLAN " if store.dialect.name == "sqlite" else "EXPLAIN ANALYZE "
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text(explain + sql), params).fetchall()
    return [" | ".join(str(c) for c in row) for row in rows]


def measure(url: str, day: dt.date, tables: dict[str, pa.Table], runs: int) -> dict[str, Any]:
    store = open_store(url)
    try:
        store.migrate()
        started = time.perf_counter()
        store.publish_batch(day, tables)
        publish_s = time.perf_counter() - started
        terms = store.query("SELECT count(*) AS n FROM search_term")[0]["n"]
        results: dict[str, Any] = {}
        for kind, q in queries(tables).items():
            first = store.search(q, 20)
            page, after, pages = first, first.next_key, 1
            while after is not None and pages < 10:
                page = store.search(q, 20, after)
                after, pages = page.next_key, pages + 1
            deep = page.next_key if pages == 10 else None
            results[kind] = {
                "first_page_ms": timed(lambda q=q: store.search(q, 20), runs),
                "page_10_ms": timed(lambda q=q, d=deep: store.search(q, 20, d), runs)
                if deep is not None
                else None,
                "hits_first_page": len(first.rows),
            }
        persons = tables["person"]["person_id"].to_pylist()
        picks = random.Random(7).sample(persons, min(runs * 5, len(persons)))
        now = dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
        sizes = []

        def read_timeline(pick: list[str] = picks) -> None:
            page = store.timeline(pick.pop(), limit=50, days=90, now=now)
            sizes.append(0 if page is None else len(page.events))

        timeline_ms = timed(read_timeline, len(picks))
        return {
            "bench": "search",
            "store": url.split(":")[0],
            "persons": len(persons),
            "search_terms": terms,
            "timeline_rows": tables["timeline_event"].num_rows,
            "publish_s": round(publish_s, 1),
            "search": results,
            "timeline_page_ms": timeline_ms,
            "timeline_events_per_page_mean": round(statistics.mean(sizes), 1),
            "plan_name_prefix": plan(store, queries(tables)["name prefix (3)"]),
        }
    finally:
        store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/c360-medium"))
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--out", type=Path, help="folder for the SQLite store (default --dir)")
    parser.add_argument("--postgres", help="PostgreSQL URL to measure as well")
    args = parser.parse_args()
    settings = settings_for(args.dir, args.customers, args.days, "duckdb")
    day = settings.simulator.start_date + dt.timedelta(days=settings.simulator.days - 1)
    lake = Lake(settings.lake.url)
    tables = batch_tables(lake, day)
    tables["timeline_event"], timeline_s = timeline_table(settings, lake, day)
    print(json.dumps({"timeline_steps_s": round(timeline_s, 1)}), flush=True)
    urls = [f"sqlite:///{(args.out or args.dir) / 'bench-search.db'}"]
    if args.postgres:
        urls.append(fresh_postgres(args.postgres, "c360_bench_search"))
    for url in urls:
        print(json.dumps(measure(url, day, tables, args.runs)), flush=True)


if __name__ == "__main__":
    main()
