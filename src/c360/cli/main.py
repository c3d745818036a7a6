"""Entry point of the `c360` command: global options, error reporting, command registry."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from c360 import logformat
from c360.config import ResolvedConfig, load_config
from c360.errors import C360Error
from c360.masking import install_log_masking, mask_secrets

if TYPE_CHECKING:
    from c360.stores import ServingStore


@dataclass
class AppContext:
    """What every command gets: where the config comes from, loaded on first use."""

    config_path: Path | None
    debug: bool
    _resolved: ResolvedConfig | None = field(default=None, repr=False)

    def config(self, **overrides: Any) -> ResolvedConfig:
        if overrides or self._resolved is None:
            self._resolved = load_config(self.config_path, overrides=overrides)
            logs = self._resolved.settings.logging
            logformat.configure(logs.format, "DEBUG" if self.debug else logs.level)
        return self._resolved

    @contextmanager
    def store(self) -> Iterator[ServingStore]:
        """The configured serving store, migrated, disposed of after the ``with``."""
        from c360.stores import open_store  # not for commands that need no store

        store = open_store(self.config().settings.serving.url)
        try:
            store.migrate()
            yield store
        finally:
            store.dispose()


pass_app = click.make_pass_decorator(AppContext)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="TOML config file (default: $C360_CONFIG, else ./c360.toml if present).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.version_option(package_name="c360")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, debug: bool) -> None:
    """c360: a real-time Customer 360 (batch, speed and serving layers)."""
    ctx.obj = AppContext(config_path=config_path, debug=debug)


def _register() -> None:
    from c360.cli import (
        batch_cmd,
        churn_cmd,
        config_cmd,
        demo,
        features_cmd,
        forget_cmd,
        generate,
        identity_cmd,
        ingest_cmd,
        keys_cmd,
        privacy_cmd,
        replay,
        segment_cmd,
        serve,
        status_cmd,
        stream,
        webhooks_cmd,
    )

    commands = (
        config_cmd,
        generate,
        ingest_cmd,
        batch_cmd,
        identity_cmd,
        features_cmd,
        stream,
        replay,
        serve,
        keys_cmd,
        segment_cmd,
        status_cmd,
        webhooks_cmd,
        churn_cmd,
        forget_cmd,
        privacy_cmd,
    )
    for module in (*commands, demo):
        cli.add_command(module.command)
    cli.add_command(churn_cmd.score)
    cli.add_command(privacy_cmd.audit)


_register()


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; a c360 error prints one line (a traceback only with --debug).

    Passwords in URLs are masked in that line, in usage errors and in every log line of the
    process (:mod:`c360.masking`).
    """
    args = sys.argv[1:] if argv is None else argv
    install_log_masking()
    try:
        cli.main(args=args, prog_name="c360", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        shown = io.StringIO()  # a usage error may quote an option's value: a URL
        exc.show(file=shown)
        click.echo(mask_secrets(shown.getvalue()), err=True, nl=False)
        sys.exit(exc.exit_code)
    except C360Error as exc:
        if "--debug" in args:
            raise
        click.echo(f"error: {mask_secrets(str(exc))}", err=True)
        sys.exit(exc.exit_code)
