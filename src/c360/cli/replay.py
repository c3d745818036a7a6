"""`c360 replay`: send a simulator file to a running API, as the live sources would.

The sending (pacing, retries, what each answer means, the counts) is
:mod:`c360.pipeline.replay`; this module resolves the options against the configuration and
prints the counts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import click

from c360.cli.main import AppContext, pass_app


@click.command("replay")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Events per second (default: as fast as the server answers, one request at a time).",
)
@click.option("--url", default=None, help="API base URL (default: http://api.host:api.port).")
@click.option(
    "--write-key", default=None, help="Collector write key (default: collector.write_keys[0])."
)
@click.option(
    "--webhook-secret",
    default=None,
    help="Zendesk signing secret (default: sources.zendesk.webhook_secret).",
)
@click.option(
    "--kind",
    type=click.Choice(["clickstream", "zendesk"]),
    default=None,
    help="What FILE holds (default: detected from its first line).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1, max=2500),
    default=100,
    show_default=True,
    help="Clickstream events per /v1/batch request.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds to wait for one answer.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def command(
    app: AppContext,
    file: Path,
    rate: float | None,
    url: str | None,
    write_key: str | None,
    webhook_secret: str | None,
    kind: Literal["clickstream", "zendesk"] | None,
    batch_size: int,
    timeout: float,
    as_json: bool,
) -> None:
    """Send a simulator clickstream or Zendesk file to a running c360 API.

    A 429, or a 503 with Retry-After, is retried after that delay; a 401, a 500 or a 503
    without Retry-After stops the replay with the server's reason.
    """
    from c360.pipeline.replay import ClickstreamTarget, detect_kind, replay_file

    settings = app.config().settings
    if url is None:
        host = settings.api.host if settings.api.host not in ("0.0.0.0", "::") else "127.0.0.1"
        url = f"http://{host}:{settings.api.port}"
    kind = kind or detect_kind(file)
    target, secret = None, None
    if kind == "clickstream":
        keys = settings.collector.write_keys
        key = write_key or (keys[0].get_secret_value() if keys else None)
        if not key:
            raise click.UsageError("no write key: pass --write-key or set collector.write_keys")
        target = ClickstreamTarget(key, batch_size, settings.collector.max_batch_bytes)
    else:
        configured = settings.sources.zendesk.webhook_secret
        secret = webhook_secret or (configured.get_secret_value() if configured else None)
        if not secret:
            raise click.UsageError(
                "no webhook secret: pass --webhook-secret or set sources.zendesk.webhook_secret"
            )
    stats = replay_file(
        file, url, kind, clickstream=target, webhook_secret=secret, rate=rate, timeout=timeout
    )
    if as_json:
        click.echo(json.dumps(stats.as_dict()))
        return
    click.echo(
        f"{stats.kind}: {stats.sent} of {stats.events} events sent to {stats.url} in "
        f"{stats.seconds:.1f}s: {stats.accepted} accepted, {stats.rejected} rejected "
        f"({stats.requests} requests, {stats.retries} retries)"
    )
