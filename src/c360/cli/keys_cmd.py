"""`c360 keys`: the Profile API's keys (create, list, revoke) in the serving store.

A key is shown once, by ``create``: on its own line on stdout (``KEY=$(c360 keys create …)``
works), or as ``key`` in the ``--json`` object. The store keeps only its secret's SHA-256, so a
lost key cannot be shown again: revoke it and create another. ``list`` never shows a secret.
"""

from __future__ import annotations

import json

import click

from c360.access.keys import SCOPES, ApiKey, generate, parse
from c360.cli.main import AppContext, pass_app
from c360.errors import NotFoundError


@click.group("keys")
def command() -> None:
    """API keys of the Profile API (Authorization: Bearer <key>)."""


def _rate(key: ApiKey) -> str:
    if key.rate_limit_per_s is None:
        return "default"
    return "none" if key.rate_limit_per_s == 0 else f"{key.rate_limit_per_s:g}/s"


def _line(key: ApiKey) -> str:
    status = "active" if key.active else f"revoked {key.revoked_at:%Y-%m-%d %H:%M}"
    return (
        f"{key.key_id}  {status:<24} {' '.join(sorted(key.scopes)):<30} rate {_rate(key):<8} "
        f"created {key.created_at:%Y-%m-%d %H:%M}  {key.name or ''}".rstrip()
    )


@command.command("create")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(list(SCOPES)),
    help="A scope the key grants (repeatable): "
    + "; ".join(f"{scope}: {what}" for scope, what in SCOPES.items())
    + ".",
)
@click.option("--name", default=None, help="What the key is for (shown by list).")
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0),
    default=None,
    help="Requests per second per server process (default: api.rate_limit_per_s; 0 = none).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable; carries the key once.")
@pass_app
def create(
    app: AppContext,
    scopes: tuple[str, ...],
    name: str | None,
    rate_limit: float | None,
    as_json: bool,
) -> None:
    """Create a key; it is shown this once (only its hash is stored)."""
    new = generate(scopes, name=name, rate_limit_per_s=rate_limit)
    with app.store() as store:
        store.add_api_key(new.record)
    if as_json:
        click.echo(json.dumps({**new.record.public(), "key": new.key}))
        return
    click.echo(new.key)
    click.echo(f"key {_line(new.record)}\nThe key above is shown once: store it now.", err=True)


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable.")
@pass_app
def list_keys(app: AppContext, as_json: bool) -> None:
    """Every key, revoked ones included (never a secret)."""
    with app.store() as store:
        keys = store.api_keys()
    if as_json:
        click.echo(json.dumps([key.public() for key in keys]))
        return
    if not keys:
        click.echo("no API keys; create one with c360 keys create --scope profiles:read")
    for key in keys:
        click.echo(_line(key))


@command.command("revoke")
@click.argument("key_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable.")
@pass_app
def revoke(app: AppContext, key_id: str, as_json: bool) -> None:
    """Revoke a key (by its id, as list shows it). Servers stop accepting it within
    api.key_refresh_seconds."""
    parsed = parse(key_id)  # the whole key was given: its id
    key_id = parsed[0] if parsed else key_id.strip()
    with app.store() as store:
        key = store.revoke_api_key(key_id)
        refresh = app.config().settings.api.key_refresh_seconds
    if key is None:
        raise NotFoundError(f"no API key with id {key_id!r}; see c360 keys list")
    if as_json:
        click.echo(json.dumps(key.public()))
        return
    click.echo(f"revoked {_line(key)}")
    click.echo(f"servers stop accepting it within {refresh:g} s (api.key_refresh_seconds)")
