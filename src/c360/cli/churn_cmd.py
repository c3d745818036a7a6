"""`c360 train churn` and `c360 score`: the churn model's training report and scoring."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from c360.cli.main import AppContext, pass_app

DATE = click.DateTime(["%Y-%m-%d"])


@click.group("train")
def command() -> None:
    """Train predictive models on the lake's history."""


def _table(report: dict[str, Any]) -> str:
    lines = [
        f"churn model {report['model_version']}: horizon {report['horizon_days']} days, "
        f"trained on {', '.join(report['train_snapshots'])}, tested on {report['test_snapshot']}",
        f"rows: {report['rows']['train']} train, {report['rows']['test']} test; churn rate "
        f"{report['churn_rate']['test']:.1%} at the test snapshot; leak check: "
        + (", ".join(report["leak_checked"]) or "off"),
        "",
        f"{'model':<26} {'roc_auc':>8} {'pr_auc':>8} {'brier':>8} {'lift@10%':>9}",
    ]
    for name, m in report["models"].items():
        lines.append(
            f"{name:<26} {m['roc_auc']:>8.4f} {m['pr_auc']:>8.4f} {m['brier']:>8.4f} "
            f"{m['lift_top_decile']:>9.3f}"
        )
    lines.append(f"ROC-AUC over the best baseline: {report['roc_auc_over_best_baseline']:+.4f}")
    for name, why in report["baselines_skipped"].items():
        lines.append(f"baseline {name} left out: {why}")
    lines += ["", "top features (mean |contribution| to the log-odds, test rows):"]
    lines += [f"  {f['feature']:<28} {f['mean_abs_log_odds']:.4f}" for f in report["top_features"]]
    if report["features_absent"]:
        lines.append(f"features without values (left out): {', '.join(report['features_absent'])}")
    lines += ["", f"registered: {report['registry']}"]
    lines += [f"chart: {path}" for path in report["charts"]]
    return "\n".join(lines)


@command.command("churn")
@click.option(
    "--date", "day", type=DATE, help="Train as of D (the newest identity map on or before D)."
)
@click.option("--no-charts", is_flag=True, help="Skip the calibration and lift PNGs.")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON, one key per model.")
@pass_app
def churn(app: AppContext, day: dt.datetime | None, no_charts: bool, as_json: bool) -> None:
    """Build the point-in-time training set, train, compare with the baselines, register."""
    from c360.pipeline import churn as pipeline

    settings = app.config().settings
    result = pipeline.train(settings, day.date() if day else None, charts=not no_charts)
    click.echo(json.dumps(result.report, indent=2) if as_json else _table(result.report))


@click.command("score")
@click.option("--date", "day", type=DATE, required=True, help="The batch date D to score.")
@click.option("--model", "version", help="A registered version (default: churn.model_version).")
@click.option("--no-publish", is_flag=True, help="Score the lake's profile only.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
@pass_app
def score(
    app: AppContext, day: dt.datetime, version: str | None, no_publish: bool, as_json: bool
) -> None:
    """Score day D's batch profile with the churn model and publish it again."""
    from c360.lake import Lake
    from c360.pipeline import churn as pipeline
    from c360.pipeline.steps import run_publish

    settings = app.config().settings
    lake = Lake(settings.lake.url)
    result = pipeline.score(settings, day.date(), version, lake=lake)
    summary: dict[str, Any] = result.as_dict()
    if not no_publish:
        summary["published"] = run_publish(settings, lake, day.date()).rows
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(
        f"{result.scored} of {result.persons} persons scored by churn model "
        f"{result.model_version} in {result.seconds:.2f}s"
        + ("" if no_publish else "; profiles published")
    )
