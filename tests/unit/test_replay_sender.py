"""The replay sender's retries and its reading of the server's answers, on a scripted API."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from c360.errors import TerminalError, TransientError
from c360.pipeline import replay
from c360.pipeline.replay import MAX_ATTEMPTS, MAX_BACKOFF_SECONDS, ReplayStats, Sender

LINES = b'{"type": "track", "anonymousId": "a1", "event": "E"}\n'


def scripted(answers: list[httpx.Response | Exception]) -> tuple[httpx.Client, list[bytes]]:
    """A client whose server answers from ``answers`` in turn (the last one forever)."""
    seen: list[bytes] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.Client(base_url="http://api.test", transport=httpx.MockTransport(handle)), seen


def clicks(tmp_path: Path) -> Path:
    path = tmp_path / "clicks.jsonl"
    path.write_bytes(LINES)
    return path


def send(
    tmp_path: Path, answers: list[httpx.Response | Exception]
) -> tuple[ReplayStats, list[float]]:
    client, _ = scripted(answers)
    waits: list[float] = []
    stats = ReplayStats(kind="clickstream", url="http://api.test")
    with client:
        sender = Sender(client, stats, None, sleep=waits.append)
        replay.replay_clickstream(sender, clicks(tmp_path), "wk", 100, 500_000)
    return stats, waits


OK = httpx.Response(200, json={"success": True, "accepted": 1})


def test_429_and_503_with_retry_after_wait_what_the_server_asked(tmp_path: Path) -> None:
    answers: list[httpx.Response | Exception] = [
        httpx.Response(429, headers={"Retry-After": "2"}),
        httpx.Response(503, headers={"Retry-After": "3"}, json={"detail": "log down"}),
        httpx.Response(503, headers={"Retry-After": "600"}),
        OK,
    ]
    stats, waits = send(tmp_path, answers)
    assert waits == [2.0, 3.0, MAX_BACKOFF_SECONDS]  # a long Retry-After is capped
    assert (stats.requests, stats.retries, stats.accepted) == (4, 3, 1)


def test_connection_failures_back_off_with_jitter_then_succeed(tmp_path: Path) -> None:
    drop = httpx.ConnectError("refused")
    stats, waits = send(tmp_path, [drop, drop, OK])
    assert len(waits) == 2
    assert 0 <= waits[0] <= 0.5 and 0 <= waits[1] <= 1.0  # full jitter: [0, 0.5·2^(n-1)]
    assert (stats.requests, stats.retries, stats.accepted) == (3, 2, 1)


def test_a_server_still_busy_after_every_attempt_is_transient(tmp_path: Path) -> None:
    busy = httpx.Response(503, headers={"Retry-After": "1"}, json={"detail": "log down"})
    with pytest.raises(TransientError, match="answered 503: log down; try again later"):
        send(tmp_path, [busy])


def test_an_unreachable_server_is_transient_after_every_attempt(tmp_path: Path) -> None:
    with pytest.raises(
        TransientError, match=r"cannot reach http://api\.test/v1/batch: ConnectError"
    ):
        send(tmp_path, [httpx.ConnectError("refused")])


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (httpx.Response(500, json={"detail": "retrying will not help"}), "500: retrying will not"),
        (httpx.Response(401, json={"detail": "unknown write key"}), "401: unknown write key"),
        (httpx.Response(503, json={"detail": "the collector is disabled"}), "503: the collector"),
    ],
    ids=["500", "401", "503-without-retry-after"],
)
def test_answers_a_retry_cannot_fix_stop_at_once(
    tmp_path: Path, answer: httpx.Response, reason: str
) -> None:
    path = clicks(tmp_path)
    client, seen = scripted([answer])
    waits: list[float] = []
    stats = ReplayStats(kind="clickstream", url="http://api.test")
    with client, pytest.raises(TerminalError, match=reason):
        replay.replay_clickstream(
            Sender(client, stats, None, sleep=waits.append), path, "k", 10, 500_000
        )
    assert len(seen) == 1 and waits == []


def test_the_attempts_are_bounded(tmp_path: Path) -> None:
    path = clicks(tmp_path)
    client, seen = scripted([httpx.Response(429)])
    stats = ReplayStats(kind="clickstream", url="http://api.test")
    with client, pytest.raises(TransientError):
        replay.replay_clickstream(
            Sender(client, stats, None, sleep=lambda _: None), path, "k", 10, 500_000
        )
    assert len(seen) == MAX_ATTEMPTS
    assert (stats.requests, stats.retries) == (MAX_ATTEMPTS, MAX_ATTEMPTS - 1)
