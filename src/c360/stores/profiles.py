"""Reading unified profiles by key: the serving layer's lookups behind the API."""

from __future__ import annotations

import datetime as dt
from typing import Any

from c360.contracts import serving
from c360.stores.base import ServingStore
from c360.stores.views import REALTIME_FOR_PERSON


def find_person(store: ServingStore, id_type: str, id_value: str) -> str | None:
    rows = store.query(
        "SELECT person_id FROM identity_map WHERE id_type = :t AND id_value = :v",
        {"t": id_type, "v": id_value},
    )
    return str(rows[0]["person_id"]) if rows else None


def get_profile(
    store: ServingStore, person_id: str, now: dt.datetime | None = None
) -> dict[str, Any] | None:
    """The joined profile of one person, or None when the person is unknown."""
    person = store.query("SELECT * FROM person WHERE person_id = :p", {"p": person_id})
    if not person:
        return None
    batch = store.query(
        f"SELECT * FROM {serving.BATCH_PROFILE} WHERE person_id = :p", {"p": person_id}
    )
    realtime = store.query(REALTIME_FOR_PERSON, {"person_id": person_id})
    identifiers = store.query(
        "SELECT id_type, id_value FROM identity_map WHERE person_id = :p "
        "ORDER BY id_type, id_value",
        {"p": person_id},
    )
    live = dict(realtime[0]) if realtime else {}
    live.pop("person_id", None)
    last = live.get("last_event_at")
    if isinstance(last, str):
        last = dt.datetime.fromisoformat(last)
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    live["time_since_last_event_seconds"] = (now - last).total_seconds() if last else None
    features = dict(batch[0]) if batch else {}
    features.pop("person_id", None)
    return {
        "person_id": person_id,
        "person": {k: v for k, v in person[0].items() if k != "person_id"},
        "identifiers": identifiers,
        "batch": features,
        "realtime": live,
    }
