"""A Profile API store client whose network is lost mid-run; ``test_read_network_loss.py``
runs it in a private network namespace (``unshare -n``), as root.

The namespace has its own loopback, where this process forwards TCP to the PostgreSQL server's
Unix socket (a path: it crosses namespaces), and reads through it with one of the store's hot
reads, blocking or async. Then it loses the network: a routing rule blackholes the loopback, so the
connections' packets go nowhere and no one answers, not even TCP — as when a cable is cut or a
host vanishes without closing its connections. The read is timed again until it fails; one JSON
line says how each ended and after how long.

    unshare -n python network_loss_client.py SOCKET DATABASE USER sync|async PERSON_ID
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from c360.errors import C360Error
from c360.stores import ServingStore, open_store, postgres

NETWORK_TIMEOUT_MS = 2_000  # the stores' bound, lowered so the test takes seconds
# The namespace's routing, lost: its table of local addresses moved behind a rule that
# blackholes the loopback (the default rule 0 cannot be ordered after another).
LOSE_THE_NETWORK = [
    ["ip", "rule", "add", "pref", "100", "lookup", "local"],
    ["ip", "rule", "del", "pref", "0"],
    ["ip", "rule", "add", "pref", "10", "to", "127.0.0.0/8", "blackhole"],
]


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _forward(listener: socket.socket, unix_path: str) -> None:
    """Each TCP connection to ``listener`` joined to a new one to the server's Unix socket."""
    while True:
        client, _ = listener.accept()
        server = socket.socket(socket.AF_UNIX)
        server.connect(unix_path)
        for source, sink in ((client, server), (server, client)):
            threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


async def _timed(read: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    """How ``read`` ended (what it found, or the store's error) and after how long."""
    started = time.monotonic()
    try:
        found = await read()
    except C360Error as error:
        outcome: dict[str, Any] = {"error": type(error).__name__}
    else:
        outcome = {"found": found is not None}
    return {**outcome, "seconds": round(time.monotonic() - started, 2)}


async def _run(store: ServingStore, mode: str, person_id: str) -> dict[str, Any]:
    """A read in ``mode`` (``sync``: the blocking call, ``async``), on the network and then
    after it was lost: one mode a run, so the read that waits has a connection that TCP has
    not yet given up on."""

    async def read() -> Any:
        if mode == "async":
            return await store.aprofile_and_consent(person_id)
        return store.profile_and_consent(person_id)

    before = await _timed(read)  # the read's connection made, on the network
    for command in LOSE_THE_NETWORK:
        subprocess.run(command, check=True)
    return {"before": before, "after": await _timed(read)}


def main() -> None:
    unix_path, database, user, mode, person_id = sys.argv[1:6]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    threading.Thread(target=_forward, args=(listener, unix_path), daemon=True).start()
    postgres.READ_NETWORK_TIMEOUT_MS = NETWORK_TIMEOUT_MS
    postgres.READ_KEEPALIVE_IDLE_S = 1
    store = open_store(f"postgresql://{user}@127.0.0.1:{port}/{database}")
    try:
        print(json.dumps(asyncio.run(_run(store, mode, person_id))), flush=True)
    finally:
        with contextlib.suppress(Exception):  # its connections are on the lost network
            store.dispose()


if __name__ == "__main__":
    main()
