"""The API's key cache against a real SQLite store: misses re-read the keys at a bounded rate
(made-up keys cannot flood the store), and a failed refresh keeps the keys it has."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from c360.access.keys import generate
from c360.api.auth import MISS_RELOAD_SECONDS, KeyCache
from c360.stores import ServingStore, StoreUnavailable, open_store


@pytest.fixture
def counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ServingStore, list[int]]]:
    """A migrated SQLite store whose reads of the key table are counted."""
    store = open_store(f"sqlite:///{tmp_path / 'serving.db'}")
    store.migrate()
    reads: list[int] = []
    read = store.api_keys

    def counting() -> list[object]:
        reads.append(1)
        return read()  # type: ignore[return-value]

    monkeypatch.setattr(store, "api_keys", counting)
    yield store, reads
    store.dispose()


def test_misses_share_reads_at_a_bounded_rate(counted: tuple[ServingStore, list[int]]) -> None:
    store, reads = counted
    cache = KeyCache(store, refresh_seconds=60)
    cache.load()
    late = generate(["profiles:read"]).record
    store.add_api_key(late)

    async def flood() -> list[object]:
        made_up = [cache.find(f"{i:016x}") for i in range(200)]
        return await asyncio.gather(cache.find(late.key_id), *made_up)

    found = asyncio.run(flood())
    assert found[0] == late  # the key made after the cache was loaded: found on its miss
    assert all(key is None for key in found[1:])
    assert len(reads) == 2  # the load, then one read for all 201 misses

    started = time.monotonic()
    asyncio.run(cache.find("f" * 16))
    asyncio.run(cache.find("e" * 16))  # right after a miss read: waits for the next slot
    assert len(reads) == 4
    assert time.monotonic() - started >= MISS_RELOAD_SECONDS * 0.9


def test_a_failed_refresh_keeps_the_cached_keys(
    counted: tuple[ServingStore, list[int]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, _ = counted
    key = generate(["profiles:read"]).record
    store.add_api_key(key)
    cache = KeyCache(store, refresh_seconds=0.05)
    cache.load()

    def down() -> list[object]:
        raise StoreUnavailable("serving store sqlite:///x (reading the API keys): unavailable")

    monkeypatch.setattr(store, "api_keys", down)

    async def refresh_a_while() -> None:
        task = asyncio.create_task(cache.refresh_forever())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.WARNING, logger="c360.api.auth"):
        asyncio.run(refresh_a_while())
    assert cache.get(key.key_id) == key
    assert "API keys not refreshed, keeping the cached ones" in caplog.text
