"""`c360 demo`: the whole platform on embedded defaults, in a folder of its own."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from c360.cli.main import AppContext, pass_app


@click.command("demo")
@click.option("--once", is_flag=True, help="Run to completion, check the API's answers, exit.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary (with --once).")
@click.option(
    "--dir",
    "folder",
    type=click.Path(path_type=Path),
    default=Path("data/demo"),
    show_default=True,
    help="Folder for all demo data; wiped at start.",
)
@click.option("--customers", type=int, default=300, show_default=True)
@click.option("--days", type=int, default=60, show_default=True)
@click.option("--seed", type=int, default=None, help="World seed (default: simulator.seed).")
@click.option(
    "--port", type=int, default=None, help="API port (default: api.port; with --once a free port)."
)
@click.option(
    "--rate",
    type=float,
    default=50.0,
    show_default=True,
    help="Live replay speed in events per second (without --once).",
)
@pass_app
def command(
    app: AppContext,
    once: bool,
    as_json: bool,
    folder: Path,
    customers: int,
    days: int,
    seed: int | None,
    port: int | None,
    rate: float,
) -> None:
    """Generate a world, run the batch, stream the clickstream and serve the API."""
    from c360.api.app import create_app
    from c360.api.server import serve_in_thread
    from c360.cli.stream import stop_on_signals
    from c360.pipeline import demo

    started = time.perf_counter()
    overrides = {
        **demo.demo_overrides(folder),
        "simulator.customers": customers,
        "simulator.days": days,
        "simulator.seed": seed,
        "api.port": port,
        **demo.DEMO_CHURN,
    }
    settings = app.config(**overrides).settings
    say = (lambda _: None) if as_json else click.echo
    demo.reset(folder)
    summary = demo.DemoSummary()
    say(f"generating {customers} customers over {days} days, then the daily batch…")
    demo.prepare(settings, summary)
    say(f"batch {summary.batch_date}: {summary.persons} persons published")
    say(
        "segments: "
        + ", ".join(
            f"{name} {'(real time)' if count is None else f'{count} members'}"
            for name, count in summary.segments.items()
        )
    )
    demo.train_churn(settings, summary)
    model = summary.churn_model
    if model.get("trained"):
        say(
            f"churn model {model['version']}: ROC-AUC {model['roc_auc']:.3f} on "
            f"{model['test_snapshot']}; {model['persons_scored']} persons scored, republished"
        )
    else:
        say(f"churn model not trained: {model.get('reason')}")
    api_key = demo.create_api_key(settings, folder, summary)

    if once:
        demo.stream(settings, summary, rate=None, stop=None)
        say(
            f"speed layer: {summary.events_processed} events, {summary.dead_lettered} dead-lettered"
        )
        demo.count_live_segments(settings, summary)
        say(
            "real-time segments now: "
            + ", ".join(f"{name} {count} members" for name, count in summary.live_segments.items())
        )
        api = create_app(settings)
        with serve_in_thread(api, settings.api.host, port or 0) as url:
            summary.api_url = url
            trained = bool(summary.churn_model.get("trained"))
            summary.checks = demo.check_api(url, settings, api_key, trained)
        summary.seconds = time.perf_counter() - started
        if as_json:
            click.echo(json.dumps(summary.as_dict()))
        else:
            for check in summary.checks:
                click.echo(f"[{'ok' if check.passed else 'FAIL'}] {check.name}: {check.detail}")
            click.echo(f"done in {summary.seconds:.1f}s")
        if summary.api_checks_failed:
            raise SystemExit(1)
        return

    with (
        serve_in_thread(create_app(settings), settings.api.host, settings.api.port) as url,
        stop_on_signals() as stop,
    ):
        click.echo(
            f"API on {url} — try {url}/docs ; replaying the clickstream at {rate:g} events/s"
        )
        click.echo(
            f'API key (profiles:read) in {summary.api_key_file}: curl -H "Authorization: '
            f'Bearer $(cat {summary.api_key_file})" {url}/v1/profiles/by/customer_id/1'
        )
        click.echo("Ctrl-C to stop")
        demo.stream(settings, summary, rate=rate, stop=stop)
    click.echo(f"stopped after {summary.events_processed} events")
