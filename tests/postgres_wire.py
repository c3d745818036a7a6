"""A server speaking just enough of PostgreSQL's protocol to refuse a password, as a server
with password authentication does: the local test server trusts every connection, so a wrong
password cannot be had from it."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_SSL_REQUEST, _GSSENC_REQUEST = 80877103, 80877104
_CLEARTEXT_PASSWORD = 3


@contextmanager
def password_refusing_server(user: str) -> Iterator[int]:
    """A server on loopback (its port yielded) that answers one connection: it declines SSL
    and GSS encryption, asks for the password in clear text, reads it and refuses it with
    the server's error (FATAL, SQLSTATE 28P01) — or, when the client has no password to
    send and hangs up, with nothing."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve() -> None:
        with listener, listener.accept()[0] as conn:
            while True:  # the startup packet, after any encryption requests
                length, code = struct.unpack("!ii", _read(conn, 8))
                _read(conn, length - 8)
                if code not in (_SSL_REQUEST, _GSSENC_REQUEST):
                    break
                conn.sendall(b"N")
            conn.sendall(b"R" + struct.pack("!ii", 8, _CLEARTEXT_PASSWORD))
            try:
                _, length = struct.unpack("!ci", _read(conn, 5))  # the password message
                _read(conn, length - 4)
            except ConnectionError:
                return
            message = f'password authentication failed for user "{user}"'
            error = {b"S": "FATAL", b"V": "FATAL", b"C": "28P01", b"M": message}
            fields = b"".join(tag + text.encode() + b"\0" for tag, text in error.items())
            conn.sendall(b"E" + struct.pack("!i", len(fields) + 5) + fields + b"\0")

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        yield listener.getsockname()[1]
    finally:
        server.join(10)


def _read(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the client hung up")
        data += chunk
    return data
