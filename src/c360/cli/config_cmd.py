"""`c360 config`: inspect the resolved configuration."""

from __future__ import annotations

import json

import click

from c360.cli.main import AppContext, pass_app


@click.group("config")
def command() -> None:
    """Inspect the configuration."""


@command.command("show")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def show(app: AppContext, as_json: bool) -> None:
    """Print every resolved setting and where its value came from."""
    resolved = app.config()
    rows = [(key, value, source) for key, value, source in resolved.items()]
    if as_json:
        payload = {key: {"value": str(value), "source": source} for key, value, source in rows}
        click.echo(json.dumps(payload, indent=2))
        return
    width = max(len(key) for key, _, _ in rows)
    click.echo(f"# config file: {resolved.file or 'none (defaults)'}")
    for key, value, source in rows:
        click.echo(f"{key:<{width}}  {value!s:<40}  [{source}]")


@command.command("example")
def example() -> None:
    """Print a documented c360.toml with every key at its default."""
    from c360.config import example_toml

    click.echo(example_toml(), nl=False)
