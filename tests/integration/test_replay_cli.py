"""`c360 replay`: a simulated world's clickstream and Zendesk files into a running API."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from c360.api import collector
from c360.api.app import create_app
from c360.api.server import serve_in_thread
from c360.cli.main import cli
from c360.config import Settings
from c360.errors import TerminalError, TransientError
from c360.logs import Record, open_log
from c360.simulator import generate

KEY = "wk_replay"
SECRET = "zendesk-signing-secret"


def read_topic(settings: Settings, topic: str) -> list[Record]:
    with open_log(settings.log.url, settings.log.partitions) as log:
        out: list[Record] = []
        for partition in range(log.partitions(topic)):
            out.extend(log.read(topic, partition, 0, 1_000_000))
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, str]]:
    root = tmp_path_factory.mktemp("replay")
    settings = Settings.model_validate(
        {
            "log": {"url": f"local://{root}/log", "partitions": 3},
            "serving": {"url": f"sqlite:///{root}/serving.db"},
            "collector": {"write_keys": [KEY]},
            "sources": {
                "mysql": {"url": f"sqlite:///{root}/shop.db"},
                "clickstream": {"path": str(root / "clickstream.jsonl.gz")},
                "zendesk": {"path": str(root / "zendesk.jsonl"), "webhook_secret": SECRET},
                "mailchimp": {"dir": str(root / "mailchimp")},
            },
            "simulator": {"customers": 30, "days": 14, "truth_dir": str(root / "truth")},
        }
    )
    generate(settings)
    with serve_in_thread(create_app(settings)) as url:
        yield settings, url


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str | None]:
    monkeypatch.chdir(tmp_path)  # no stray ./c360.toml
    return {"C360_CONFIG": None}


def replay(args: list[str], env: dict[str, str | None]) -> dict[str, object]:
    result = CliRunner().invoke(cli, ["replay", *args, "--json"], env=env)
    assert result.exit_code == 0, (result.output, result.exception)
    stats: dict[str, object] = json.loads(result.stdout)
    return stats


def test_the_clickstream_file_lands_in_the_log_line_for_line(
    world: tuple[Settings, str], env: dict[str, str | None]
) -> None:
    settings, url = world
    path = Path(settings.sources.clickstream.path)
    lines = [line for line in gzip.decompress(path.read_bytes()).splitlines() if line.strip()]
    assert lines
    rate = float(len(lines))  # about one second of sending, paced
    stats = replay([str(path), "--url", url, "--write-key", KEY, "--rate", str(rate)], env)

    assert stats | {"seconds": 0, "requests": 0} == {
        "kind": "clickstream",
        "url": url,
        "events": len(lines),
        "sent": len(lines),
        "accepted": len(lines),
        "rejected": 0,
        "requests": 0,
        "retries": 0,
        "seconds": 0,
    }
    assert float(str(stats["seconds"])) >= 0.8  # paced, not a burst
    records = read_topic(settings, "clickstream")
    assert len(records) == len(lines)
    sent_ids = {orjson.loads(line)["messageId"] for line in lines}
    assert {orjson.loads(r.value)["messageId"] for r in records} == sent_ids


def test_the_zendesk_file_is_sent_signed_one_event_a_request(
    world: tuple[Settings, str], env: dict[str, str | None]
) -> None:
    settings, url = world
    path = Path(settings.sources.zendesk.path)
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    assert lines
    # the secret comes from the configuration this time
    env = {**env, "C360_SOURCES_ZENDESK_WEBHOOK_SECRET": SECRET}
    stats = replay([str(path), "--url", url, "--rate", "500"], env)

    assert stats["kind"] == "zendesk"
    assert (stats["sent"], stats["accepted"], stats["rejected"]) == (len(lines), len(lines), 0)
    assert stats["requests"] == len(lines)
    records = read_topic(settings, "support")
    assert sorted(r.value for r in records) == sorted(lines)


def test_a_wrong_write_key_stops_the_replay_with_the_reason(
    world: tuple[Settings, str], env: dict[str, str | None]
) -> None:
    settings, url = world
    path = settings.sources.clickstream.path
    result = CliRunner().invoke(
        cli,
        ["replay", path, "--url", url, "--write-key", "wrong", "--kind", "clickstream"],
        env=env,
    )
    assert isinstance(result.exception, TerminalError)
    assert "401" in str(result.exception) and "unknown write key" in str(result.exception)


Append = Callable[[str, Sequence[tuple[str, bytes]]], list[tuple[int, int]]]


@contextmanager
def api_with_log(
    settings: Settings, tmp_path: Path, wrap: Callable[[Append], Append]
) -> Iterator[tuple[Settings, str]]:
    """An API on a log of its own whose ``append`` is ``wrap(the real append)``."""
    target = settings.model_copy(
        update={"log": settings.log.model_copy(update={"url": f"local://{tmp_path}/log"})}
    )
    log = open_log(target.log.url, target.log.partitions)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(log, "append", wrap(log.append))
        try:
            with serve_in_thread(create_app(target, log=log)) as url:
                yield target, url
        finally:
            log.close()


def test_a_log_failure_is_retried_after_retry_after(
    world: tuple[Settings, str],
    env: dict[str, str | None],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings, _ = world
    monkeypatch.setattr(collector, "RETRY_AFTER_SECONDS", 0)
    failures = [TransientError("disk busy")]

    def flaky(real_append: Append) -> Append:
        def append(topic: str, records: Sequence[tuple[str, bytes]]) -> list[tuple[int, int]]:
            if failures:
                raise failures.pop()
            return real_append(topic, records)

        return append

    path = Path(settings.sources.clickstream.path)
    with api_with_log(settings, tmp_path, flaky) as (target, url):
        stats = replay([str(path), "--url", url, "--write-key", KEY], env)
    assert stats["retries"] == 1
    assert stats["accepted"] == stats["events"] == len(read_topic(target, "clickstream"))


def test_a_log_that_refuses_the_events_stops_the_replay_at_once_with_the_reason(
    world: tuple[Settings, str], env: dict[str, str | None], tmp_path: Path
) -> None:
    settings, _ = world
    calls: list[str] = []

    def refusing(real_append: Append) -> Append:
        def append(topic: str, records: Sequence[tuple[str, bytes]]) -> list[tuple[int, int]]:
            calls.append(topic)
            raise TerminalError(f"{topic}: topic authorization failed (check the Kafka ACLs)")

        return append

    started = time.monotonic()
    with api_with_log(settings, tmp_path, refusing) as (_, url):
        result = CliRunner().invoke(
            cli,
            ["replay", settings.sources.clickstream.path, "--url", url, "--write-key", KEY],
            env=env,
        )
    assert isinstance(result.exception, TerminalError)
    assert "the collector answered 500" in str(result.exception)
    assert "retrying will not help" in str(result.exception)
    assert calls == ["clickstream"]  # one request, not retried
    assert time.monotonic() - started < 5


def test_an_api_without_a_webhook_secret_stops_the_replay_at_once(
    world: tuple[Settings, str], env: dict[str, str | None], tmp_path: Path
) -> None:
    settings, _ = world
    bare = Settings.model_validate({"serving": {"url": f"sqlite:///{tmp_path}/serving.db"}})
    started = time.monotonic()
    with serve_in_thread(create_app(bare)) as url:
        result = CliRunner().invoke(
            cli,
            ["replay", settings.sources.zendesk.path, "--url", url, "--webhook-secret", "s"],
            env=env,
        )
    assert isinstance(result.exception, TerminalError)
    assert "webhook secret not configured" in str(result.exception)
    assert time.monotonic() - started < 5  # not retried
