"""The raw WebSocket client: a small asyncio client on hubbub's own framing.

It speaks frames, not envelopes (for envelopes, reconnects and recovery use
`hubbub.client.Client`); `hubbub.testing` and the test suite use it to drive a
server byte by byte. `WebSocketClient.recv()` waits at most 10 seconds by default
(`recv(timeout=None)` waits forever), so a test that expects a message that never
comes fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl as ssl_module
from collections import deque
from typing import Any
from urllib.parse import urlsplit

from hubbub.errors import ConnectionClosed, HandshakeError
from hubbub.transport.framing import (
    CLOSE_ABNORMAL,
    CLOSE_NORMAL,
    FAIL,
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    MessageReader,
    close_payload,
    encode_frame,
)
from hubbub.transport.handshake import accept_key


class _ClientProtocol(asyncio.Protocol):
    def __init__(self, max_message_size: int) -> None:
        self.transport: asyncio.Transport | None = None
        self.head = bytearray()
        self.head_done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.reader = MessageReader(max_message_size=max_message_size, masked=False)
        self.messages: deque[str | bytes] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self.close_code = CLOSE_ABNORMAL
        self.close_reason = ""
        self.close_sent = False
        self.pongs = 0
        self.upgraded = False
        self.more = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.upgraded:
            self.head += data
            self.more.set()
            end = self.head.find(b"\r\n\r\n")
            if end >= 0 and not self.head_done.done():
                self.head_done.set_result(bytes(self.head[:end]))
            return
        for event in self.reader.feed(data):
            kind = event[0]
            if kind == OP_TEXT or kind == OP_BINARY:
                self.messages.append(event[1])
                self._wake()
            elif kind == OP_PING:
                self._write(encode_frame(OP_PONG, event[1], mask=os.urandom(4)))
            elif kind == OP_PONG:
                self.pongs += 1
            elif kind == OP_CLOSE or kind == FAIL:
                self.close_code, self.close_reason = event[1], event[2]
                if kind == OP_CLOSE and not self.close_sent:
                    self.close_sent = True
                    self._write(encode_frame(OP_CLOSE, close_payload(event[1]), mask=os.urandom(4)))
                if not self.closed.done():
                    self.closed.set_result(None)
                self._wake()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.head_done.done():
            self.head_done.set_exception(ConnectionError("connection closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)
        self.more.set()
        self._wake()

    def upgrade(self) -> None:
        """The handshake succeeded: parse what followed it as WebSocket frames."""
        self.upgraded = True
        rest = bytes(self.head[self.head.find(b"\r\n\r\n") + 4 :])
        self.head = bytearray()
        if rest:
            self.data_received(rest)


class WebSocketClient:
    """An open client connection. Use `connect()` to make one."""

    def __init__(self, protocol: _ClientProtocol, status_headers: dict[str, str]) -> None:
        self._proto = protocol
        self.response_headers = status_headers
        self.subprotocol = status_headers.get("sec-websocket-protocol")

    @property
    def close_code(self) -> int | None:
        """The close code once the connection is closed, else None."""
        return self._proto.close_code if self._proto.closed.done() else None

    @property
    def close_reason(self) -> str:
        """The close reason (empty until closed)."""
        return self._proto.close_reason

    @property
    def pongs(self) -> int:
        """How many pongs arrived."""
        return self._proto.pongs

    async def send(self, data: str | bytes) -> None:
        """Send a text (str) or binary (bytes) message."""
        if self._proto.close_sent or self._proto.closed.done():
            raise ConnectionClosed("the connection is closed")
        opcode, payload = (OP_TEXT, data.encode("utf-8")) if isinstance(data, str) else (OP_BINARY, data)
        self._proto._write(encode_frame(opcode, payload, mask=os.urandom(4)))

    async def send_raw(self, data: bytes) -> None:
        """Write bytes to the socket as they are (for testing protocol errors)."""
        self._proto._write(data)

    async def ping(self, payload: bytes = b"") -> None:
        """Send a ping."""
        self._proto._write(encode_frame(OP_PING, payload, mask=os.urandom(4)))

    async def recv(self, timeout: float | None = 10.0) -> str | bytes:
        """The next message; raises TimeoutError after `timeout` seconds (10 by default, None
        waits forever), or ConnectionClosed once the connection is closed and drained."""
        proto = self._proto
        async with asyncio.timeout(timeout):
            while not proto.messages:
                if proto.closed.done():
                    raise ConnectionClosed(f"closed with {proto.close_code} {proto.close_reason!r}")
                proto.waiter = asyncio.get_running_loop().create_future()
                await proto.waiter
        return proto.messages.popleft()

    async def wait_closed(self, timeout: float | None = 10.0) -> int:
        """Wait until the server closes the connection; return the close code."""
        await asyncio.wait_for(asyncio.shield(self._proto.closed), timeout)
        transport = self._proto.transport
        if transport is not None:
            transport.close()
        return self._proto.close_code

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "", timeout: float = 5.0) -> None:
        """Run the close handshake."""
        proto = self._proto
        if not proto.close_sent and not proto.closed.done():
            proto.close_sent = True
            proto._write(encode_frame(OP_CLOSE, close_payload(code, reason), mask=os.urandom(4)))
        try:
            await asyncio.wait_for(asyncio.shield(proto.closed), timeout)
        finally:
            if proto.transport is not None:
                proto.transport.close()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        if self._proto.transport is not None:
            self._proto.transport.abort()

    def __aiter__(self) -> WebSocketClient:
        return self

    async def __anext__(self) -> str | bytes:
        try:
            return await self.recv(timeout=None)
        except ConnectionClosed:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> WebSocketClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


async def connect(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    subprotocols: list[str] | None = None,
    timeout: float = 10.0,
    max_message_size: int = 64 * 1024 * 1024,
    ssl: ssl_module.SSLContext | None = None,
) -> WebSocketClient:
    """Open a WebSocket connection to a ws:// or wss:// URL; raises HandshakeError if refused.

    `wss://` uses `ssl` (an `ssl.SSLContext`), or the system's default verifying context.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or parts.hostname is None:
        raise ValueError(f"only ws:// and wss:// URLs are supported, not {url!r}")
    secure = parts.scheme == "wss"
    if ssl is not None and not secure:
        raise ValueError(f"an SSL context was given for a ws:// URL: {url!r}")
    context = (ssl or ssl_module.create_default_context()) if secure else None
    port = parts.port or (443 if secure else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    lines = [
        f"GET {target} HTTP/1.1",
        f"host: {parts.hostname}:{port}",
        "upgrade: websocket",
        "connection: Upgrade",
        f"sec-websocket-key: {key}",
        "sec-websocket-version: 13",
    ]
    if subprotocols:
        lines.append(f"sec-websocket-protocol: {', '.join(subprotocols)}")
    lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        _, proto = await loop.create_connection(
            lambda: _ClientProtocol(max_message_size), parts.hostname, port, ssl=context
        )
        assert proto.transport is not None
        proto.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        head = await proto.head_done
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    response_headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        response_headers[name.strip().lower()] = value.strip()
    if status != 101 or response_headers.get("sec-websocket-accept") != accept_key(key):
        body = b""
        length = int(response_headers.get("content-length", "0") or 0)
        if length:
            body = await _read_body(proto, length, timeout)
        if proto.transport is not None:
            proto.transport.close()
        raise HandshakeError(status, response_headers, body)
    proto.upgrade()
    return WebSocketClient(proto, response_headers)


async def _read_body(proto: _ClientProtocol, length: int, timeout: float) -> bytes:
    end = proto.head.find(b"\r\n\r\n") + 4
    async with asyncio.timeout(timeout):
        while len(proto.head) - end < length and not proto.closed.done():
            proto.more.clear()
            await proto.more.wait()
    return bytes(proto.head[end : end + length])
