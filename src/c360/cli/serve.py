"""`c360 serve`: the Profile API."""

from __future__ import annotations

import click

from c360.cli.main import AppContext, pass_app


@click.command("serve")
@click.option("--host", default=None, help="Bind address (default: api.host).")
@click.option("--port", default=None, type=int, help="Port (default: api.port).")
@pass_app
def command(app: AppContext, host: str | None, port: int | None) -> None:
    """Serve the Profile API until Ctrl-C."""
    import uvicorn

    from c360.api.app import create_app

    settings = app.config(**{"api.host": host, "api.port": port}).settings
    click.echo(f"c360 API on http://{settings.api.host}:{settings.api.port} (docs at /docs)")
    uvicorn.run(
        create_app(settings),
        host=settings.api.host,
        port=settings.api.port,
        access_log=False,  # paths can carry identifiers such as email addresses
        log_level="warning",
    )
