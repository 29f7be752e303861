"""A WebSocket client that completes its handshake and then stops reading."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from hubbub.testing import TestServer


@asynccontextmanager
async def stalled_client(
    server: TestServer, path: str, *, deflate: bool = False
) -> AsyncIterator[tuple[socket.socket, bytes]]:
    """A raw client with a tiny receive buffer that completes the handshake (offering
    permessage-deflate if asked) and then reads only when the test says so; yields the
    socket and any bytes read past the 101."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, (server.host, server.port))
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        request = (
            f"GET {path} HTTP/1.1\r\nhost: {server.host}\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
            f"sec-websocket-key: {key}\r\nsec-websocket-version: 13\r\n"
            + ("sec-websocket-extensions: permessage-deflate\r\n" if deflate else "")
            + "\r\n"
        )
        await loop.sock_sendall(sock, request.encode("latin-1"))
        received = b""
        async with asyncio.timeout(5):
            while b"\r\n\r\n" not in received:
                chunk = await loop.sock_recv(sock, 4096)
                assert chunk, "closed during the handshake"
                received += chunk
        head, _, rest = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        assert (b"permessage-deflate" in head) is deflate
        yield sock, rest
    finally:
        sock.close()
