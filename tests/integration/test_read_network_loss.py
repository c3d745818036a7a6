"""A hot read on a lost network fails within its bound, rather than after TCP's ~15 minutes;
a read that must connect anew to a server that does not answer, after the connect timeout.

The Profile API may read PostgreSQL on its event loop (``api.profile_reads = inline``), where a
read that waits holds every request of the process. The server's statement timeout cannot
help when the server is not reached, so the read connections carry TCP keepalives and a user
timeout (``stores/postgres.py`` ``bound_network_waits``). Here the network really goes: a
client in a private network namespace (``network_loss_client.py``) reads through its own
loopback, then blackholes it, and the next read — blocking or async — must fail as passing
(``StoreUnavailable``, the API's 503) after the bound, not before and not much later.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy.engine import make_url

from c360.stores import StoreUnavailable, open_store, postgres
from plugins.services import unavailable

CLIENT = Path(__file__).with_name("network_loss_client.py")
BOUND_S = 2.0  # the client's READ_NETWORK_TIMEOUT_MS
SLACK_S = 4.0  # keepalive probing's start and the kernel's timer granularity


def _namespace_or_unavailable() -> None:
    if sys.platform != "linux" or shutil.which("unshare") is None or shutil.which("ip") is None:
        unavailable("losing the network needs Linux's unshare (util-linux) and ip (iproute2)")
    tried = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True, check=False)
    if tried.returncode != 0:
        unavailable(f"a private network namespace needs root: unshare -n: {tried.stderr.strip()}")


def _unix_socket(store_url: str) -> str:
    """The path of the PostgreSQL server's Unix socket (the namespace's way out)."""
    store = open_store(store_url)
    try:
        rows = store.query(
            "SELECT current_setting('unix_socket_directories') AS folders, "
            "current_setting('port') AS port"
        )
    finally:
        store.dispose()
    folder = rows[0]["folders"].split(",")[0].strip()
    path = Path(folder) / f".s.PGSQL.{rows[0]['port']}"
    if not path.exists():
        unavailable(f"the PostgreSQL server has no Unix socket on this machine ({path})")
    return str(path)


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_read_on_a_lost_network_fails_within_the_bound(postgres_url: str, mode: str) -> None:
    _namespace_or_unavailable()
    store = open_store(postgres_url)
    try:
        store.migrate()
        store.publish_batch(
            dt.date(2025, 1, 1),
            {
                "person": pa.table({"person_id": ["p_1"], "email": ["p_1@x.com"]}),
                "identity_map": pa.table(
                    {"id_type": ["email"], "id_value": ["p_1@x.com"], "person_id": ["p_1"]}
                ),
                "batch_profile": pa.table({"person_id": ["p_1"], "spend": [1.0]}),
            },
        )
    finally:
        store.dispose()
    url = make_url(postgres_url)
    ran = subprocess.run(
        ["unshare", "-n", sys.executable, str(CLIENT), _unix_socket(postgres_url),
         str(url.database), str(url.username), mode, "p_1"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    outcome = json.loads(ran.stdout.strip().splitlines()[-1])
    before, after = outcome["before"], outcome["after"]
    assert before["found"] is True and before["seconds"] < BOUND_S, before
    assert after.get("error") == "StoreUnavailable", after
    assert BOUND_S - 0.5 <= after["seconds"] <= BOUND_S + SLACK_S, after


@pytest.fixture
def silent_server() -> Iterator[int]:
    """The port of a server that takes connections and never answers: its accept queue is
    full, so the kernel completes no new handshake and no one reads (a hung host)."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    queued = []
    for _ in range(3):
        waiting = socket.socket()
        waiting.setblocking(False)
        waiting.connect_ex(("127.0.0.1", port))
        queued.append(waiting)
    yield port
    for waiting in queued:
        waiting.close()
    listener.close()


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_read_connecting_to_a_server_that_does_not_answer_gives_up(
    silent_server: int, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libpq's own default waits for ever here; the store's connections give up after
    ``CONNECT_TIMEOUT_S``, a passing failure (the API's 503)."""
    monkeypatch.setattr(postgres, "CONNECT_TIMEOUT_S", 2)
    store = open_store(f"postgresql://postgres@127.0.0.1:{silent_server}/c360")

    async def read() -> object:
        if mode == "async":
            return await store.aprofile_and_consent("p_1")
        return store.profile_and_consent("p_1")

    started = time.monotonic()
    try:
        with pytest.raises(StoreUnavailable, match="timeout"):
            asyncio.run(read())
    finally:
        store.dispose()
    assert 1.5 <= time.monotonic() - started <= 2 + SLACK_S
