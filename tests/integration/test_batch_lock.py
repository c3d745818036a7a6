"""One daily batch at a time: the batch lock's lease on real stores (SQLite and PostgreSQL,
the ``store`` fixture) — taken atomically, renewed while held, taken over from a dead holder —
and two concurrent ``c360 batch run`` of which one is refused."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from tiny_world import DAY, build

from c360.cli.main import main
from c360.config import Settings
from c360.pipeline import daily
from c360.pipeline.batch_lock import LEASE, BatchLocked, LockLost, batch_lock
from c360.stores import ServingStore

SECOND = dt.timedelta(seconds=1)


def url_of(store: ServingStore) -> str:
    return store.engine.url.render_as_string(hide_password=False)


def test_a_lease_is_held_by_one_owner_until_released(store: ServingStore) -> None:
    assert store.take_lease(LEASE, "a", 60 * SECOND)
    assert not store.take_lease(LEASE, "b", 60 * SECOND)
    assert store.take_lease(LEASE, "a", 60 * SECOND)  # its own: taken again
    assert store.renew_lease(LEASE, "a", 60 * SECOND)
    assert not store.renew_lease(LEASE, "b", 60 * SECOND)
    assert not store.release_lease(LEASE, "b")
    held = store.lease(LEASE)
    assert held is not None and held.owner == "a"
    assert 59 <= (held.expires_at - held.acquired_at).total_seconds() <= 61
    assert store.release_lease(LEASE, "a")
    assert store.lease(LEASE) is None
    assert store.take_lease(LEASE, "b", 60 * SECOND)


def test_of_many_concurrent_takers_exactly_one_wins(store: ServingStore) -> None:
    takers = 8
    start = threading.Barrier(takers)
    won: list[str] = []

    def take(owner: str) -> None:
        start.wait()
        if store.take_lease(LEASE, owner, 60 * SECOND):
            won.append(owner)

    threads = [threading.Thread(target=take, args=(f"owner-{i}",)) for i in range(takers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    held = store.lease(LEASE)
    assert held is not None and held.owner == won[0]


HOLDER = textwrap.dedent(
    """
    import datetime as dt, sys, time
    from c360.pipeline.batch_lock import batch_lock
    from c360.stores import open_store

    with batch_lock(open_store(sys.argv[1]), dt.timedelta(seconds=2), owner="dead-holder"):
        print("held", flush=True)
        time.sleep(600)
    """
)


def test_a_dead_holders_lease_expires_and_is_taken_over(store: ServingStore) -> None:
    command = [sys.executable, "-c", HOLDER, url_of(store)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "held\n"
            time.sleep(3)  # more than its TTL: the holder renews it
            with (
                pytest.raises(BatchLocked, match="held by dead-holder since"),
                batch_lock(store, 60 * SECOND),
            ):
                pass
        finally:
            holder.kill()  # SIGKILL: no release, no more renewals
    held = store.lease(LEASE)
    assert held is not None and held.owner == "dead-holder"  # still there, expiring
    with batch_lock(store, 60 * SECOND, wait=10 * SECOND) as lock:
        assert store.lease(LEASE).owner == lock.owner  # type: ignore[union-attr]
        waited = dt.datetime.now(dt.UTC) - held.expires_at
        assert waited >= dt.timedelta(0)  # taken over only once it had expired
    assert store.lease(LEASE) is None  # released at the end


def test_a_holder_whose_lease_was_taken_over_stops(store: ServingStore) -> None:
    with batch_lock(store, 0.3 * SECOND) as lock:
        store.release_lease(LEASE, lock.owner)  # as if it had expired unrenewed
        assert store.take_lease(LEASE, "another", 60 * SECOND)
        deadline = time.monotonic() + 5
        while not lock.lost and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(LockLost, match="taken over by another batch"):
            lock.check()
    assert store.lease(LEASE).owner == "another"  # type: ignore[union-attr]  # not released


def test_two_concurrent_batch_runs_one_is_refused(
    store: ServingStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    world = build(tmp_path)
    settings: Settings = world.model_copy(
        update={"serving": world.serving.model_copy(update={"url": url_of(store)})}
    )
    inside, go_on = threading.Event(), threading.Event()
    real_identity = daily.STEPS["identity"]

    def held_identity(*args: object) -> object:
        inside.set()
        assert go_on.wait(60)
        return real_identity(*args)  # type: ignore[arg-type]

    monkeypatch.setitem(daily.STEPS, "identity", held_identity)
    first: list[daily.DayResult] = []
    running = threading.Thread(target=lambda: first.append(daily.run_day(settings, DAY)))
    running.start()
    try:
        assert inside.wait(60)
        for key, value in {
            "C360_SERVING_URL": settings.serving.url,
            "C360_LAKE_URL": settings.lake.url,
            "C360_SOURCES_MYSQL_URL": settings.sources.mysql.url,
            "C360_SOURCES_MAILCHIMP_DIR": settings.sources.mailchimp.dir,
            "C360_SOURCES_ZENDESK_PATH": settings.sources.zendesk.path,
        }.items():
            monkeypatch.setenv(key, value)
        monkeypatch.chdir(tmp_path)
        with pytest.raises(SystemExit) as refused:
            main(["batch", "run", "--date", DAY.isoformat()])
    finally:
        go_on.set()
        running.join()
    assert refused.value.code == 1
    err = capsys.readouterr().err
    assert "error: another batch is running: the batch lock is held by" in err
    assert "wait for it to finish" in err
    assert first[0].status == "succeeded"
    records = store.step_records(DAY)
    assert records["publish"].status == "succeeded"  # the refused run touched nothing
    assert store.lease(LEASE) is None


def test_a_backfill_holds_the_lock_for_its_whole_range(
    store: ServingStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``batch run --from A --to B`` takes the lock once: no other batch slips in between two
    of its days; it is released at the end."""
    world = build(tmp_path)
    settings: Settings = world.model_copy(
        update={"serving": world.serving.model_copy(update={"url": url_of(store)})}
    )
    owners: list[str] = []

    def steps_of_a_day(
        _settings: Settings, on: ServingStore, _lake: object, result: daily.DayResult, *_: object,
        **__: object,
    ) -> None:  # fmt: skip
        held = on.lease(LEASE)
        assert held is not None
        owners.append(held.owner)
        with pytest.raises(BatchLocked), batch_lock(on, dt.timedelta(minutes=1)):
            pass  # another batch, between two days of the backfill
        result.steps.append(daily.StepResult("publish", "succeeded", 0.0, None, None))

    monkeypatch.setattr(daily, "_run_steps", steps_of_a_day)
    results = daily.run_range(settings, DAY, DAY + dt.timedelta(days=2))
    assert [r.status for r in results] == ["succeeded"] * 3
    assert len(owners) == 3 and len(set(owners)) == 1
    assert store.lease(LEASE) is None
