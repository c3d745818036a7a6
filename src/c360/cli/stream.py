"""`c360 stream`: publish events into the event log and run the speed-layer stream_worker."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import click

from c360.cli.main import AppContext, pass_app
from c360.logs import open_configured
from c360.pipeline import stream_publish, stream_worker
from c360.stores import open_store


@click.group("stream")
def command() -> None:
    """Speed layer: publish events into the event log and consume them."""


@command.command("publish")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--topic", default="clickstream", show_default=True, help="Topic to append to.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Events per second (default: as fast as the log takes them).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def publish(app: AppContext, file: Path, topic: str, rate: float | None, as_json: bool) -> None:
    """Append a JSON-lines file (plain or gzip) of Segment messages to the event log."""
    settings = app.config().settings
    with open_configured(settings.log) as log:
        stats = stream_publish.publish_file(log, file, topic=topic, rate=rate)
    if as_json:
        click.echo(json.dumps({"topic": topic, **stats.as_dict()}))
        return
    click.echo(
        f"published {stats.records} records to {topic} in {stats.seconds:.1f}s "
        f"({stats.not_json} not JSON, to be dead-lettered; {stats.blank} blank lines skipped)"
    )


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by Ctrl-C / SIGTERM, so the worker finishes its batch and returns."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@command.command("run")
@click.option("--once", is_flag=True, help="Stop when caught up (default: poll until Ctrl-C).")
@click.option("--group", default="speed", show_default=True, help="Consumer group.")
@click.option(
    "--topic",
    "topics",
    multiple=True,
    default=("clickstream", "support"),
    show_default=True,
    help="Topic to consume (repeatable); default: the clickstream and Zendesk support events.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=stream_worker.DEFAULT_BATCH_SIZE,
    show_default=True,
    help="Records per partition per micro-batch.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Serve the worker's Prometheus metrics on this port (/metrics; lag, rates, dead letters).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def run(
    app: AppContext,
    once: bool,
    group: str,
    topics: tuple[str, ...],
    batch_size: int,
    metrics_port: int | None,
    as_json: bool,
) -> None:
    """Consume the event log into the real-time tables of the serving store."""
    settings = app.config().settings
    metrics = None
    if metrics_port is not None:
        from prometheus_client import start_http_server

        from c360.pipeline.stream_metrics import StreamMetrics

        start_http_server(metrics_port, addr=settings.api.host)
        metrics = StreamMetrics(group)
    with open_configured(settings.log) as log:
        store = open_store(settings.serving.url)
        try:
            store.migrate()
            if not once and not as_json:
                click.echo(f"consuming {', '.join(topics)} as {group!r}; Ctrl-C to stop", err=True)
            with stop_on_signals() as stop:
                stats = stream_worker.run(
                    log,
                    store,
                    group,
                    topics,
                    stop_when_caught_up=once,
                    batch_size=batch_size,
                    should_stop=stop.is_set,
                    max_clock_skew_seconds=settings.events.max_clock_skew_seconds,
                    metrics=metrics,
                    commit_interval=settings.stream.commit_interval_seconds,
                )
        finally:
            store.dispose()
    if as_json:
        click.echo(json.dumps({"group": group, "topics": list(topics), **stats.as_dict()}))
        return
    click.echo(
        f"{stats.records} records: {stats.events} events applied, {stats.duplicates} duplicates "
        f"dropped, {stats.dead_lettered} dead-lettered, in {stats.batches} batches"
    )
