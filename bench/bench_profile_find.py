"""Benchmark: CPU per profile read by email against by person id, the same persons, in-process
on a prepared serving store (issue 14): what a kept find saves (the profile cache keeps which
person an identifier belongs to, so a repeat read by email skips the find).

    python bench/bench_profile_find.py --store sqlite:////tmp/c360-100k/serving-new.db

Reads ``--persons`` random persons with an email by id, then by email, each for ``--rounds``
rounds (the first fills the cache); prints the best round of each, in microseconds of this
process's CPU time per read, as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable, Sequence

import sqlalchemy as sa

from c360.stores import open_store


def best(
    read: Callable[[tuple[str, str]], object], pairs: Sequence[tuple[str, str]], rounds: int
) -> float:
    times = []
    for _ in range(rounds):
        started = time.process_time()
        for pair in pairs:
            read(pair)
        times.append((time.process_time() - started) / len(pairs) * 1e6)
    return round(min(times), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", required=True, help="a serving store bench_api.py prepared")
    parser.add_argument("--persons", type=int, default=3_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cache", type=int, default=20_000, help="api.profile_cache_size")
    args = parser.parse_args()
    engine = sa.create_engine(args.store)
    with engine.connect() as conn:
        emails = conn.execute(
            sa.text("SELECT id_value, person_id FROM identity_map WHERE id_type = 'email'")
        ).all()
    engine.dispose()
    pairs = random.Random(1).sample([(str(e), str(p)) for e, p in emails], args.persons)
    store = open_store(args.store)
    store.cache_profiles(args.cache)
    try:
        by_id = best(lambda pair: store.profile_and_consent(pair[1]), pairs, args.rounds)
        by_email = best(
            lambda pair: store.profile_by_identifier("email", pair[0]), pairs, args.rounds
        )
    finally:
        store.dispose()
    print(
        json.dumps(
            {
                "bench": "profile_find",
                "store": args.store.split(":")[0],
                "persons": args.persons,
                "cpu_us_per_read": {"by_person_id": by_id, "by_email": by_email},
            }
        )
    )


if __name__ == "__main__":
    main()
