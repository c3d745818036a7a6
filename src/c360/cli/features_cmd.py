"""`c360 features`: the feature catalogue."""

from __future__ import annotations

import json

import click


@click.command("features")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable catalogue.")
def command(as_json: bool) -> None:
    """Print the feature catalogue (the source of docs/features.md and the API schema)."""
    from c360.batch import catalogue

    if as_json:
        rows = [
            {
                "name": f.name,
                "type": str(f.type),
                "group": f.group,
                "source": f.source,
                "description": f.description,
            }
            for f in catalogue.CATALOGUE
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(catalogue.markdown(), nl=False)
