"""`c360 serve`: the Profile API."""

from __future__ import annotations

import os
import tempfile

import click

from c360.cli.main import AppContext, pass_app
from c360.config import ResolvedConfig
from c360.errors import TerminalError


@click.command("serve")
@click.option("--host", default=None, help="Bind address (default: api.host).")
@click.option("--port", default=None, type=int, help="Port (default: api.port).")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes sharing the port (each reads the configuration itself).",
)
@pass_app
def command(app: AppContext, host: str | None, port: int | None, workers: int) -> None:
    """Serve the Profile API until Ctrl-C."""
    import uvicorn

    resolved = app.config(**{"api.host": host, "api.port": port})
    settings = resolved.settings
    check_store(resolved)
    click.echo(f"c360 API on http://{settings.api.host}:{settings.api.port} (docs at /docs)")
    host, port = settings.api.host, settings.api.port
    # No access log: request paths can carry identifiers such as email addresses.
    if workers == 1:
        from c360.api.app import create_app, serving_process_app

        api = serving_process_app(create_app(settings))
        # log_config=None: uvicorn's own lines go through c360's handler (c360.logformat)
        uvicorn.run(api, host=host, port=port, access_log=False, log_config=None)
        return
    # Each worker process builds its app from the same configuration (file and environment).
    if app.config_path is not None:
        os.environ["C360_CONFIG"] = str(app.config_path)
    # Each worker counts its own requests in files here; /metrics sums them (api/metrics.py).
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="c360-metrics-")
    uvicorn.run(
        "c360.api.app:app_from_configuration",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        access_log=False,
        log_config=None,
    )


def check_store(resolved: ResolvedConfig) -> None:
    """Reach and migrate the serving store before the server starts, so that a store that is
    down or misconfigured is one line naming it (password hidden) and the fix, and a non-zero
    exit — not the server's startup traceback."""
    from c360.stores import StoreError, StoreUnavailable, open_store

    where = resolved.sources.get("serving.url")
    fix = f"set in {where}" if where else "the default; set C360_SERVING_URL or [serving] url"
    try:
        store = open_store(resolved.settings.serving.url)
        try:
            store.migrate()
        finally:
            store.dispose()
    except StoreUnavailable as exc:
        raise TerminalError(
            f"the API cannot start: {exc} — start the store, or fix serving.url ({fix})"
        ) from exc
    except StoreError as exc:
        raise TerminalError(f"the API cannot start: {exc} (serving.url: {fix})") from exc
