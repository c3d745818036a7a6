"""`c360 ingest`: the sources into the lake's raw zone for one date."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict
from pathlib import Path

import click

from c360.cli.main import AppContext, pass_app
from c360.ingest.report import TableReport


@click.group("ingest")
def command() -> None:
    """Extract the sources into the data lake (atomic, idempotent per date)."""


def _print(reports: list[TableReport], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"tables": [asdict(r) for r in reports]}))
        return
    for r in reports:
        extra = f", new columns {', '.join(r.added_columns)}" if r.added_columns else ""
        click.echo(
            f"{r.source}.{r.table}: {r.rows} rows, {r.bytes} bytes, {r.partitions} partition(s), "
            f"{r.quarantined} quarantined in {r.seconds:.2f}s{extra}"
        )


def _source_command(source: str, help_text: str) -> click.Command:
    @click.command(source, help=help_text)
    @click.option(
        "--date",
        "day",
        required=True,
        type=click.DateTime(["%Y-%m-%d"]),
        help="Run date D: facts before the end of D (UTC).",
    )
    @click.option(
        "--json", "as_json", is_flag=True, help="Per-table rows, bytes, seconds, quarantined."
    )
    @pass_app
    def run(app: AppContext, day: dt.datetime, as_json: bool) -> None:
        from c360.ingest.run import enabled_sources, ingest

        settings = app.config().settings
        sources = enabled_sources(settings) if source == "all" else (source,)
        _print(ingest(settings, day.date(), sources), as_json)

    return run


for _name, _help in (
    ("mysql", "The orders DB: dimension snapshots, incremental orders and items."),
    ("mailchimp", "Mailchimp audience members and campaign email activity."),
    ("zendesk", "Zendesk ticket events, by event date."),
    ("archive", "The event log's new records (clickstream, support), by event date."),
    ("all", "Every source."),
):
    command.add_command(_source_command(_name, _help))


@command.command("backfill")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--topic",
    type=click.Choice(["clickstream", "support"]),
    default="clickstream",
    show_default=True,
    help="Archive the file's events as this topic's.",
)
@click.option(
    "--date",
    "day",
    required=True,
    type=click.DateTime(["%Y-%m-%d"]),
    help="Run date (where the quarantine of unreadable lines goes).",
)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def backfill(app: AppContext, path: Path, topic: str, day: dt.datetime, as_json: bool) -> None:
    """Archive a JSON-lines event file (history that never went through the log)."""
    from c360.ingest.backfill import backfill_file
    from c360.lake import Lake

    report = backfill_file(Lake(app.config().settings.lake.url), path, topic, day.date())
    _print([report], as_json)


@command.command("upgrade-archive")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def upgrade_archive(app: AppContext, as_json: bool) -> None:
    """Give event-archive partitions written before the lifted `identifiers` column existed
    that column (each rewritten atomically), so erasure reads it instead of their payloads.
    Holds the batch lock: no archive runs meanwhile."""
    from c360.ingest.archive import upgrade
    from c360.lake import Lake
    from c360.pipeline.batch_lock import batch_lock
    from c360.pipeline.daily import lock_ttl

    settings = app.config().settings
    with app.store() as store, batch_lock(store, lock_ttl(settings)):
        done = upgrade(Lake(settings.lake.url))
    if as_json:
        click.echo(json.dumps({"upgraded": done}))
        return
    for topic, partitions in done.items():
        click.echo(f"events.{topic}: {partitions} partition(s) upgraded")
