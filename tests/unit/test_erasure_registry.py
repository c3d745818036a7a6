"""The registry of personal serving tables cannot miss a table (c360.stores.erasure)."""

from __future__ import annotations

from c360.contracts import serving
from c360.stores.erasure import NOT_PERSONAL, PERSONAL_TABLES

# Column names that hold a person id or one of their identifiers (or a payload that may).
PERSONAL_COLUMNS = {
    "person_id",
    "retired_id",
    "batch_person_id",
    "customer_id",
    "user_id",
    "anonymous_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "id_value",
    "payload",
    "order_id",
}


def test_every_serving_table_is_registered_or_declared_free_of_personal_data() -> None:
    registered = {t.table for t in PERSONAL_TABLES}
    for table in serving.metadata.tables.values():
        assert table.name in registered or table.name in NOT_PERSONAL, (
            f"serving table {table.name!r} is in neither c360.stores.erasure.PERSONAL_TABLES "
            "nor NOT_PERSONAL: say how erasure finds a person's rows in it"
        )


def test_a_table_with_personal_columns_is_in_the_registry() -> None:
    registered = {t.table for t in PERSONAL_TABLES}
    for table in serving.metadata.tables.values():
        personal = PERSONAL_COLUMNS & set(table.c.keys())
        if personal:
            assert table.name in registered, (
                f"serving table {table.name!r} has {sorted(personal)}: register it in "
                "c360.stores.erasure.PERSONAL_TABLES"
            )


def test_each_entry_names_columns_its_table_has() -> None:
    for spec in PERSONAL_TABLES:
        if spec.table == serving.BATCH_PROFILE:  # columns follow the publish; person_id stays
            continue
        table = serving.metadata.tables[spec.table]
        named = [*spec.columns, *(spec.pair or ()), *spec.documents]
        named += [spec.via[0]] if spec.via else []
        assert named, f"{spec.table}: no way to match a person's rows"
        missing = [name for name in named if name not in table.c]
        assert not missing, f"{spec.table}: no column {missing}"
