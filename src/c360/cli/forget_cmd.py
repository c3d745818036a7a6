"""`c360 forget`: erase a person everywhere, with a receipt (issue 18).

Exactly one of ``--email``, ``--person`` or ``--customer-id`` names them; erasure resolves all
their identifiers through identity (:mod:`c360.pipeline.erasure`). ``--json`` prints the
receipt (hashes and counts, never a value); without it, a summary. ``c360 forget --receipts``
lists the receipts kept. Erasure holds the batch lock: it waits up to ``--wait`` seconds for a
running daily batch, then exits 1 naming the holder.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from c360.cli.main import AppContext, pass_app


def _summary(receipt: dict[str, Any]) -> str:
    stores = receipt["stores"]
    serving = stores["serving"]
    lake = stores["lake"]
    log = stores["log"]["topics"]
    logged = sum(t["records"] for t in log)
    pending = [t["topic"] for t in log if t["pending"]]
    lines = [
        f"erasure {receipt['erasure_id']} at {receipt['erased_at']}",
        f"  identifiers erased and suppressed: {len(receipt['identifiers'])}",
        f"  serving store: {serving['rows']} rows in {len(serving['tables'])} tables",
        f"  lake: {lake['rows']} rows, {lake['files']} files rewritten",
        f"  event log: {logged} records"
        + (f" (tombstoned, removal pending on {', '.join(pending)})" if pending else ""),
    ]
    return "\n".join(lines)


@click.command("forget")
@click.option("--email", default=None, help="The person's email (any of their addresses).")
@click.option("--person", "person_id", default=None, help="The person id (a retired one too).")
@click.option("--customer-id", default=None, help="The shop's customer id.")
@click.option("--receipts", is_flag=True, help="List the receipts kept instead.")
@click.option("--json", "as_json", is_flag=True, help="Print the receipt as JSON.")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=1800.0,
    show_default=True,
    help="Seconds to wait for a running daily batch (erasure holds the batch lock).",
)
@pass_app
def command(
    app: AppContext,
    email: str | None,
    person_id: str | None,
    customer_id: str | None,
    receipts: bool,
    as_json: bool,
    wait: float,
) -> None:
    """Erase a person everywhere (serving store, lake, event log) and suppress their
    identifiers; prints the receipt."""
    from c360.pipeline.erasure import forget

    given = [(t, v) for t, v in (("email", email), ("person_id", person_id),
                                 ("customer_id", customer_id)) if v]  # fmt: skip
    if receipts:
        with app.store() as store:
            click.echo(json.dumps(store.erasure_receipts(), indent=2 if not as_json else None))
        return
    if len(given) != 1:
        raise click.UsageError(
            "name the person with exactly one of --email, --person, --customer-id"
        )
    id_type, value = given[0]
    if not value.strip():
        raise click.UsageError(f"the {id_type} to forget is empty")
    settings = app.config().settings
    with app.store() as store:
        receipt = forget(
            settings,
            store,
            id_type,
            value,
            requested_by="cli",
            lock_wait=dt.timedelta(seconds=wait),
        )
    click.echo(json.dumps(receipt) if as_json else _summary(receipt))
