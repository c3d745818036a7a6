"""`c360 replay`: send a simulator file to a running API, as the live sources would.

A clickstream file (Segment messages, JSON lines, gzip or plain) goes to the collector's
``/v1/batch`` with the write key as HTTP Basic user name; a Zendesk events file goes to
``/v1/webhooks/zendesk``, one signed request per event (as Zendesk sends them). The kind is
detected from the first line unless ``--kind`` says. Lines are sent in file order, paced at
``--rate`` events per second, one request at a time (memory and load stay bounded). A 429, or a
503 with ``Retry-After`` (the server's event log is failing), is retried after that delay, and a
connection failure with backoff, at most :data:`MAX_ATTEMPTS` tries; a 401, or a 503 without
``Retry-After`` (collector or webhook not configured), stops the replay with the server's
reason. Counts: events read, sent, accepted by the server (durable in its log), rejected (by
the server, or not JSON and never sent).
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import click
import httpx
import orjson

from c360.cli.main import AppContext, pass_app
from c360.errors import DataError, TerminalError, TransientError
from c360.sources.files import open_bytes

Kind = Literal["clickstream", "zendesk"]
MAX_ATTEMPTS = 6
MAX_BACKOFF_SECONDS = 5.0
_ZENDESK_PREFIX = "zen:event-type:"


@dataclass
class ReplayStats:
    kind: str
    url: str
    events: int = 0  # non-blank lines read
    sent: int = 0  # events posted
    accepted: int = 0  # acknowledged by the server (durable in its log)
    rejected: int = 0  # refused by the server, or not JSON (not sent)
    requests: int = 0  # HTTP requests, retries included
    retries: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _lines(path: Path) -> Iterator[bytes]:
    """The non-blank lines of ``path``, without their line ends."""
    try:
        with open_bytes(path) as stream:
            for raw in stream:
                line = raw.rstrip(b"\r\n")
                if line.strip():
                    yield line
    except (EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path} is not a complete gzip file ({exc})") from None


def _json_lines(path: Path, stats: ReplayStats) -> Iterator[bytes]:
    """The lines worth sending: each counted as an event; one that is not JSON as rejected."""
    for line in _lines(path):
        stats.events += 1
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError:
            stats.rejected += 1
            continue
        yield line


def detect_kind(path: Path) -> Kind:
    """``zendesk`` if the first line is a Zendesk event payload, else ``clickstream``."""
    for line in _lines(path):
        try:
            first = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise DataError(
                f"the first line of {path} is not JSON; say --kind clickstream|zendesk"
            ) from None
        kind = first.get("type") if isinstance(first, dict) else None
        if isinstance(kind, str) and kind.startswith(_ZENDESK_PREFIX):
            return "zendesk"
        return "clickstream"
    raise DataError(f"{path} has no events")


class Sender:
    """Posts with pacing and bounded retries; counts into ``stats``."""

    def __init__(
        self,
        client: httpx.Client,
        stats: ReplayStats,
        rate: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.stats = stats
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self.started = clock()

    def pace(self) -> None:
        """Wait until the next event is due: event n at started + n / rate."""
        if self.rate is not None:
            delay = self.started + self.stats.sent / self.rate - self.clock()
            if delay > 0:
                self.sleep(delay)

    def post(
        self, path: str, content: bytes, headers: Callable[[], dict[str, str]]
    ) -> httpx.Response:
        """POST, retrying 429/503 and connection failures; ``headers`` is called per attempt."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self.stats.requests += 1
            try:
                response = self.client.post(path, content=content, headers=headers())
            except httpx.TransportError as exc:
                if attempt == MAX_ATTEMPTS:
                    raise TransientError(
                        f"cannot reach {self.client.base_url}{path}: {exc.__class__.__name__}"
                    ) from None
                wait = min(MAX_BACKOFF_SECONDS, 0.25 * 2**attempt)
            else:
                # a 503 without Retry-After is a server that is not set up (e.g. no write key):
                # waiting will not help
                retry = response.status_code == 429 or (
                    response.status_code == 503 and "retry-after" in response.headers
                )
                if not retry or attempt == MAX_ATTEMPTS:
                    return response
                wait = _retry_after(response, attempt)
            self.stats.retries += 1
            self.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover


def _retry_after(response: httpx.Response, attempt: int) -> float:
    value = response.headers.get("retry-after", "")
    seconds = float(value) if value.isdigit() else 0.25 * 2**attempt
    return min(MAX_BACKOFF_SECONDS, seconds)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("detail", body)) if isinstance(body, dict) else str(body)[:200]


def _count(stats: ReplayStats, response: httpx.Response, sent: int, what: str, fix: str) -> None:
    """Count the answer to ``sent`` events, or raise why the replay cannot go on."""
    status = response.status_code
    if status == 200:
        answer = response.json()
        accepted = int(answer.get("accepted", sent)) if isinstance(answer, dict) else sent
        stats.accepted += accepted
        stats.rejected += sent - accepted
    elif status in (400, 413):
        stats.rejected += sent
    elif status in (401, 403) or (status == 503 and "retry-after" not in response.headers):
        raise TerminalError(f"{what} answered {status}: {_detail(response)}; {fix}")
    else:
        raise TransientError(f"{what} answered {status}: {_detail(response)}; try again later")


def replay_clickstream(
    sender: Sender, path: Path, write_key: str, batch_size: int, max_batch_bytes: int
) -> None:
    """Send every line of ``path`` to ``/v1/batch`` in batches of ``batch_size``."""
    stats = sender.stats
    if sender.rate is not None:  # about ten requests a second keeps the pace smooth
        batch_size = max(1, min(batch_size, int(sender.rate / 10)))
    budget = max_batch_bytes - 1024  # room for the envelope
    token = base64.b64encode(f"{write_key}:".encode()).decode("ascii")
    headers = {"Content-Type": "application/json", "Authorization": f"Basic {token}"}
    pending: list[bytes] = []
    size = 0

    def flush() -> None:
        nonlocal size
        if not pending:
            return
        sender.pace()
        sent_at = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        body = b'{"batch":[' + b",".join(pending) + b'],"sentAt":"' + sent_at.encode() + b'"}'
        response = sender.post("/v1/batch", body, lambda: headers)
        count = len(pending)
        stats.sent += count
        pending.clear()
        size = 0
        _count(stats, response, count, "the collector", "check --write-key / collector.write_keys")

    for line in _json_lines(path, stats):
        if pending and (len(pending) >= batch_size or size + len(line) + 1 > budget):
            flush()
        pending.append(line)
        size += len(line) + 1
    flush()


def replay_zendesk(sender: Sender, path: Path, secret: str) -> None:
    """Send every line of ``path`` to ``/v1/webhooks/zendesk``, each signed at send time."""
    from c360.contracts.zendesk import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

    stats = sender.stats
    for line in _json_lines(path, stats):

        def headers(body: bytes = line) -> dict[str, str]:
            timestamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            return {
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(secret, timestamp, body),
            }

        sender.pace()
        response = sender.post("/v1/webhooks/zendesk", line, headers)
        stats.sent += 1
        fix = "check --webhook-secret / sources.zendesk.webhook_secret and the clocks"
        _count(stats, response, 1, "the webhook", fix)


@click.command("replay")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Events per second (default: as fast as the server answers, one request at a time).",
)
@click.option("--url", default=None, help="API base URL (default: http://api.host:api.port).")
@click.option(
    "--write-key", default=None, help="Collector write key (default: collector.write_keys[0])."
)
@click.option(
    "--webhook-secret",
    default=None,
    help="Zendesk signing secret (default: sources.zendesk.webhook_secret).",
)
@click.option(
    "--kind",
    type=click.Choice(["clickstream", "zendesk"]),
    default=None,
    help="What FILE holds (default: detected from its first line).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1, max=2500),
    default=100,
    show_default=True,
    help="Clickstream events per /v1/batch request.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds to wait for one answer.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def command(
    app: AppContext,
    file: Path,
    rate: float | None,
    url: str | None,
    write_key: str | None,
    webhook_secret: str | None,
    kind: Kind | None,
    batch_size: int,
    timeout: float,
    as_json: bool,
) -> None:
    """Send a simulator clickstream or Zendesk file to a running c360 API."""
    settings = app.config().settings
    if url is None:
        host = settings.api.host if settings.api.host not in ("0.0.0.0", "::") else "127.0.0.1"
        url = f"http://{host}:{settings.api.port}"
    kind = kind or detect_kind(file)
    stats = ReplayStats(kind=kind, url=url)
    started = time.monotonic()
    with httpx.Client(base_url=url, timeout=timeout) as client:
        sender = Sender(client, stats, rate)
        if kind == "clickstream":
            keys = settings.collector.write_keys
            key = write_key or (keys[0].get_secret_value() if keys else None)
            if not key:
                raise click.UsageError("no write key: pass --write-key or set collector.write_keys")
            budget = settings.collector.max_batch_bytes
            replay_clickstream(sender, file, key, batch_size, budget)
        else:
            configured = settings.sources.zendesk.webhook_secret
            secret = webhook_secret or (configured.get_secret_value() if configured else None)
            if not secret:
                raise click.UsageError(
                    "no webhook secret: pass --webhook-secret or set sources.zendesk.webhook_secret"
                )
            replay_zendesk(sender, file, secret)
    stats.seconds = round(time.monotonic() - started, 3)
    if as_json:
        click.echo(json.dumps(stats.as_dict()))
        return
    click.echo(
        f"{stats.kind}: {stats.sent} of {stats.events} events sent to {stats.url} in "
        f"{stats.seconds:.1f}s: {stats.accepted} accepted, {stats.rejected} rejected "
        f"({stats.requests} requests, {stats.retries} retries)"
    )
