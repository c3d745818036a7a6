"""`c360 features`: the feature catalogue."""

from __future__ import annotations

import json

import click


@click.command("features")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable catalogue.")
@click.option(
    "--bi-tables", is_flag=True, help="The BI tables' columns instead (docs/bi_tables.md)."
)
def command(as_json: bool, bi_tables: bool) -> None:
    """Print the feature catalogue (the source of docs/features.md and the API schema)."""
    from c360.batch import catalogue, gold

    if bi_tables:
        click.echo(gold.markdown(), nl=False)
        return
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
