"""Benchmark: erase one person from a world's lake (issue 18's target: ≤ 60 s on the medium
world, dominated by the lake's rewrites).

The world's lake (``--dir``: a folder with ``lake/``, as bench_features.py prepares it) is
hard-linked into ``--work`` first — erasure writes new files and renames folders, never edits a
file in place, so the world itself is untouched — then one customer (``--customer``, default
a seeded pick among those with orders) is resolved from the raw zone as identity would (their
email, cookies, Zendesk users, Mailchimp members) and erased from every partition of every zone
(:func:`c360.pipeline.erasure.erase_lake`). Prints JSON: seconds, partitions scanned and
rewritten, rows removed, and a re-scan that finds none of their identifiers.

A lake archived before the event archive's lifted ``identifiers`` column existed is erased by
searching its payloads; ``--upgrade`` first gives the copy's archive partitions that column
(:func:`c360.ingest.archive.upgrade`, timed apart), as ``c360 ingest upgrade-archive`` does.

    flock /tmp/c360-bench.lock .venv/bin/python bench/bench_erasure.py --dir /tmp/c360-medium
    flock /tmp/c360-bench.lock .venv/bin/python bench/bench_erasure.py --dir /tmp/c360-medium \
        --upgrade
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import time
from pathlib import Path

import duckdb

from c360.ingest.archive import upgrade
from c360.lake import Lake
from c360.pipeline.erasure import erase_lake
from c360.privacy.identifiers import Subject


def _subject(lake: Path, customer: int | None, seed: int) -> Subject:
    raw = lake / "raw"
    db = duckdb.connect()
    if customer is None:
        ids = db.sql(
            f"SELECT DISTINCT customer_id FROM read_parquet('{raw}/shop/orders/*/*.parquet') "
            "WHERE customer_id IS NOT NULL ORDER BY 1"
        ).fetchall()
        customer = int(random.Random(seed).choice(ids)[0])
    subject = Subject()
    subject.add("customer_id", customer)
    emails = db.sql(
        f"SELECT DISTINCT lower(trim(email)) FROM read_parquet('{raw}/shop/customers/*/*.parquet',"
        f" union_by_name=true) WHERE customer_id = {customer}"
    ).fetchall()
    subject.add_all(("email", e) for (e,) in emails)
    in_emails = ", ".join(f"'{e}'" for (e,) in emails) or "NULL"
    queries = {
        "anonymous_id": f"SELECT DISTINCT anonymous_id FROM read_parquet("
        f"'{raw}/events/clickstream/*/*.parquet', union_by_name=true) WHERE user_id = '{customer}'",
        "zendesk_user_id": f"SELECT DISTINCT user_id FROM read_parquet("
        f"'{raw}/zendesk/events/*/*.parquet') WHERE lower(email) IN ({in_emails})",
        "mailchimp_id": f"SELECT DISTINCT euid FROM read_parquet("
        f"'{raw}/mailchimp/members/*/*.parquet', union_by_name=true) "
        f"WHERE lower(email_address) IN ({in_emails})",
    }
    for id_type, sql in queries.items():
        subject.add_all((id_type, v) for (v,) in db.sql(sql).fetchall() if v)
    return subject


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True, help="a world folder with lake/")
    parser.add_argument("--work", type=Path, default=Path("/tmp/c360-erasure-bench"))
    parser.add_argument("--customer", type=int, default=None)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument(
        "--upgrade",
        action="store_true",
        help="give the copy's archive partitions the lifted identifiers column first",
    )
    args = parser.parse_args()
    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    subprocess.run(["cp", "-al", str(args.dir / "lake"), str(args.work / "lake")], check=True)
    lake_path = args.work / "lake"
    subject = _subject(lake_path, args.customer, args.seed)
    lake = Lake(str(lake_path))
    upgraded: dict[str, object] = {}
    if args.upgrade:
        started = time.perf_counter()
        upgraded = {"partitions": upgrade(lake)}
        upgraded["seconds"] = round(time.perf_counter() - started, 1)
    partitions = sum(len(lake.partitions(s, t, z)) for z, s, t in lake.tables())

    started = time.perf_counter()
    done = erase_lake(lake, subject)
    seconds = time.perf_counter() - started

    again = erase_lake(lake, subject)  # a re-scan: nothing of theirs is left to rewrite
    print(
        json.dumps(
            {
                "seconds": round(seconds, 2),
                "identifiers": {t: len(v) for t, v in subject.values.items()},
                "partitions_scanned": partitions,
                "files_rewritten": done.files,
                "rows_removed": done.rows,
                "rescan_rows": again.rows,
                "upgraded": upgraded,
            }
        )
    )
    shutil.rmtree(args.work)


if __name__ == "__main__":
    main()
