"""Erasure in the event archive: partitions with the lifted ``identifiers`` column are matched
on it (their payloads are not read), partitions archived before it existed by searching their
payloads; both lose exactly the person's rows. And the upgrade that gives old partitions the
column."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pyarrow as pa
import pytest

from c360.contracts.lake import ARCHIVE_LIFTED, ARCHIVE_SCHEMA
from c360.ingest import archive
from c360.lake import Lake
from c360.pipeline.erasure import erase_lake
from c360.privacy import Subject

OLD, NEW = dt.date(2025, 5, 1), dt.date(2025, 5, 2)


def _row(offset: int, day: dt.date, message: dict[str, object]) -> dict[str, object]:
    at = dt.datetime.combine(day, dt.time(10), dt.UTC) + dt.timedelta(minutes=offset)
    message = {"messageId": f"m{offset}", "timestamp": at.isoformat(), **message}
    return {
        "partition": 0,
        "offset": offset,
        "key": message.get("anonymousId"),
        "event_time": at,
        "appended_at": at,
        "type": message["type"],
        "event": message.get("event"),
        "message_id": message["messageId"],
        "anonymous_id": message.get("anonymousId"),
        "user_id": message.get("userId"),
        "payload": orjson.dumps(message).decode(),
    }


def _day(day: dt.date, first: int) -> pa.Table:
    """Alice's page view (her cookie), a message under a shared cookie naming her email, an
    alias from her old cookie, and Bob's page view."""
    messages = [
        {"type": "page", "anonymousId": "c-a"},
        {"type": "track", "event": "Coupon Sent", "anonymousId": "c-shared",
         "properties": {"to": "Alice@X.com"}},
        {"type": "alias", "previousId": "c-a-old", "userId": "77"},
        {"type": "page", "anonymousId": "c-b", "traits": {"email": "bob@y.com"}},
    ]  # fmt: skip
    return pa.Table.from_pylist(
        [_row(first + i, day, m) for i, m in enumerate(messages)], schema=archive.UNLIFTED_SCHEMA
    )


def _alice() -> Subject:
    subject = Subject()
    subject.add_all(
        [("email", "alice@x.com"), ("anonymous_id", "c-a"), ("anonymous_id", "c-a-old")]
    )
    return subject


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    lake = Lake(str(tmp_path / "lake"))
    # Archived before the column existed: written in the old shape.
    lake.write_partition("events", "clickstream", OLD, _day(OLD, 0))
    # Archived now: merge() lifts the column.
    archive.merge(lake, "clickstream", NEW, _day(NEW, 10))
    return lake


def test_old_and_new_archive_partitions_lose_exactly_the_persons_rows(lake: Lake) -> None:
    assert ARCHIVE_LIFTED not in lake.manifest("events", "clickstream", OLD)["schema"]
    new = lake.read_partition("events", "clickstream", NEW)
    assert new.schema == ARCHIVE_SCHEMA
    assert new[ARCHIVE_LIFTED].to_pylist() == [None, ["alice@x.com"], ["c-a-old"], ["bob@y.com"]]

    done = erase_lake(lake, _alice())

    assert done.rows == 6 and done.files == 2
    for day in (OLD, NEW):
        left = lake.read_partition("events", "clickstream", day)
        assert left["anonymous_id"].to_pylist() == ["c-b"], day
        assert "alice" not in str(left.to_pylist()).lower()
    # each keeps its own shape: the old one is rewritten without the column, the new with it
    assert ARCHIVE_LIFTED not in lake.manifest("events", "clickstream", OLD)["schema"]
    assert ARCHIVE_LIFTED in lake.manifest("events", "clickstream", NEW)["schema"]
    assert erase_lake(lake, _alice()).rows == 0


def test_a_partition_with_the_column_is_matched_on_it_and_its_payloads_are_not_read(
    lake: Lake,
) -> None:
    """The column is the contract: a row whose lifted identifiers name her goes even if its
    payload does not, and a payload naming her is not searched once the column exists (at
    ingestion the column is always lifted from that payload, so the two agree)."""
    rows = lake.read_partition("events", "clickstream", NEW)
    lifted = pa.array([["alice@x.com"], None, None, None], pa.list_(pa.string()))
    payloads = pa.array(['{"type":"page"}', '{"to":"alice@x.com"}', "{}", "{}"])
    rows = rows.set_column(rows.schema.get_field_index(ARCHIVE_LIFTED), ARCHIVE_LIFTED, lifted)
    rows = rows.set_column(rows.schema.get_field_index("payload"), "payload", payloads)
    rows = rows.set_column(
        rows.schema.get_field_index("anonymous_id"),
        "anonymous_id",
        pa.array([None] * 4, pa.string()),
    )
    lake.write_partition("events", "clickstream", NEW, rows)

    subject = Subject()
    subject.add("email", "alice@x.com")
    erase_lake(lake, subject)

    left = lake.read_partition("events", "clickstream", NEW)
    assert left["payload"].to_pylist() == ['{"to":"alice@x.com"}', "{}", "{}"]


def test_upgrade_gives_old_partitions_the_column_and_merging_into_one_does_too(
    lake: Lake, tmp_path: Path
) -> None:
    before = lake.read_partition("events", "clickstream", OLD)
    assert archive.upgrade(lake) == {"clickstream": 1, "support": 0}
    upgraded = lake.read_partition("events", "clickstream", OLD)
    assert upgraded.schema == ARCHIVE_SCHEMA
    assert upgraded.drop_columns([ARCHIVE_LIFTED]).equals(before)
    assert upgraded[ARCHIVE_LIFTED].to_pylist() == [
        None,
        ["alice@x.com"],
        ["c-a-old"],
        ["bob@y.com"],
    ]
    assert archive.upgrade(lake) == {"clickstream": 0, "support": 0}

    other = Lake(str(tmp_path / "other"))
    other.write_partition("events", "clickstream", OLD, _day(OLD, 0))
    late = _day(OLD, 100).slice(0, 1)
    assert archive.merge(other, "clickstream", OLD, late) == 1
    merged = other.read_partition("events", "clickstream", OLD)
    assert merged.num_rows == 5 and merged.schema == ARCHIVE_SCHEMA
    assert merged[ARCHIVE_LIFTED].to_pylist()[1] == ["alice@x.com"]


def test_the_upgrade_command_runs_under_the_batch_lock(
    lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from c360.cli.main import cli
    from c360.pipeline.batch_lock import BatchLocked, batch_lock
    from c360.stores import open_store

    monkeypatch.chdir(tmp_path)  # no stray ./c360.toml
    env = {
        "C360_CONFIG": None,
        "C360_LAKE_URL": lake.root,
        "C360_SERVING_URL": f"sqlite:///{tmp_path}/serving.db",
    }
    store = open_store(f"sqlite:///{tmp_path}/serving.db")
    store.migrate()
    try:
        with batch_lock(store, dt.timedelta(minutes=5), owner="host:1:batch"):
            held = CliRunner().invoke(cli, ["ingest", "upgrade-archive"], env=env)
        assert isinstance(held.exception, BatchLocked) and "host:1:batch" in str(held.exception)
        assert ARCHIVE_LIFTED not in lake.manifest("events", "clickstream", OLD)["schema"]
        ran = CliRunner().invoke(cli, ["ingest", "upgrade-archive", "--json"], env=env)
    finally:
        store.dispose()
    assert ran.exit_code == 0, ran.output
    assert orjson.loads(ran.stdout) == {"upgraded": {"clickstream": 1, "support": 0}}
    assert ARCHIVE_LIFTED in lake.manifest("events", "clickstream", OLD)["schema"]
