"""`c360 status`: the health of each layer on one screen (c360.pipeline.status)."""

from __future__ import annotations

import json
import sys

import click

from c360.cli.main import AppContext, pass_app


@click.command("status")
@click.option(
    "--group", default="speed", show_default=True, help="The speed layer's consumer group."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def command(app: AppContext, group: str, as_json: bool) -> None:
    """Last batch per step, source freshness, stream lag per partition and dead letters of the
    last hour, with a red/amber/green verdict per layer; exits 1 when a layer is red."""
    from c360.pipeline.status import as_dict, status

    settings = app.config().settings
    with app.store() as store:
        layers = status(settings, store, group)
    if as_json:
        click.echo(json.dumps(as_dict(layers), default=str))
    else:
        for name, layer in layers.items():
            click.echo(f"{name:8} {layer.verdict.upper():6} " + ("; ".join(layer.reasons) or "ok"))
            for fact, value in layer.facts.items():
                click.echo(f"{'':16}{fact}: {json.dumps(value, default=str)}")
    if any(layer.verdict == "red" for layer in layers.values()):
        sys.exit(1)
