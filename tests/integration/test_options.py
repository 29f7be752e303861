"""Server options on real sockets: permessage-deflate, size limits, timers, origins,
subprotocols and the connection limit."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import zlib
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed as WsConnectionClosed
from websockets.exceptions import InvalidStatus
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Opcode

from hubbub import App, Event, Request
from hubbub.client import connect as hub_connect
from hubbub.errors import ConnectionClosed, HandshakeError
from hubbub.testing import TestServer, serve_app, wait_for

BIG_TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(4000))
"""About 220 KB of very compressible text."""


class Recorder:
    """What the app saw: close codes and reasons of every disconnect."""

    def __init__(self) -> None:
        self.disconnects: asyncio.Queue[tuple[int, str]] = asyncio.Queue()


def make_app(recorder: Recorder | None = None, **options: Any) -> App:
    """An app with an echo route, a room route, a subprotocol route and a broadcast trigger."""
    app = App(**options)

    echo = app.websocket("/echo")

    @echo.on_message
    async def on_echo(event: Event) -> None:
        await event.send(event.data)

    @echo.on_disconnect
    async def on_echo_gone(event: Event) -> None:
        if recorder is not None:
            assert event.close_code is not None
            recorder.disconnects.put_nowait((event.close_code, event.close_reason or ""))

    room = app.websocket("/room/{room}")

    @room.on_connect
    async def on_join(event: Event) -> None:
        await event.hub.join(event.params["room"], event.client_id)

    @app.websocket("/proto", subprotocols=["v2", "v1"])
    async def on_proto(event: Event) -> None:
        await event.send(event.connection.subprotocol or "none")

    @app.post("/broadcast/{room}")
    async def broadcast(request: Request) -> dict[str, int]:
        sent = await app.hub.room_broadcast(request.path_params["room"], request.text())
        return {"sent": sent}

    return app


async def raw_upgrade(
    server: TestServer, path: str, extra_headers: str = ""
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """Complete a handshake by hand; return the streams and the 101 head."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nhost: {server.host}:{server.port}\r\nupgrade: websocket\r\n"
            f"connection: Upgrade\r\nsec-websocket-key: {key}\r\nsec-websocket-version: 13\r\n"
            f"{extra_headers}\r\n"
        ).encode("latin-1")
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer, head


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    """One unmasked server frame: (opcode, rsv1, payload)."""
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    elif length == 127:
        length = int.from_bytes(await reader.readexactly(8), "big")
    return first & 0x0F, bool(first & 0x40), await reader.readexactly(length)


class FrameCounter(logging.Handler):
    """Counts the frames a websockets client logs as received, by opcode."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.received: dict[Opcode, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "< %s" and record.args:
            frame = record.args[0]  # type: ignore[index]
            opcode = getattr(frame, "opcode", None)
            if opcode is not None:
                self.received[opcode] = self.received.get(opcode, 0) + 1


def counting_logger(name: str) -> tuple[logging.Logger, FrameCounter]:
    """A debug logger for a websockets client that counts received frames and prints nothing."""
    logger = logging.getLogger(f"tests.options.{name}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    for old in list(logger.handlers):
        logger.removeHandler(old)
    counter = FrameCounter()
    logger.addHandler(counter)
    return logger, counter


# ---- permessage-deflate -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["shared", "dedicated"])
async def test_deflate_negotiated_and_large_round_trip(mode: str) -> None:
    async with (
        serve_app(make_app(compression=mode)) as server,
        ws_connect(server.url("/echo"), compression="deflate") as ws,
    ):
        assert ws.response is not None
        extensions = ws.response.headers["Sec-WebSocket-Extensions"]
        assert extensions.startswith("permessage-deflate")
        assert ("server_no_context_takeover" in extensions) is (mode == "shared")
        for _ in range(3):  # several messages: any context carried across them must stay in sync
            await ws.send(BIG_TEXT)
            assert await asyncio.wait_for(ws.recv(), 5) == BIG_TEXT
        await ws.send(BIG_TEXT.encode())
        assert await asyncio.wait_for(ws.recv(), 5) == BIG_TEXT.encode()


async def test_shared_mode_forces_server_no_context_takeover_even_if_not_offered() -> None:
    factory = ClientPerMessageDeflateFactory(server_no_context_takeover=False, client_max_window_bits=None)
    async with (
        serve_app(make_app(compression="shared")) as server,
        ws_connect(server.url("/echo"), compression=None, extensions=[factory]) as ws,
    ):
        assert ws.response is not None
        assert "server_no_context_takeover" in ws.response.headers["Sec-WebSocket-Extensions"]
        await ws.send(BIG_TEXT)
        assert await asyncio.wait_for(ws.recv(), 5) == BIG_TEXT


@pytest.mark.parametrize("mode", ["shared", "dedicated"])
async def test_client_no_context_takeover_honored(mode: str) -> None:
    factory = ClientPerMessageDeflateFactory(client_no_context_takeover=True, server_max_window_bits=10)
    async with (
        serve_app(make_app(compression=mode)) as server,
        ws_connect(server.url("/echo"), compression=None, extensions=[factory]) as ws,
    ):
        assert ws.response is not None
        extensions = ws.response.headers["Sec-WebSocket-Extensions"]
        assert "client_no_context_takeover" in extensions
        assert "server_max_window_bits=10" in extensions
        for i in range(4):  # the client resets its context per message; the server must too
            await ws.send(f"{i} {BIG_TEXT}")
            assert await asyncio.wait_for(ws.recv(), 5) == f"{i} {BIG_TEXT}"


async def test_deflate_disabled_negotiates_nothing() -> None:
    async with serve_app(make_app(compression="disabled")) as server:
        async with ws_connect(server.url("/echo"), compression="deflate") as ws:
            assert ws.response is not None
            assert "Sec-WebSocket-Extensions" not in ws.response.headers
            await ws.send(BIG_TEXT)
            assert await asyncio.wait_for(ws.recv(), 5) == BIG_TEXT
        _, writer, head = await raw_upgrade(server, "/echo", "sec-websocket-extensions: permessage-deflate\r\n")
        assert b"sec-websocket-extensions" not in head.lower()
        writer.close()


@pytest.mark.parametrize("mode", ["shared", "dedicated"])
async def test_broadcast_reaches_deflate_and_plain_clients_intact(mode: str) -> None:
    async with serve_app(make_app(compression=mode)) as server, aiohttp.ClientSession() as session:
        deflating = await ws_connect(server.url("/room/r"), compression="deflate")
        plain = await session.ws_connect(server.url("/room/r"))  # aiohttp offers no compression by default
        own = await hub_connect(server.url("/room/r"))
        reader, writer, head = await raw_upgrade(server, "/room/r", "sec-websocket-extensions: permessage-deflate\r\n")
        assert b"permessage-deflate" in head
        await wait_for(lambda: _room_has(server, "r", 4))
        for message in (BIG_TEXT, "short"):
            result = await server.request("POST", "/broadcast/r", body=message)
            assert result.json() == {"sent": 4}
            assert await asyncio.wait_for(deflating.recv(), 5) == message
            assert (await plain.receive(timeout=5)).data == message
            assert await own.recv(timeout=5) == message
            opcode, rsv1, payload = await asyncio.wait_for(read_frame(reader), 5)
            assert opcode == 0x1
            if message == BIG_TEXT:  # compressed on the wire, and inflates to the message
                assert rsv1 and len(payload) < len(message) // 10
                inflated = zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")
                assert inflated.decode() == message
            else:  # below compression_threshold: sent as is
                assert not rsv1 and payload == message.encode()
        writer.close()
        await deflating.close()
        await plain.close()
        await own.close()


async def _room_has(server: TestServer, room: str, count: int) -> bool:
    return await server.app.hub.room_count(room) == count


# ---- limits and timers --------------------------------------------------------------------


async def test_message_over_max_message_size_closes_1009() -> None:
    recorder = Recorder()
    async with serve_app(make_app(recorder, max_message_size=1024)) as server:
        async with ws_connect(server.url("/echo")) as ws:
            await ws.send("x" * 1024)  # exactly at the limit is fine
            assert await asyncio.wait_for(ws.recv(), 5) == "x" * 1024
            await ws.send("x" * 1025)
            with pytest.raises(WsConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        code, _ = await asyncio.wait_for(recorder.disconnects.get(), 5)
        assert code == 1009


async def test_deflated_message_over_max_message_size_closes_1009() -> None:
    async with serve_app(make_app(compression="shared", max_message_size=4096)) as server:
        async with ws_connect(server.url("/echo"), compression="deflate") as ws:
            await ws.send("a" * 100_000)  # tiny on the wire, too big once inflated
            with pytest.raises(WsConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_idle_timeout_closes_1001_only_when_silent() -> None:
    recorder = Recorder()
    async with serve_app(make_app(recorder, idle_timeout=0.3, tick=0.05)) as server:
        ws = await server.connect("/echo")
        for i in range(6):  # active for ~0.5 s, well past the idle timeout
            await ws.send(str(i))
            assert await ws.recv(timeout=5) == str(i)
            await asyncio.sleep(0.08)
        assert ws.close_code is None
        assert await ws.wait_closed(timeout=5) == 1001
        assert ws.close_reason == "idle timeout"
        assert await asyncio.wait_for(recorder.disconnects.get(), 5) == (1001, "idle timeout")


async def test_max_lifetime_closes_1001_even_when_active() -> None:
    async with serve_app(make_app(max_lifetime=0.3, tick=0.05)) as server, aiohttp.ClientSession() as session:
        ws = await session.ws_connect(server.url("/echo"))
        async with asyncio.timeout(5):
            while True:
                await ws.send_str("ping")
                msg = await ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                await asyncio.sleep(0.05)
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert msg.data == 1001
        assert msg.extra == "connection lifetime exceeded"
        await ws.close()


# ---- heartbeat ------------------------------------------------------------------------------


async def test_server_pings_silent_clients_that_answer_and_keeps_them() -> None:
    logger, counter = counting_logger("heartbeat")
    async with serve_app(make_app(ping_interval=0.1, ping_timeout=0.3, tick=0.05)) as server:
        own = await server.connect("/echo")
        async with ws_connect(server.url("/echo"), ping_interval=None, logger=logger) as ws:
            await wait_for(lambda: counter.received.get(Opcode.PING, 0) >= 4, timeout=5)
            # several ping intervals and timeouts later, both silent clients are still there
            await ws.send("still here")
            assert await asyncio.wait_for(ws.recv(), 5) == "still here"
            await own.send("me too")
            assert await own.recv(timeout=5) == "me too"
            assert await server.app.hub.connection_count() == 2
        await own.ping(b"hi")
        await wait_for(lambda: own.pongs == 1)
        await own.close()


async def test_dead_peer_is_dropped_with_1011() -> None:
    recorder = Recorder()
    async with serve_app(make_app(recorder, ping_interval=0.1, ping_timeout=0.2, tick=0.05)) as server:
        reader, writer, _ = await raw_upgrade(server, "/echo")  # then never answers anything
        code, reason = await asyncio.wait_for(recorder.disconnects.get(), 5)
        assert code == 1011
        assert "ping" in reason
        opcode, _, _ = await asyncio.wait_for(read_frame(reader), 5)
        assert opcode == 0x9  # it was pinged before being dropped
        with pytest.raises((asyncio.IncompleteReadError, ConnectionResetError)):
            async with asyncio.timeout(5):
                while True:
                    await read_frame(reader)
        writer.close()
        assert await server.app.hub.connection_count() == 0


# ---- handshake -------------------------------------------------------------------------------


async def test_handshake_timeout_408_for_partial_request() -> None:
    async with serve_app(make_app(handshake_timeout=0.2)) as server:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"GET /echo HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\n")
        response = await asyncio.wait_for(reader.read(), 5)
        assert response.startswith(b"HTTP/1.1 408")
        writer.close()


async def test_handshake_timeout_closes_silent_socket() -> None:
    async with serve_app(make_app(handshake_timeout=0.2)) as server:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        ws = await server.connect("/echo")  # a prompt handshake is unaffected
        await ws.send("ok")
        assert await ws.recv(timeout=5) == "ok"
        await ws.close()


async def test_allowed_origins() -> None:
    async with serve_app(make_app(allowed_origins=["https://good.example"])) as server:
        async with ws_connect(server.url("/echo"), origin="https://good.example") as ws:  # type: ignore[arg-type]
            await ws.send("hi")
            assert await asyncio.wait_for(ws.recv(), 5) == "hi"
        with pytest.raises(HandshakeError) as refused:
            await server.connect("/echo", headers={"origin": "https://evil.example"})
        assert refused.value.status == 403
        async with aiohttp.ClientSession() as session, session.ws_connect(server.url("/echo")) as ws2:
            await ws2.send_str("no origin")
            assert (await ws2.receive(timeout=5)).data == "no origin"


async def test_subprotocol_first_client_choice_the_server_supports() -> None:
    async with serve_app(make_app()) as server:
        async with ws_connect(server.url("/proto"), subprotocols=["x", "v1", "v2"]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "v1"
            await ws.send("which")
            assert await asyncio.wait_for(ws.recv(), 5) == "v1"
        own = await server.connect("/proto", subprotocols=["v2", "v1"])
        assert own.subprotocol == "v2"
        await own.close()
        none = await server.connect("/proto", subprotocols=["zzz"])
        assert none.subprotocol is None
        assert "sec-websocket-protocol" not in none.response_headers
        await none.send("which")
        assert await none.recv(timeout=5) == "none"
        await none.close()


# ---- connection limit --------------------------------------------------------------------------


async def test_max_connections_reject_503_and_slot_frees() -> None:
    async with serve_app(make_app(max_connections=2)) as server:
        first = await server.connect("/echo")
        second = await server.connect("/echo")
        with pytest.raises(HandshakeError) as refused:
            await server.connect("/echo")
        assert refused.value.status == 503
        with pytest.raises(InvalidStatus) as refused_ws:
            await ws_connect(server.url("/echo"))
        assert refused_ws.value.response.status_code == 503
        assert refused_ws.value.response.headers["Retry-After"] == "5"
        await first.close()
        await wait_for(lambda: _count_is(server, 1))
        third = await server.connect("/echo")
        await third.send("in")
        assert await third.recv(timeout=5) == "in"
        await second.close()
        await third.close()


async def test_max_connections_close_1013_and_slot_frees() -> None:
    async with serve_app(make_app(max_connections=1, over_capacity="close")) as server:
        first = await server.connect("/echo")
        extra = await server.connect("/echo")  # accepted at the HTTP level...
        assert await extra.wait_closed(timeout=5) == 1013  # ...then closed: try again later
        with pytest.raises(ConnectionClosed):
            await extra.recv(timeout=5)
        assert await server.app.hub.connection_count() == 1
        await first.close()
        await wait_for(lambda: _count_is(server, 0))
        again = await server.connect("/echo")
        await again.send("in")
        assert await again.recv(timeout=5) == "in"
        await again.close()


async def _count_is(server: TestServer, count: int) -> bool:
    return await server.app.hub.connection_count() == count
