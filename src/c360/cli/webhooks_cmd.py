"""`c360 webhooks`: deliver the real-time segment events to ``webhooks.url``, signed."""

from __future__ import annotations

import json
import signal
import threading
from types import FrameType

import click

from c360.cli.main import AppContext, pass_app


@click.group("webhooks")
def command() -> None:
    """Outbound webhooks: segment.entered / segment.exited (docs/webhooks.md)."""


@command.command("deliver")
@click.option("--once", is_flag=True, help="One round over the events due now, then exit.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable totals.")
@pass_app
def deliver(app: AppContext, once: bool, as_json: bool) -> None:
    """Deliver due events (retrying with backoff; every attempt recorded) until interrupted."""
    from c360.pipeline import webhooks

    settings = app.config().settings.webhooks
    stop = threading.Event()

    def interrupted(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if not once:
        signal.signal(signal.SIGINT, interrupted)
        signal.signal(signal.SIGTERM, interrupted)
    with app.store() as store:
        total = webhooks.run(settings, store, once=once, should_stop=stop.is_set)
    counts = {
        "delivered": total.delivered,
        "retrying": total.retrying,
        "failed": total.failed,
        "withheld": total.withheld,
    }
    if as_json:
        click.echo(json.dumps(counts))
        return
    click.echo(
        f"{total.delivered} delivered, {total.retrying} to retry, {total.failed} failed, "
        f"{total.withheld} withheld (no marketing consent)"
    )
