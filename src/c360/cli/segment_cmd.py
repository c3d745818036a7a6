"""`c360 segment`: audiences over the profiles (create, list, show, preview, delete).

A definition is a boolean expression over profile fields (``c360 features`` lists the batch
ones; the language is :mod:`c360.segments.definition`'s), e.g.
``c360 segment create big-spenders "total_lifetime_spend > 500 and marketing_opt_in"``. One that
is not a definition is refused with the reason and a caret under the offending token.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from c360.cli.main import AppContext, pass_app
from c360.errors import NotFoundError
from c360.pipeline import activation
from c360.segments import DefinitionError
from c360.stores.segments import Segment

DEFAULT_SAMPLE = 10


@click.group("segment")
def command() -> None:
    """Segments: audiences defined over profile fields."""


@contextmanager
def _shown_definition_errors() -> Iterator[None]:
    """An invalid definition: the definition and a caret under the token, then the error line."""
    try:
        yield
    except DefinitionError as exc:
        click.echo(exc.pointer, err=True)
        raise


def _json(value: Any) -> str:
    return json.dumps(value, default=str)


def _members(segment: Segment) -> str:
    if segment.live_members is not None:
        return f"{segment.live_members} members now (real time)"
    if segment.members is None:
        return "members not computed yet"
    return f"{segment.members} members on {segment.members_as_of}"


@command.command("create")
@click.argument("name")
@click.argument("expression")
@click.option("--description", default=None, help="What the segment is for.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable.")
@pass_app
def create(
    app: AppContext, name: str, expression: str, description: str | None, as_json: bool
) -> None:
    """Define segment NAME as EXPRESSION (checked against the profile's fields)."""
    with app.store() as store, _shown_definition_errors():
        made = store.create_segment(name, expression, description)
    if as_json:
        click.echo(_json(made.as_dict()))
        return
    click.echo(f"created segment {made.name}: {made.definition}")


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable.")
@pass_app
def list_segments(app: AppContext, as_json: bool) -> None:
    """Every segment, by name."""
    with app.store() as store:
        segments = store.segments()
    if as_json:
        click.echo(_json([s.as_dict() for s in segments]))
        return
    if not segments:
        click.echo('no segments; create one with c360 segment create NAME "EXPRESSION"')
    for segment in segments:
        click.echo(f"{segment.name:<32} {_members(segment):<26} {segment.definition}")


@command.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable.")
@pass_app
def show(app: AppContext, name: str, as_json: bool) -> None:
    """One segment: its definition, the fields it reads and its member count."""
    with app.store() as store:
        segment = store.segment(name)
    if as_json:
        click.echo(_json(segment.as_dict()))
        return
    click.echo(f"segment     {segment.name}")
    click.echo(f"definition  {segment.definition}")
    if segment.description:
        click.echo(f"description {segment.description}")
    click.echo(f"fields      {', '.join(segment.fields)}")
    click.echo(f"created     {segment.created_at:%Y-%m-%d %H:%M} UTC")
    click.echo(f"members     {_members(segment)}")


@command.command("preview")
@click.argument("name")
@click.option(
    "--sample",
    type=click.IntRange(0, 100),
    default=DEFAULT_SAMPLE,
    show_default=True,
    help="How many persons to show.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable: count and sample.")
@pass_app
def preview(app: AppContext, name: str, sample: int, as_json: bool) -> None:
    """How many persons segment NAME selects now, and a sample of them (by person id)."""
    with app.store() as store:
        definition = store.segment(name).definition
        with _shown_definition_errors():
            found = store.preview_segment(definition, sample)
    if as_json:
        click.echo(_json({"count": found.count, "sample": found.sample}))
        return
    click.echo(f"{found.count} persons match {definition}")
    for row in found.sample:
        values = "  ".join(f"{field}={row[field]}" for field in found.fields)
        click.echo(f"  {row['person_id']}  {values}")


@command.command("export")
@click.argument("name")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The file to write (replaced whole: written aside, then renamed).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(activation.FORMATS),
    default=None,
    help="csv or parquet (default: from the file's suffix, else csv).",
)
@pass_app
def export(app: AppContext, name: str, output: Path, fmt: str | None) -> None:
    """Write segment NAME's current members with marketing consent to a file."""
    chosen = fmt or ("parquet" if output.suffix.lower() == ".parquet" else "csv")
    with app.store() as store:
        done = activation.export_segment(store, name, output, chosen)
    click.echo(
        f"wrote {done.rows} persons to {done.path} ({chosen}); "
        f"{done.without_consent} members left out without marketing consent or an email"
    )


@command.command("sync")
@click.argument("name")
@click.option("--tag", default=None, help="The Mailchimp tag (default: the segment's name).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable.")
@pass_app
def sync(app: AppContext, name: str, tag: str | None, as_json: bool) -> None:
    """Sync segment NAME to the Mailchimp audience (sources.mailchimp.list_id): upsert its
    consenting members, tag them, untag everyone else holding the tag."""
    settings = app.config().settings
    with app.store() as store:
        report, without_consent = activation.sync_segment(settings, store, name, tag)
    if as_json:
        click.echo(_json({**report.as_dict(), "without_consent": without_consent}))
        return
    click.echo(
        f"tag {report.tag!r}: {report.audience} persons ({report.created} new, "
        f"{report.updated} updated), {report.tagged} tagged, {report.untagged} untagged; "
        f"{without_consent} members left out without marketing consent"
    )
    for reason, count in sorted(report.failed.items()):
        click.echo(f"  refused by Mailchimp: {count} ({reason})", err=True)


@command.command("delete")
@click.argument("name")
@pass_app
def delete(app: AppContext, name: str) -> None:
    """Delete segment NAME and its membership."""
    with app.store() as store:
        deleted = store.delete_segment(name)
    if not deleted:
        raise NotFoundError(f"no segment {name!r}; see c360 segment list")
    click.echo(f"deleted segment {name}")
