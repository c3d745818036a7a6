"""`c360 identity`: run, explain and evaluate identity resolution."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from c360.cli.main import AppContext, pass_app

DATE = click.DateTime(["%Y-%m-%d"])


@click.group("identity")
def command() -> None:
    """Stitch records from every source into persons, and show why."""


def _day(app: AppContext, day: dt.datetime | None) -> dt.date:
    from c360.lake import Lake
    from c360.pipeline.identity import latest_day

    found = latest_day(Lake(app.config().settings.lake.url), day.date() if day else None)
    if found is None:
        on = f" on or before {day.date()}" if day else ""
        raise click.ClickException(
            f"no identity run{on} in the lake; run `c360 identity run --date D` "
            "(or `c360 batch run --date D`) first"
        )
    return found


@command.command("run")
@click.option("--date", "day", type=DATE, required=True, help="Resolve identities as of D.")
@click.option("--json", "as_json", is_flag=True, help="The run report as JSON.")
@pass_app
def run(app: AppContext, day: dt.datetime, as_json: bool) -> None:
    """Run the identity step for D on the lake (the batch pipeline's identity step)."""
    from c360.lake import Lake
    from c360.pipeline.identity import resolve

    settings = app.config().settings
    report = resolve(settings, Lake(settings.lake.url), day.date())
    if as_json:
        click.echo(json.dumps(report.as_dict(), default=str))
        return
    click.echo(f"identity {report.day}: {report.detail()}")
    click.echo("  seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in report.seconds.items()))


@command.command("explain")
@click.argument("person_id")
@click.option("--date", "day", type=DATE, help="As of this run (default: the latest).")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def explain(app: AppContext, person_id: str, day: dt.datetime | None, as_json: bool) -> None:
    """Why a person's records were joined: links, weights, guards, history."""
    from c360.lake import Lake
    from c360.pipeline.identity_explain import explain as explain_person

    lake = Lake(app.config().settings.lake.url)
    explanation = explain_person(lake, person_id, _day(app, day))
    if as_json:
        click.echo(json.dumps(explanation.as_dict(), default=str))
        return
    click.echo(explanation.text())


@command.command("eval")
@click.option("--date", "day", type=DATE, help="Score this run (default: the latest).")
@click.option(
    "--truth",
    "truth_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Ground-truth folder (default: simulator.truth_dir).",
)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def evaluate(
    app: AppContext, day: dt.datetime | None, truth_dir: Path | None, as_json: bool
) -> None:
    """Score the identity map against the simulator's ground truth (pairwise P/R/F1)."""
    from c360.contracts.identity import SOURCE, ZONE
    from c360.engines import open_compute
    from c360.identity.evaluate import evaluate as score
    from c360.lake import Lake

    settings = app.config().settings
    lake = Lake(settings.lake.url)
    run_day = _day(app, day)
    assignment = lake.read_partition(SOURCE, "assignment", run_day, ZONE)
    scores = score(
        open_compute(settings.compute), assignment, truth_dir or Path(settings.simulator.truth_dir)
    )
    if as_json:
        click.echo(json.dumps({"day": run_day.isoformat(), **scores.as_dict()}, default=str))
        return
    click.echo(
        f"identity {run_day}: precision {scores.precision:.4f}, recall {scores.recall:.4f}, "
        f"F1 {scores.f1:.4f} over {scores.records} records "
        f"({scores.predicted_persons} persons found, {scores.true_persons} true)"
    )
    for kind in scores.by_type:
        click.echo(
            f"  {kind.record_type:<20} {kind.records:>9} records, "
            f"{kind.wrongly_merged} wrongly merged, {kind.split_off} split off"
        )
