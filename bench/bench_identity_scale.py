"""Benchmark: the whole identity step after extraction at the issue's shape — 1M records of
≈700k persons — timed end to end and scored as clusters against the generated truth.

The records come from bench_febrl's production-like generator (accounts with their orders,
guests with mistyped repeat orders, newsletter members, support users; Zipf-shared names,
households sharing address and phone). Then exactly what `c360 identity run` does after it
reads the lake: deterministic graph with guards, Splink, guarded clustering, stable ids and
identity_map. One JSON line.

    python bench/bench_identity_scale.py --persons 700000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import time

import pyarrow as pa
import pyarrow.compute as pc

from bench_febrl import cluster_scores, synthetic_records
from c360.config import load_config
from c360.contracts.identity import IDENTIFIERS, LINKS
from c360.engines import open_compute
from c360.identity import clustering, graph, probabilistic, stable_ids


def identifiers_of(records: pa.Table) -> pa.Table:
    """Each record's customer_id and email as identifiers (what records.py derives)."""
    parts = []
    for id_type, column in (("customer_id", "customer_id"), ("email", "email")):
        values = records[column].cast(pa.string())
        keep = pc.is_valid(values)
        keys = records["record_key"].filter(keep)
        parts.append(
            pa.table(
                {
                    "record_key": keys,
                    "id_type": pa.array([id_type] * len(keys), pa.string()),
                    "id_value": values.filter(keep),
                },
                schema=IDENTIFIERS,
            )
        )
    return pa.concat_tables(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=700_000)
    args = parser.parse_args()
    settings = load_config(environ={}).settings
    compute = open_compute(settings.compute)
    records, truth = synthetic_records(args.persons)
    identifiers = identifiers_of(records)
    seconds: dict[str, float] = {}
    started = clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = round(now - clock, 2)
        clock = now

    deterministic = graph.deterministic_links(compute, records, identifiers, settings.identity)
    lap("graph")
    matched = probabilistic.link_run(compute, records, settings.identity)
    lap("probabilistic")
    links = pa.concat_tables([deterministic.links.cast(LINKS), matched.links.cast(LINKS)])
    clustered = clustering.cluster(records, links, settings.identity)
    lap("clustering")
    assigned = stable_ids.assign(compute, clustered.clusters, records, None, dt.date(2026, 1, 1))
    stable_ids.identity_map(compute, identifiers, assigned.assignment)
    lap("stable_ids")
    total = time.perf_counter() - started
    person_of = dict(
        zip(
            assigned.assignment["record_key"].to_pylist(),
            assigned.assignment["person_id"].to_pylist(),
            strict=True,
        )
    )
    scores = cluster_scores(person_of, truth)
    print(
        json.dumps(
            {
                "bench": "identity_scale",
                "records": records.num_rows,
                "persons_true": args.persons,
                "persons_found": assigned.person_ids.num_rows,
                "seconds": round(total, 2),
                "stage_seconds": seconds,
                **{f"cluster_{k}": round(v, 5) for k, v in scores.items()},
                "deterministic_links": deterministic.links.num_rows,
                "probabilistic_links": matched.links.num_rows,
                "refused_links": clustered.refused.num_rows,
                "largest_cluster": clustered.largest_size,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
        )
    )


if __name__ == "__main__":
    main()
