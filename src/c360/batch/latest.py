"""Latest versions of incrementally extracted rows, as SQL steps.

Incremental extracts and re-read windows overlap, so the lake holds several versions of a row
(one per partition that saw it); every reader keeps each key's latest version. The lake reads
that feed these steps (``<name>_versions``) are in :mod:`c360.pipeline.lake_inputs`.
"""

from __future__ import annotations

import pyarrow as pa

from c360.contracts.compute import SqlStep
from c360.contracts.lake import MAILCHIMP_ACTIVITY_SCHEMA, ORDER_ITEMS_SCHEMA, ORDERS_SCHEMA


def latest_versions(
    name: str, schema: pa.Schema, key: tuple[str, ...], newest: tuple[str, ...]
) -> SqlStep:
    """Keep each key's last version of ``<name>_versions`` as ``name``."""
    columns = ", ".join(schema.names)
    order = ", ".join(f"{column} DESC" for column in newest)
    return SqlStep(
        name,
        f"""
        SELECT {columns} FROM (
            SELECT *, row_number() OVER (PARTITION BY {", ".join(key)} ORDER BY {order})
                AS version_rank
            FROM {name}_versions
        ) WHERE version_rank = 1
        """,
    )


def _orders_as_of_cutoff() -> SqlStep:
    """Each order's status as of the cutoff: its latest version changed before the cutoff; an
    order whose every known version changed after it had not reached a terminal status
    (cancelled, refunded) by then, so it reads as ``placed`` (shipped and delivered count the
    same everywhere). The daily batch sees the same rows as before whenever the lake holds no
    change from after its cutoff; a training snapshot at T does not see a later refund."""
    columns = ", ".join(
        "CASE WHEN updated_at < {cutoff} THEN status ELSE 'placed' END AS status"
        if name == "status"
        else name
        for name in ORDERS_SCHEMA.names
    )
    return SqlStep(
        "orders",
        f"""
        SELECT {columns} FROM (
            SELECT *, row_number() OVER (
                PARTITION BY order_id
                ORDER BY updated_at < {{cutoff}} DESC, updated_at DESC, dt DESC) AS version_rank
            FROM orders_versions
        ) WHERE version_rank = 1
        """,
    )


LATEST_ORDERS = _orders_as_of_cutoff()
LATEST_ORDER_ITEMS = latest_versions(
    "order_items", ORDER_ITEMS_SCHEMA, ("order_item_id",), ("updated_at", "dt")
)
LATEST_EMAIL_ACTIVITY = latest_versions(
    "mailchimp_email_activity", MAILCHIMP_ACTIVITY_SCHEMA, ("campaign_id", "email_id"), ("dt",)
)
