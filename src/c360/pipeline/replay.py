"""Replay a simulator file into a running c360 API, as the live sources would send it.

A clickstream file (Segment messages, JSON lines, gzip or plain) goes to the collector's
``/v1/batch`` with the write key as HTTP Basic user name; a Zendesk events file goes to
``/v1/webhooks/zendesk``, one signed request per event (as Zendesk sends them). The kind is
detected from the first line unless the caller says. Lines are sent in file order, paced at
``rate`` events per second, one request at a time (memory and load stay bounded).

What the server answers decides what happens (errors classified once, here, for the API as a
driver):

- 429, or 503 with ``Retry-After`` (the server's event log is failing for a while): retried by
  :func:`c360.retry.call_with_retries` after that delay (at most :data:`MAX_BACKOFF_SECONDS`),
  a connection failure with backoff and jitter, at most :data:`MAX_ATTEMPTS` tries in all;
  still failing then: a :class:`~c360.errors.TransientError`;
- 401/403 (wrong write key or signature), 503 without ``Retry-After`` (collector or webhook
  not configured) and 500 (the server cannot take the events, e.g. its event log refuses
  them: retrying will not help): the replay stops with a :class:`~c360.errors.TerminalError`
  carrying the server's reason;
- 400/413: the events are counted as rejected and the replay goes on.

Counts (:class:`ReplayStats`): events read, sent, accepted by the server (durable in its log),
rejected (by the server, or not JSON and never sent), requests and retries.

This module speaks HTTP to the API; it does not import it (the pipeline layer is below the API).
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import orjson

from c360.contracts.zendesk import EVENT_PREFIX, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from c360.errors import DataError, TerminalError, TransientError
from c360.retry import call_with_retries, parse_retry_after
from c360.sources.files import open_bytes

Kind = Literal["clickstream", "zendesk"]
MAX_ATTEMPTS = 6
BACKOFF_BASE_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 5.0
CLICKSTREAM_PATH = "/v1/batch"
ZENDESK_PATH = "/v1/webhooks/zendesk"


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
        if isinstance(kind, str) and kind.startswith(EVENT_PREFIX):
            return "zendesk"
        return "clickstream"
    raise DataError(f"{path} has no events")


class _ComeBackLater(TransientError):
    """A 429, or a 503 with ``Retry-After``: the server asks for the request again later."""

    def __init__(self, response: httpx.Response) -> None:
        delay = parse_retry_after(response.headers.get("retry-after"))
        super().__init__(f"HTTP {response.status_code}", retry_after=delay)
        self.response = response


def _asks_to_come_back(response: httpx.Response) -> bool:
    # a 503 without Retry-After is a server that is not set up (e.g. no write key): waiting
    # will not help
    status = response.status_code
    return status == 429 or (status == 503 and "retry-after" in response.headers)


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
        """POST, retrying 429/503+Retry-After and connection failures (see the module
        docstring); ``headers`` is called per attempt. After the last attempt the last answer
        is returned (a connection failure raises :class:`TransientError`)."""

        def attempt() -> httpx.Response:
            self.stats.requests += 1
            try:
                response = self.client.post(path, content=content, headers=headers())
            except httpx.TransportError as exc:
                raise TransientError(
                    f"cannot reach {self.client.base_url}{path}: {exc.__class__.__name__}"
                ) from None
            if _asks_to_come_back(response):
                raise _ComeBackLater(response)
            return response

        def count(error: BaseException, failures: int, delay: float) -> None:
            self.stats.retries += 1

        try:
            return call_with_retries(
                attempt,
                attempts=MAX_ATTEMPTS,
                base=BACKOFF_BASE_SECONDS,
                cap=MAX_BACKOFF_SECONDS,
                retry_after_cap=MAX_BACKOFF_SECONDS,
                on_retry=count,
                sleep=self.sleep,
            )
        except _ComeBackLater as last:
            return last.response


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
    elif status == 500:  # the server cannot take the events: retrying will not help
        raise TerminalError(f"{what} answered {status}: {_detail(response)}")
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
        response = sender.post(CLICKSTREAM_PATH, body, lambda: headers)
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
        response = sender.post(ZENDESK_PATH, line, headers)
        stats.sent += 1
        fix = "check --webhook-secret / sources.zendesk.webhook_secret and the clocks"
        _count(stats, response, 1, "the webhook", fix)


@dataclass(frozen=True)
class ClickstreamTarget:
    """Where and how clickstream batches go: the write key and the collector's batch limit."""

    write_key: str
    batch_size: int
    max_batch_bytes: int


def replay_file(
    path: Path,
    url: str,
    kind: Kind,
    *,
    clickstream: ClickstreamTarget | None = None,
    webhook_secret: str | None = None,
    rate: float | None = None,
    timeout: float = 30.0,
) -> ReplayStats:
    """Send ``path`` (of ``kind``) to the API at ``url``; the counts, with the seconds taken.

    A clickstream replay needs ``clickstream`` (the write key), a Zendesk one the
    ``webhook_secret``.
    """
    stats = ReplayStats(kind=kind, url=url)
    started = time.monotonic()
    with httpx.Client(base_url=url, timeout=timeout) as client:
        sender = Sender(client, stats, rate)
        if kind == "clickstream":
            if clickstream is None:
                raise ValueError("a clickstream replay needs its write key")
            replay_clickstream(
                sender,
                path,
                clickstream.write_key,
                clickstream.batch_size,
                clickstream.max_batch_bytes,
            )
        else:
            if webhook_secret is None:
                raise ValueError("a Zendesk replay needs the webhook secret")
            replay_zendesk(sender, path, webhook_secret)
    stats.seconds = round(time.monotonic() - started, 3)
    return stats
