"""`c360 batch`: the daily batch layer."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict

import click

from c360.cli.main import AppContext, pass_app


@click.group("batch")
def command() -> None:
    """Recompute profiles from the lake and publish them."""


@command.command("run")
@click.option(
    "--date",
    "day",
    required=True,
    type=click.DateTime(["%Y-%m-%d"]),
    help="Batch date D; facts before the end of D (UTC) are covered.",
)
@click.option("--skip-ingest", is_flag=True, help="Use what is already in the lake.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def run(app: AppContext, day: dt.datetime, skip_ingest: bool, as_json: bool) -> None:
    """Ingest, resolve identities, compute features and publish for one date."""
    from c360.batch.pipeline import run_batch

    result = run_batch(app.config().settings, day.date(), run_ingest=not skip_ingest)
    if as_json:
        click.echo(json.dumps(asdict(result), default=str))
        return
    for report in result.ingested:
        click.echo(
            f"ingested {report.source}.{report.table}: {report.rows} rows"
            f" in {report.partitions} partition(s), {report.quarantined} quarantined"
        )
    click.echo(
        f"published batch {result.batch_date}: {result.persons} persons,"
        f" {result.identifiers} identifiers in {result.seconds:.1f}s"
    )
