"""`c360 batch`: the daily batch layer."""

from __future__ import annotations

import datetime as dt
import json

import click

from c360.cli.main import AppContext, pass_app

DATE = click.DateTime(["%Y-%m-%d"])


@click.group("batch")
def command() -> None:
    """Recompute profiles from the lake and publish them."""


def _echo_day(result: object, as_json: bool) -> None:
    from c360.pipeline.daily import DayResult

    assert isinstance(result, DayResult)
    if as_json:
        click.echo(json.dumps(result.as_dict(), default=str))
        return
    click.echo(f"batch {result.batch_date}: {result.status}")
    for step in result.steps:
        rows = "" if step.rows is None else f", {step.rows} rows"
        detail = f" — {step.detail}" if step.detail else ""
        click.echo(f"  {step.step:<9} {step.status:<11} {step.seconds:6.2f}s{rows}{detail}")


@command.command("run")
@click.option("--date", "day", type=DATE, help="Batch date D: facts before the end of D (UTC).")
@click.option("--from", "first", type=DATE, help="Backfill from this date (with --to).")
@click.option("--to", "last", type=DATE, help="Backfill up to this date, inclusive.")
@click.option("--force", is_flag=True, help="Re-run steps that already succeeded.")
@click.option("--skip-ingest", is_flag=True, help="Use what is already in the lake.")
@click.option("--json", "as_json", is_flag=True, help="Per-step status, seconds and rows.")
@pass_app
def run(
    app: AppContext,
    day: dt.datetime | None,
    first: dt.datetime | None,
    last: dt.datetime | None,
    force: bool,
    skip_ingest: bool,
    as_json: bool,
) -> None:
    """Ingest → identity → features → score → quality → publish → segments, for a date or range.

    Refused while another batch runs (the batch lock)."""
    from c360.pipeline.daily import run_range

    if day is not None and (first or last):
        raise click.UsageError("give --date or --from/--to, not both")
    if day is None and not (first and last):
        raise click.UsageError("give --date D, or --from A --to B")
    start, end = (day, day) if day else (first, last)
    assert start is not None and end is not None
    skip = ("ingest",) if skip_ingest else ()
    results = run_range(app.config().settings, start.date(), end.date(), force=force, skip=skip)
    for result in results:
        _echo_day(result, as_json)
    if results and results[-1].status == "failed":
        raise SystemExit(1)


@command.command("status")
@click.option("--date", "day", type=DATE, help="One date (default: the latest runs).")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def status(app: AppContext, day: dt.datetime | None, as_json: bool) -> None:
    """The run log: each step's status, duration, rows and failure reason."""
    from c360.stores import open_store

    store = open_store(app.config().settings.serving.url)
    try:
        store.migrate()
        dates = [day.date().isoformat()] if day else store.run_dates()
        report = {
            d: [r.__dict__ for r in store.step_records(dt.date.fromisoformat(d)).values()]
            for d in dates
        }
    finally:
        store.dispose()
    if as_json:
        click.echo(json.dumps(report, default=str))
        return
    if not report:
        click.echo("no batch has run yet")
    for d, records in report.items():
        click.echo(d)
        for r in records:
            detail = f" — {r['detail']}" if r["detail"] else ""
            click.echo(f"  {r['step']:<9} {r['status']:<10}{detail}")


def _daily_time(ctx: click.Context, param: click.Parameter, value: str) -> dt.time:
    from c360.pipeline.daily import parse_daily_time

    try:
        return parse_daily_time(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@command.command("schedule")
@click.option(
    "--at",
    "at",
    default="02:00",
    show_default=True,
    callback=_daily_time,
    help="Daily run time, HH:MM UTC.",
)
@pass_app
def schedule(app: AppContext, at: dt.time) -> None:
    """Run yesterday's batch every day at a fixed UTC time, until Ctrl-C (or use cron).

    A failed day (a step failed, another batch holds the batch lock, the store unreachable)
    is logged and tried again with exponential backoff, resuming at the failed step, up to
    batch.retries times; then the schedule waits for the next date. A configuration error
    ends it.
    """
    from c360.pipeline.daily import run_schedule

    def announce(due: dt.datetime) -> None:
        click.echo(f"next batch at {due.isoformat()}")

    run_schedule(
        app.config().settings,
        at,
        on_wait=announce,
        on_result=lambda result: _echo_day(result, as_json=False),
    )
