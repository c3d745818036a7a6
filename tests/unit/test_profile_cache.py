"""The profile cache's bookkeeping: rows kept beside the least-recently-used order leave with
their person, whichever way the person leaves (evicted, dropped, resized away)."""

from __future__ import annotations

from c360.stores.profiles import BatchCache, BatchParts


def parts(n: int) -> BatchParts:
    return BatchParts(
        7,
        {"person_id": f"p_{n}", "email": f"{n}@x.com"},
        {"person_id": f"p_{n}", "spend": float(n)},
        [{"id_type": "email", "id_value": f"{n}@x.com"}, {"id_type": "phone", "id_value": "+1"}],
    )


def kept_rows(cache: BatchCache) -> tuple[set[str], set[str]]:
    return set(cache._persons), set(cache._batches)


def test_a_person_leaves_the_cache_with_their_rows() -> None:
    cache = BatchCache(2)
    for n in range(5):
        cache.put(f"p_{n}", parts(n))
    assert cache.get("p_0") is None
    assert cache.get("p_4") == parts(4)  # the identifiers rebuilt as they were
    assert kept_rows(cache) == ({"p_3", "p_4"}, {"p_3", "p_4"})  # the evicted ones' gone

    cache.drop("p_4")
    assert cache.get("p_4") is None
    assert kept_rows(cache) == ({"p_3"}, {"p_3"})

    cache.resize(0)
    assert kept_rows(cache) == (set(), set())
    cache.put("p_9", parts(9))  # a cache of size 0 keeps nothing
    assert cache.get("p_9") is None
    assert kept_rows(cache) == (set(), set())


def test_a_hit_answers_with_the_rows_it_was_given() -> None:
    cache = BatchCache(3)
    given = parts(1)
    cache.put("p_1", given)
    hit = cache.get("p_1")
    assert hit is not None
    assert (hit.publish_id, hit.person, hit.batch) == (7, given.person, given.batch)
    assert hit.identifiers == given.identifiers and hit.identifiers is not given.identifiers
