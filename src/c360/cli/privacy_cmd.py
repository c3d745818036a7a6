"""`c360 retention` (raw events past their period leave the lake and the log) and `c360 audit`
(who read whose profile)."""

from __future__ import annotations

import datetime as dt
import json

import click

from c360.cli.main import AppContext, pass_app

DATE = click.DateTime(["%Y-%m-%d"])


@click.command("retention")
@click.option("--date", "day", type=DATE, required=True, help="The batch date to count back from.")
@click.option("--dry-run", is_flag=True, help="List what would go; remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def command(app: AppContext, day: dt.datetime, dry_run: bool, as_json: bool) -> None:
    """Remove raw event partitions and event log records older than retention.* (the daily
    batch's last step, run alone; recorded in the run log unless --dry-run)."""
    from c360.lake import Lake
    from c360.pipeline.daily import RunLog
    from c360.pipeline.retention import enforce

    settings = app.config().settings
    lake = Lake(settings.lake.url)
    if dry_run:
        report = enforce(settings, lake, day.date(), dry_run=True)
    else:
        with app.store() as store:
            run_log = RunLog(store)
            started = run_log.start(day.date(), "retention")
            try:
                report = enforce(settings, lake, day.date())
            except Exception as exc:
                run_log.finish(day.date(), "retention", started, "failed", detail=str(exc))
                raise
            removed = len(report.partitions) + report.log_records
            run_log.finish(day.date(), "retention", started, "succeeded", removed, report.detail())
    if as_json:
        click.echo(json.dumps({**report.as_dict(), "dry_run": dry_run}))
        return
    click.echo(("would remove: " if dry_run else "") + report.detail())
    for partition in report.partitions:
        click.echo(f"  {partition}")


@click.command("audit")
@click.option("--person", "person_id", help="Reads of this person id.")
@click.option("--key", "key_id", help="Reads by this API key id.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@pass_app
def audit(
    app: AppContext, person_id: str | None, key_id: str | None, limit: int, as_json: bool
) -> None:
    """Recorded profile and timeline reads, newest first: who (key id), when, whom, how."""
    with app.store() as store:
        reads = store.audited_reads(person_id, key_id, limit)
    if as_json:
        click.echo(json.dumps([r.public() for r in reads]))
        return
    for r in reads:
        click.echo(f"{r.read_at.isoformat()}Z  {r.key_id}  {r.person_id}  {r.route}")
