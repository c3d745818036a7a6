"""Identifiers several persons share (a family mailbox, a household phone), from identity's lake
table into the serving store and out of the lake again: the publish step carries the day's
``identity/ambiguous`` into ``ambiguous_identifier`` — a day computed before identity wrote it
leaves the stored rows — and erasing the identifier rewrites those lake partitions too. The
store's side (reads, replacement, erasure) is in ``tests/conformance/test_serving_store.py``,
the API's 409 in ``test_api_profiles.py``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa

from c360.config import Settings
from c360.contracts.identity import AMBIGUOUS, IDENTITY_MAP, REDIRECTS
from c360.lake import Lake
from c360.pipeline.erasure import erase_lake
from c360.pipeline.steps import ZONE, run_publish
from c360.privacy import Subject
from c360.stores import Ambiguous, ServingStore

D1, D2 = dt.date(2025, 6, 1), dt.date(2025, 6, 2)
SHARED = [("email", "family@x.com", 2), ("phone", "+442071838750", 3)]


def ambiguous(rows: list[tuple[str, str, int]]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"id_type": t, "id_value": v, "persons": n} for t, v, n in rows], schema=AMBIGUOUS
    )


def computed(lake: Lake, day: dt.date, shared: list[tuple[str, str, int]] | None) -> None:
    """What the identity and features steps leave in the lake for ``day``; ``shared`` None: a
    day computed before identity wrote its ``ambiguous`` table."""
    identity_map = [{"id_type": "email", "id_value": "ann@x.com", "person_id": "p_1"}]
    lake.write_partition(
        "identity", "identity_map", day, pa.Table.from_pylist(identity_map, IDENTITY_MAP), zone=ZONE
    )
    lake.write_partition("identity", "person_redirect", day, REDIRECTS.empty_table(), zone=ZONE)
    lake.write_partition("profile", "person", day, pa.table({"person_id": ["p_1"]}), zone=ZONE)
    profile = pa.table({"person_id": ["p_1"], "total_lifetime_spend": [1.0]})
    lake.write_partition("profile", "batch_profile", day, profile, zone=ZONE)
    if shared is not None:
        lake.write_partition("identity", "ambiguous", day, ambiguous(shared), zone=ZONE)


def test_the_publish_step_carries_identitys_shared_identifiers(
    store: ServingStore, tmp_path: Path
) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    settings = Settings.model_validate(
        {"serving": {"url": url}, "lake": {"url": str(tmp_path / "lake")}}
    )
    lake = Lake(settings.lake.url)
    computed(lake, D1, SHARED)
    assert run_publish(settings, lake, D1).status == "succeeded"
    assert store.profile_by_identifier("email", "family@x.com") == Ambiguous("email", 2)
    assert store.profile_by_identifier("phone", "+442071838750") == Ambiguous("phone", 3)
    computed(lake, D2, None)  # older than the list: the stored rows stay
    run_publish(settings, lake, D2)
    assert store.profile_by_identifier("email", "family@x.com") == Ambiguous("email", 2)


def test_erasing_a_shared_identifier_rewrites_identitys_lake_partitions(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    for day in (D1, D2):
        lake.write_partition("identity", "ambiguous", day, ambiguous(SHARED), zone=ZONE)
    subject = Subject()
    subject.add("email", "family@x.com")
    erased = erase_lake(lake, subject, threads=1)
    assert sorted(erased.partitions) == [
        f"{ZONE}/identity/ambiguous/dt={day.isoformat()}" for day in (D1, D2)
    ]
    for day in (D1, D2):
        left = lake.read_partition("identity", "ambiguous", day, ZONE)
        assert left.to_pylist() == [{"id_type": "phone", "id_value": "+442071838750", "persons": 3}]
