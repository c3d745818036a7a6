"""The serving store's schema history (Alembic), on every store.

- a fresh store migrates to exactly the tables :mod:`c360.contracts.serving` declares, so a
  change to the contract without its migration fails here;
- a store the 0.1.0 release wrote (``release_stores/``: real dumps, before the schema was
  versioned) is upgraded in place: its rows survive, it ends at the newest revision with the
  contract's schema, and it serves and takes new writes;
- an unversioned store an older build wrote gains the columns it lacks, or is refused with the
  reason when a column cannot be added to existing rows;
- several processes migrating one store at once take turns.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from c360.contracts import serving
from c360.contracts.log import TopicPartition
from c360.errors import DataError
from c360.stores import MicroBatch, ServingStore, migrations, open_store

RELEASE_STORES = Path(__file__).parent / "release_stores"
HEAD = ScriptDirectory(str(migrations.HERE)).get_current_head()


def _only_contract_tables(name: str | None, type_: str, _parent: Any) -> bool:
    """batch_profile's columns follow the published features, not the contract."""
    return not (type_ == "table" and name == serving.BATCH_PROFILE)


def schema_drift(conn: Connection) -> list[Any]:
    """What separates the store's schema from the contract (Alembic's autogenerate diff)."""
    context = MigrationContext.configure(
        conn, opts={"compare_type": True, "include_name": _only_contract_tables}
    )
    return list(compare_metadata(context, serving.metadata))


def assert_at_head_with_the_contract(store: ServingStore) -> None:
    with store.engine.connect() as conn:
        assert migrations.current(conn) == HEAD
        assert schema_drift(conn) == []


def test_a_fresh_store_migrates_to_the_contract(store: ServingStore) -> None:
    assert HEAD is not None
    assert_at_head_with_the_contract(store)
    store.migrate()  # again: nothing to do
    assert_at_head_with_the_contract(store)


def test_stores_migrating_at_once_take_turns(store: ServingStore) -> None:
    with store.engine.begin() as conn:  # back to an empty database
        for table in reversed(serving.metadata.sorted_tables):
            conn.execute(text(f"DROP TABLE {table.name}"))
        conn.execute(text(f"DROP TABLE {serving.BATCH_PROFILE}"))
        conn.execute(text("DROP TABLE alembic_version"))
    errors: list[BaseException] = []

    def migrate() -> None:
        other = open_store(store.engine.url.render_as_string(hide_password=False))
        try:
            other.migrate()
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            other.dispose()

    threads = [threading.Thread(target=migrate) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert_at_head_with_the_contract(store)


def load_release_store(store: ServingStore, tmp_path: Path) -> ServingStore:
    """An empty database of ``store``'s kind holding the 0.1.0 dump (not migrated)."""
    dump = (RELEASE_STORES / f"serving-0.1.0.{store.dialect.name}.sql").read_text()
    if store.dialect.name == "sqlite":
        path = tmp_path / "release.db"
        with sqlite3.connect(path) as conn:
            conn.executescript(dump)
        return open_store(f"sqlite:///{path}")
    url = store.engine.url.render_as_string(hide_password=False)
    with store.engine.begin() as conn:  # the fixture's database, emptied
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    store.dispose()
    with store.engine.begin() as conn:
        conn.exec_driver_sql(dump)
    return open_store(url)


def counts(store: ServingStore, tables: Iterable[str]) -> dict[str, int]:
    return {t: store.query(f"SELECT count(*) AS n FROM {t}")[0]["n"] for t in tables}


RELEASE_COUNTS = {
    "identity_map": 18,
    "person": 5,
    "person_redirect": 0,
    "identity_stitch": 2,
    "realtime_state": 3,
    "realtime_support": 1,
    "realtime_order": 1,
    "stream_offsets": 3,
    "dead_letter": 1,
    "batch_publish": 1,
    "batch_run": 6,
    serving.BATCH_PROFILE: 5,
}


def test_a_store_the_release_wrote_is_upgraded_in_place(
    store: ServingStore, tmp_path: Path
) -> None:
    released = load_release_store(store, tmp_path)
    try:
        with released.engine.connect() as conn:
            assert migrations.current(conn) is None  # written before versioning
        assert counts(released, RELEASE_COUNTS) == RELEASE_COUNTS
        before = released.query("SELECT * FROM realtime_state ORDER BY id_value")
        released.migrate()
        assert_at_head_with_the_contract(released)
        assert counts(released, RELEASE_COUNTS) == RELEASE_COUNTS
        assert counts(released, ["api_key"]) == {"api_key": 0}  # added since 0.1.0
        after = released.query("SELECT * FROM realtime_state ORDER BY id_value")
        assert [{column: row[column] for column in before[0]} for row in after] == before
        added = {column for row in after for column in row} - set(before[0])
        # 0004: empty until the speed layer writes the row; 0006: resolved by the migration
        assert added == {"recent_sessions", "person_id"}
        assert all(row["recent_sessions"] is None for row in after)
        # It serves: the release's published batch with its real-time state and order.
        published = released.latest_publish()
        assert published is not None and published["batch_date"] == "2025-03-02"
        person = released.find_person("anonymous_id", "cookie-new")
        assert person is not None
        owners = {row["id_value"]: row["person_id"] for row in after}
        assert owners == {"c-a": person, "c-z": None, "cookie-new": person}  # c-z: no identity
        profile = released.profile(person)
        assert profile is not None and profile["realtime"]["orders_since_cutoff"] == 1
        # And takes new writes: a micro-batch continuing its stream, then a batch publish.
        offsets = released.offsets("speed", "clickstream")
        (partition, position), *_ = sorted(offsets.items())
        tp = TopicPartition("clickstream", partition)
        moves = {tp: (position, position + 1)}
        released.commit_micro_batch("speed", released.prepare_micro_batch(MicroBatch(moves)))
        assert released.offsets("speed", "clickstream")[partition] == position + 1
        released.publish_batch(
            dt.date(2025, 3, 3),
            {
                "person": pa.table({"person_id": ["p_x"]}),
                "identity_map": pa.table(
                    {"id_type": ["email"], "id_value": ["x@y.z"], "person_id": ["p_x"]}
                ),
                "batch_profile": pa.table({"person_id": ["p_x"], "churn_risk": [0.2]}),
            },
        )
        assert released.query("SELECT person_id, churn_risk FROM profile") == [
            {"person_id": "p_x", "churn_risk": 0.2}
        ]
    finally:
        released.dispose()


def as_released(store: ServingStore) -> None:
    """Back to what 0.1.0 left: the baseline's schema (later migrations undone), no version."""
    with store.engine.begin() as conn:
        command.downgrade(migrations.config(conn), migrations.BASELINE)
        conn.execute(text("DROP TABLE alembic_version"))


def test_an_unversioned_store_gains_the_columns_it_lacks(store: ServingStore) -> None:
    """A store an older build created (no version, columns missing) gains them with their
    server defaults; one that cannot be added to existing rows is refused with the reason."""
    as_released(store)
    with store.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO realtime_state (id_type, id_value, current_session_page_views, "
                 "events_total) VALUES ('anonymous_id', 'a1', 2, 5)")
        )  # fmt: skip
        conn.execute(text("ALTER TABLE realtime_state DROP COLUMN user_id_at"))
        conn.execute(text("ALTER TABLE realtime_state DROP COLUMN cart_items"))
    store.migrate()
    with store.engine.connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("realtime_state")}
        row = conn.execute(text("SELECT cart_items, user_id_at FROM realtime_state")).one()
    assert {"user_id_at", "cart_items"} <= columns
    assert (row.cart_items, row.user_id_at) == (0, None)
    assert_at_head_with_the_contract(store)
    as_released(store)
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE realtime_state DROP COLUMN events_total"))
    with pytest.raises(DataError, match="lacks column events_total, which cannot be added"):
        store.migrate()
