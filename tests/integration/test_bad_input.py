"""Every kind of bad input gets its documented answer, and the server keeps serving others.

Each test has a bystander: a client connected before the bad one, with messages in
flight. `Guard.check()` ends every test: the bystander gets every echo in order,
fresh clients (websockets, aiohttp) and an HTTP route still work, nothing a client
received contains traceback text, and nothing crashed in the server's logs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosedError

from hubbub import App, Event, Request
from hubbub.client import WebSocketClient
from hubbub.testing import TestServer, serve_app, wait_for
from hubbub.transport.deflate import DeflateParams, Inflater
from hubbub.transport.framing import (
    FAIL,
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    MessageReader,
    close_payload,
    encode_frame,
)

MAX_MESSAGE = 4096
MAX_HEAD = 2048
MAX_BODY = 4096
HANDSHAKE_TIMEOUT = 0.5
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
FIN, RSV1, RSV2, RSV3 = 0x80, 0x40, 0x20, 0x10
TRACEBACK_MARKERS = (b"Traceback", b'File "', b"Error:", b".py")


def make_app() -> App:
    """An echo route, a JSON route and a health route, with small limits."""
    app = App(
        max_message_size=MAX_MESSAGE,
        max_request_head=MAX_HEAD,
        max_request_body=MAX_BODY,
        handshake_timeout=HANDSHAKE_TIMEOUT,
        compression="shared",
        close_timeout=2.0,
        ping_interval=None,
    )
    echo = app.websocket("/echo")

    @echo.on_message
    async def echo_back(event: Event) -> None:
        await event.send(event.data)  # type: ignore[arg-type]

    @app.post("/sum")
    async def add(request: Request) -> dict[str, Any]:
        return {"sum": sum(request.json()["numbers"])}

    @app.get("/health")
    async def health(request: Request) -> dict[str, Any]:
        return {"ok": True}

    return app


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0, masked: bool = True) -> bytes:
    """A client frame built with hubbub's encoder, then given any FIN/RSV bits (valid or not)."""
    data = bytearray(encode_frame(opcode, payload, mask=os.urandom(4) if masked else None))
    data[0] = (FIN if fin else 0) | rsv | opcode
    return bytes(data)


def header_only(opcode: int, length: int) -> bytes:
    """The header of a masked final frame declaring `length` bytes (64-bit length form)."""
    return bytes((FIN | opcode, 0x80 | 127)) + length.to_bytes(8, "big") + os.urandom(4)


def split_http(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, lower-cased headers, body) of one HTTP response."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, f"no complete HTTP response in {raw[:200]!r}"
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", len(body)))
    return int(status_line.split(" ", 2)[1]), headers, body[:length]


class RawSocket:
    """A TCP connection to the server for hand-made bytes."""

    def __init__(self, guard: Guard, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.guard = guard
        self.reader = reader
        self.writer = writer
        self.inflater: Inflater | None = None

    def send(self, data: bytes) -> None:
        """Write bytes as they are."""
        self.writer.write(data)

    async def read_to_eof(self, timeout: float = 5.0) -> bytes:
        """Everything the server sends until it closes its side."""
        async with asyncio.timeout(timeout):
            data = await self.reader.read()
        return self.guard.saw(data)

    async def http_reply(self, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
        """Read until the server closes, and parse its one HTTP response."""
        return split_http(await self.read_to_eof(timeout))

    async def upgrade(self, extensions: str | None = None) -> dict[str, str]:
        """Complete a WebSocket handshake on /echo; return the 101 response headers."""
        lines = [
            "GET /echo HTTP/1.1",
            "host: 127.0.0.1",
            "upgrade: websocket",
            "connection: Upgrade",
            f"sec-websocket-key: {KEY}",
            "sec-websocket-version: 13",
        ]
        if extensions is not None:
            lines.append(f"sec-websocket-extensions: {extensions}")
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        async with asyncio.timeout(5):
            head = await self.reader.readuntil(b"\r\n\r\n")
        status, headers, _ = split_http(self.guard.saw(head))
        assert status == 101
        if "sec-websocket-extensions" in headers:
            self.inflater = Inflater(DeflateParams())  # keeping context is safe whatever the server does
        return headers

    async def server_frames(self, timeout: float = 5.0) -> list[Any]:
        """Every event the server sent until it closed the connection, parsed as a client would."""
        reader = MessageReader(max_message_size=1 << 20, masked=False, inflater=self.inflater)
        events = reader.feed(await self.read_to_eof(timeout))
        assert all(event[0] != FAIL for event in events), f"server sent a malformed frame: {events!r}"
        return events

    async def expect_close(self, code: int) -> str:
        """Assert the server's last frame is a close with `code` and that it then closed; return the reason."""
        events = await self.server_frames()
        assert events, "the server closed without a close frame"
        assert events[-1][0] == OP_CLOSE, f"expected a close frame, got {events[-1]!r}"
        assert events[-1][1] == code, f"expected close code {code}, got {events[-1][1:]!r}"
        reason: str = events[-1][2]
        return reason

    def close(self) -> None:
        """Drop the socket."""
        self.writer.close()


class Guard:
    """The bystander and the checks that end every test."""

    def __init__(self, server: TestServer, caplog: pytest.LogCaptureFixture) -> None:
        self.server = server
        self.caplog = caplog
        self.bystander: WebSocketClient | None = None
        self.allowed_errors: tuple[str, ...] = ()
        self.checked = False
        self._received: list[bytes] = []
        self._sent: list[str] = []
        self._sockets: list[RawSocket] = []

    async def start(self) -> None:
        """Connect the bystander and leave messages in flight before the bad input."""
        self.bystander = await self.server.connect("/echo")
        for i in range(10):
            await self._say(f"before-{i}")

    async def _say(self, text: str) -> None:
        assert self.bystander is not None
        await self.bystander.send(text)
        self._sent.append(text)

    def saw(self, data: bytes) -> bytes:
        """Remember bytes a client received (checked for traceback text)."""
        self._received.append(data)
        return data

    async def raw(self) -> RawSocket:
        """A new raw TCP connection to the server."""
        reader, writer = await asyncio.open_connection(self.server.host, self.server.port)
        sock = RawSocket(self, reader, writer)
        self._sockets.append(sock)
        return sock

    async def round_trip(self, text: str) -> None:
        """The bystander sends `text` and gets every pending echo, `text` last."""
        assert self.bystander is not None
        await self._say(text)
        echoed = [await self.bystander.recv(timeout=5) for _ in self._sent]
        assert echoed == self._sent
        self._sent = []

    async def check(self) -> None:
        """The server still serves everyone else, correctly and without leaking internals."""
        assert self.bystander is not None
        for i in range(10):
            await self._say(f"after-{i}")
        echoed = [await self.bystander.recv(timeout=5) for _ in self._sent]
        assert echoed == self._sent
        assert self.bystander.close_code is None
        async with ws_connect(self.server.url("/echo"), compression=None) as fresh:
            await fresh.send("fresh websockets client")
            assert await asyncio.wait_for(fresh.recv(), 5) == "fresh websockets client"
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(self.server.url("/echo")) as ws:
                await ws.send_bytes(b"fresh aiohttp client")
                assert await ws.receive_bytes(timeout=5) == b"fresh aiohttp client"
            async with session.get(self.server.http_url("/health")) as response:
                assert response.status == 200
                assert await response.json() == {"ok": True}
        for data in self._received:
            for marker in TRACEBACK_MARKERS:
                assert marker not in data, f"{marker!r} reached a client: {data[:300]!r}"
        crashes = [
            record
            for record in self.caplog.records
            if record.levelno >= logging.ERROR
            and record.name.split(".")[0] in ("asyncio", "hubbub")
            and not any(text in record.getMessage() for text in self.allowed_errors)
        ]
        assert not crashes, [record.getMessage() for record in crashes]
        self.checked = True

    async def close(self) -> None:
        """Release every client."""
        for sock in self._sockets:
            sock.close()
        if self.bystander is not None:
            self.bystander.abort()


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    async with serve_app(make_app()) as running:
        yield running


@pytest.fixture
async def guard(server: TestServer, caplog: pytest.LogCaptureFixture) -> AsyncIterator[Guard]:
    watch = Guard(server, caplog)
    await watch.start()
    yield watch
    try:
        if not watch.checked:  # every test gets the health check, even one that forgot it
            await watch.check()
    finally:
        await watch.close()


# ---- WebSocket framing: raw sockets ----------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(frame(OP_TEXT, b"x", rsv=RSV2), id="rsv2"),
        pytest.param(frame(OP_TEXT, b"x", rsv=RSV3), id="rsv3"),
        pytest.param(frame(OP_TEXT, b"x", rsv=RSV1), id="rsv1-without-deflate"),
        pytest.param(frame(3, b"x"), id="opcode-3"),
        pytest.param(frame(0xB, b"x"), id="opcode-0xB"),
        pytest.param(frame(OP_TEXT, b"x", masked=False), id="unmasked-client-frame"),
        pytest.param(frame(OP_PING, b"x", fin=False), id="fragmented-ping"),
        pytest.param(frame(OP_PING, b"x" * 126), id="ping-over-125"),
        pytest.param(frame(OP_CONT, b"x"), id="continuation-without-start"),
        pytest.param(frame(OP_TEXT, b"a", fin=False) + frame(OP_BINARY, b"b"), id="new-message-in-fragmented"),
        pytest.param(frame(OP_CLOSE, b"\x03"), id="close-with-1-byte-body"),
    ],
)
async def test_malformed_frames_close_with_1002(guard: Guard, data: bytes) -> None:
    sock = await guard.raw()
    await sock.upgrade()
    sock.send(frame(OP_TEXT, b"valid first"))
    sock.send(data)
    events = await sock.server_frames()
    assert events[0] == (OP_TEXT, "valid first")  # what came before the error was served
    assert events[-1][:2] == (OP_CLOSE, 1002)
    await guard.check()


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 1016, 2000, 5000])
async def test_invalid_close_code_from_client_closes_with_1002(guard: Guard, code: int) -> None:
    sock = await guard.raw()
    await sock.upgrade()
    sock.send(frame(OP_CLOSE, code.to_bytes(2, "big") + b"bye"))
    await sock.expect_close(1002)
    await guard.check()


async def test_valid_close_is_echoed_with_its_code(guard: Guard) -> None:
    sock = await guard.raw()
    await sock.upgrade()
    sock.send(frame(OP_CLOSE, close_payload(4321, "done")))
    await sock.expect_close(4321)
    await guard.check()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(frame(OP_TEXT, b"bad \xff"), id="whole-frame"),
        pytest.param(frame(OP_TEXT, b"ok ", fin=False) + frame(OP_CONT, b"\xc3\x28"), id="second-fragment"),
        pytest.param(frame(OP_TEXT, b"cut \xe2", fin=False) + frame(OP_CONT, b"\x82"), id="truncated-at-end"),
        pytest.param(frame(OP_CLOSE, close_payload(1000) + b"\xc0\xaf"), id="close-reason"),
    ],
)
async def test_invalid_utf8_closes_with_1007(guard: Guard, data: bytes) -> None:
    sock = await guard.raw()
    await sock.upgrade()
    sock.send(data)
    await sock.expect_close(1007)
    await guard.check()


async def test_invalid_utf8_is_caught_before_the_frame_is_complete(guard: Guard) -> None:
    sock = await guard.raw()
    await sock.upgrade()
    payload = b"valid start \xff" + b"x" * 3000
    data = frame(OP_TEXT, payload)
    sock.send(data[:30])  # header, mask and the invalid byte; the other 3,000 bytes are never sent
    await sock.expect_close(1007)
    await guard.check()


async def test_message_over_max_size_closes_with_1009(guard: Guard) -> None:
    sock = await guard.raw()
    await sock.upgrade()
    sock.send(frame(OP_BINARY, b"x" * MAX_MESSAGE))  # exactly the limit is fine
    sock.send(frame(OP_BINARY, b"y" * (MAX_MESSAGE + 1)))
    events = await sock.server_frames()
    assert events[0] == (OP_BINARY, b"x" * MAX_MESSAGE)
    assert events[-1][:2] == (OP_CLOSE, 1009)
    await guard.check()


async def test_fragmented_message_over_max_size_closes_with_1009(guard: Guard) -> None:
    sock = await guard.raw()
    await sock.upgrade()
    piece = b"z" * (MAX_MESSAGE // 3)
    sock.send(frame(OP_TEXT, piece, fin=False))
    for _ in range(3):
        sock.send(frame(OP_CONT, piece, fin=False))
    sock.send(frame(OP_CONT, b""))
    await sock.expect_close(1009)
    await guard.check()


async def test_compressed_message_over_max_size_closes_with_1009(guard: Guard) -> None:
    sock = await guard.raw()
    headers = await sock.upgrade(extensions="permessage-deflate; client_max_window_bits")
    assert headers["sec-websocket-extensions"].startswith("permessage-deflate")
    small = encode_frame(OP_TEXT, b"a" * 500, mask=os.urandom(4))
    sock.send(small)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = packer.compress(b"\x00" * 1_000_000) + packer.flush(zlib.Z_SYNC_FLUSH)
    assert len(bomb) < 10_000
    sock.send(encode_frame(OP_BINARY, bomb[:-4], rsv1=True, mask=os.urandom(4)))
    events = await sock.server_frames()
    assert events[0] == (OP_TEXT, "a" * 500)  # the echo came back compressed and decoded fine
    assert events[-1][:2] == (OP_CLOSE, 1009)
    await guard.check()


async def test_huge_64bit_length_closes_with_1009_without_allocating(guard: Guard) -> None:
    sock = await guard.raw()
    await sock.upgrade()
    tracemalloc.start()
    try:
        sock.send(header_only(OP_BINARY, 2**62))
        await sock.expect_close(1009)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 1024 * 1024
    await guard.check()


async def test_data_after_the_handshake_in_the_same_packet_is_checked(guard: Guard) -> None:
    sock = await guard.raw()
    request = (
        "GET /echo HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
        f"sec-websocket-key: {KEY}\r\nsec-websocket-version: 13\r\n\r\n"
    ).encode()
    sock.send(request + frame(OP_TEXT, b"early") + frame(OP_TEXT, b"\xff"))
    async with asyncio.timeout(5):
        head = await sock.reader.readuntil(b"\r\n\r\n")
    assert split_http(guard.saw(head))[0] == 101
    events = await sock.server_frames()
    assert events[0] == (OP_TEXT, "early")
    assert events[-1][:2] == (OP_CLOSE, 1007)
    await guard.check()


# ---- WebSocket framing: real client libraries --------------------------------------------------------


async def test_websockets_client_oversized_message_gets_1009(guard: Guard) -> None:
    async with ws_connect(guard.server.url("/echo"), compression=None) as ws:
        await ws.send("x" * (MAX_MESSAGE + 1))
        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1009
        guard.saw(ws.close_reason.encode() if ws.close_reason else b"")
    await guard.check()


async def test_websockets_client_compressed_oversized_message_gets_1009(guard: Guard) -> None:
    async with ws_connect(guard.server.url("/echo")) as ws:
        assert "permessage-deflate" in (ws.response.headers.get("sec-websocket-extensions") or "")
        await ws.send("a" * 200)
        assert await asyncio.wait_for(ws.recv(), 5) == "a" * 200
        await ws.send("b" * 1_000_000)  # a few KB on the wire, 1 MB inflated
        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1009
    await guard.check()


async def test_websockets_client_fragmented_oversized_message_gets_1009(guard: Guard) -> None:
    async with ws_connect(guard.server.url("/echo"), compression=None) as ws:
        await ws.send([b"f" * 2000, b"g" * 2000, b"h" * 2000])
        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1009
    await guard.check()


async def test_websockets_client_invalid_utf8_text_gets_1007(guard: Guard) -> None:
    async with ws_connect(guard.server.url("/echo"), compression=None) as ws:
        await ws.send(b"\xed\xa0\x80", text=True)
        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1007
    await guard.check()


async def test_aiohttp_client_oversized_compressed_message_gets_1009(guard: Guard) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(guard.server.url("/echo"), compress=15) as ws:
        await ws.send_str("c" * 100_000)
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert msg.data == 1009
        guard.saw(str(msg.extra).encode())
    await guard.check()


async def test_aiohttp_client_continuation_without_start_gets_1002(guard: Guard) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(guard.server.url("/echo")) as ws:
        await ws.send_frame(b"orphan", aiohttp.WSMsgType.CONTINUATION)
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert msg.data == 1002
        guard.saw(str(msg.extra).encode())
    await guard.check()


async def test_aiohttp_client_invalid_close_code_gets_1002(guard: Guard) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(guard.server.url("/echo")) as ws:
        await ws.close(code=999)
        assert ws.close_code == 1002
    await guard.check()


async def test_aiohttp_client_invalid_utf8_text_gets_1007(guard: Guard) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(guard.server.url("/echo")) as ws:
        await ws.send_frame(b"\xc3\x28", aiohttp.WSMsgType.TEXT)
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert msg.data == 1007
    await guard.check()


# ---- HTTP and the opening handshake ---------------------------------------------------------------------


def upgrade_request(*, method: str = "GET", version: str | None = "13", key: str | None = KEY) -> bytes:
    """An upgrade request to /echo with a chosen method, version and key (None leaves the header out)."""
    lines = [f"{method} /echo HTTP/1.1", "host: 127.0.0.1", "upgrade: websocket", "connection: Upgrade"]
    if version is not None:
        lines.append(f"sec-websocket-version: {version}")
    if key is not None:
        lines.append(f"sec-websocket-key: {key}")
    if method != "GET":
        lines.append("content-length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def assert_json_error(headers: dict[str, str], body: bytes) -> str:
    """The body is hubbub's JSON error; return its message."""
    assert headers.get("content-type") == "application/json"
    parsed = orjson.loads(body)
    assert set(parsed) == {"error"}
    message: str = parsed["error"]
    return message


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"GARBAGE\r\n\r\n", id="garbage"),
        pytest.param(b"GET / HTTP/1.1\r\nbad header line\r\n\r\n", id="header-without-colon"),
        pytest.param(b"GET / HTTP/9.9\r\nhost: x\r\n\r\n", id="bad-version"),
        pytest.param(b"GET /\x00 HTTP/1.1\r\nhost: x\r\n\r\n", id="nul-in-target"),
        pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", id="tls-client-hello"),
        pytest.param(b"POST /sum HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", id="bad-chunk-size"),
        pytest.param(b"POST /sum HTTP/1.1\r\nhost: x\r\ncontent-length: -5\r\n\r\n", id="negative-length"),
    ],
)
async def test_malformed_http_gets_400(guard: Guard, data: bytes) -> None:
    sock = await guard.raw()
    sock.send(data)
    status, headers, body = await sock.http_reply()
    assert status == 400
    assert assert_json_error(headers, body)
    await guard.check()


@pytest.mark.parametrize("version", ["8", "12", "14", "", None])
async def test_wrong_websocket_version_gets_426(guard: Guard, version: str | None) -> None:
    sock = await guard.raw()
    sock.send(upgrade_request(version=version))
    status, headers, body = await sock.http_reply()
    assert status == 426
    assert headers["sec-websocket-version"] == "13"
    assert assert_json_error(headers, body)
    await guard.check()


@pytest.mark.parametrize("key", [None, "", "not base64!", "c2hvcnQ=", "dGhpcyBrZXkgaXMgbXVjaCB0b28gbG9uZw=="])
async def test_missing_or_invalid_key_gets_400(guard: Guard, key: str | None) -> None:
    sock = await guard.raw()
    sock.send(upgrade_request(key=key))
    status, headers, body = await sock.http_reply()
    assert status == 400
    assert "key" in assert_json_error(headers, body).lower()
    await guard.check()


async def test_post_upgrade_gets_405(guard: Guard) -> None:
    sock = await guard.raw()
    sock.send(upgrade_request(method="POST"))
    status, headers, body = await sock.http_reply()
    assert status == 405
    assert headers["allow"] == "GET"
    assert assert_json_error(headers, body)
    await guard.check()


async def test_too_large_headers_in_one_write_get_431(guard: Guard) -> None:
    sock = await guard.raw()
    sock.send(b"GET /health HTTP/1.1\r\nhost: x\r\nx-filler: " + b"f" * (MAX_HEAD * 2) + b"\r\n\r\n")
    status, headers, body = await sock.http_reply()
    assert status == 431
    assert assert_json_error(headers, body)
    await guard.check()


async def test_too_large_headers_sent_slowly_get_431(guard: Guard) -> None:
    sock = await guard.raw()
    sent = 0
    lines = [b"GET /echo HTTP/1.1\r\n", b"host: x\r\n"]
    lines += [f"x-h{i:03}: {'v' * 90}\r\n".encode() for i in range(MAX_HEAD // 100 + 1)]
    for line in lines:  # stops as soon as the head is over the limit, so nothing is sent after the answer
        sock.send(line)
        await sock.writer.drain()
        sent += len(line)
    assert MAX_HEAD < sent < MAX_HEAD + 100
    status, headers, body = await sock.http_reply()  # the head never ended; the server answered anyway
    assert status == 431
    assert assert_json_error(headers, body)
    await guard.check()


async def test_too_large_upgrade_headers_get_431(guard: Guard) -> None:
    sock = await guard.raw()
    request = upgrade_request()
    sock.send(request[:-2] + b"x-filler: " + b"f" * MAX_HEAD + b"\r\n\r\n")
    status, _, _ = await sock.http_reply()
    assert status == 431
    await guard.check()


async def test_too_large_body_gets_413(guard: Guard) -> None:
    sock = await guard.raw()
    body = orjson.dumps({"numbers": list(range(2000))})
    assert len(body) > MAX_BODY
    sock.send(f"POST /sum HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body)
    status, headers, reply = await sock.http_reply()
    assert status == 413
    assert assert_json_error(headers, reply)
    async with aiohttp.ClientSession() as session, session.post(guard.server.http_url("/sum"), data=b"[" * 5000) as r:
        assert r.status == 413
        guard.saw(await r.read())
    await guard.check()


async def test_incomplete_request_times_out_with_408(guard: Guard) -> None:
    sock = await guard.raw()
    sock.send(b"GET /health HTTP/1.1\r\nhost: x\r\n")  # never finished
    status, headers, body = await sock.http_reply(timeout=HANDSHAKE_TIMEOUT + 5)
    assert status == 408
    assert assert_json_error(headers, body)
    await guard.check()


async def test_incomplete_upgrade_body_times_out_with_408(guard: Guard) -> None:
    sock = await guard.raw()
    sock.send(b"POST /sum HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{")  # body never finished
    status, _, _ = await sock.http_reply(timeout=HANDSHAKE_TIMEOUT + 5)
    assert status == 408
    await guard.check()


async def test_silent_connection_is_closed_without_a_response(guard: Guard) -> None:
    sock = await guard.raw()
    assert await sock.read_to_eof(timeout=HANDSHAKE_TIMEOUT + 5) == b""
    await guard.check()


async def test_bad_json_body_gets_400_without_traceback(guard: Guard) -> None:
    """A body that is not JSON is the client's fault: 400 with the parser's message, nothing logged."""
    sock = await guard.raw()
    bad = b'{"numbers": [1, 2,'
    good = b'{"numbers": [1, 2, 3]}'
    # Keep-alive: the bad request, then a good one on the same connection.
    sock.send(f"POST /sum HTTP/1.1\r\nhost: x\r\ncontent-length: {len(bad)}\r\n\r\n".encode() + bad)
    sock.send(f"POST /sum HTTP/1.1\r\nhost: x\r\ncontent-length: {len(good)}\r\n\r\n".encode() + good)
    async with asyncio.timeout(5):
        first = await sock.reader.readuntil(b"}")
        second = await sock.reader.readuntil(b"}")
    status, headers, body = split_http(guard.saw(first))
    assert status == 400
    assert orjson.loads(body)["error"].startswith("request body is not valid JSON: ")
    assert headers["content-type"] == "application/json"
    status, _, body = split_http(guard.saw(second))
    assert status == 200
    assert orjson.loads(body) == {"sum": 6}
    # Then idle: closed when the keep-alive time is up, with nothing unasked-for sent.
    assert await sock.read_to_eof(timeout=HANDSHAKE_TIMEOUT + 5) == b""
    async with aiohttp.ClientSession() as session, session.post(guard.server.http_url("/sum"), data=b"{") as response:
        assert response.status == 400
        assert (await response.json())["error"].startswith("request body is not valid JSON: ")
        guard.saw(await response.read())
    assert not any("HTTP handler failed" in record.getMessage() for record in guard.caplog.records)
    await guard.check()


# ---- floods ------------------------------------------------------------------------------------------------


async def test_flood_from_one_client_does_not_starve_another(guard: Guard) -> None:
    count = 5000
    flooder = await guard.server.connect("/echo")
    received: list[str | bytes] = []

    async def flood() -> None:
        for batch in range(0, count, 250):
            for i in range(batch, batch + 250):
                await flooder.send(f"flood-{i}")
            await asyncio.sleep(0)

    async def drain() -> None:
        while len(received) < count:
            received.append(await flooder.recv(timeout=10))

    tasks = [asyncio.create_task(flood()), asyncio.create_task(drain())]
    try:
        await wait_for(lambda: len(received) >= 250, timeout=10)
        await guard.round_trip("my turn, mid-flood")
        async with asyncio.timeout(20):
            await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
    assert received == [f"flood-{i}" for i in range(count)]
    assert flooder.close_code is None
    await flooder.close()
    await guard.check()
