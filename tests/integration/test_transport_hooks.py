"""on_ping, on_pong and on_error on WebSocket routes, over real sockets."""

from __future__ import annotations

import asyncio
import socket
import struct

from websockets.asyncio.client import connect as ws_connect

from hubbub import App, Event
from hubbub.errors import ProtocolError
from hubbub.testing import serve_app
from tests.support.stalled import stalled_client


class Recorder:
    """A route recording its transport hooks, and the disconnect that follows them."""

    def __init__(self, **options: object) -> None:
        self.app = App(**options)  # type: ignore[arg-type]
        self.events: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
        route = self.app.websocket("/hooks")
        route.on_ping(lambda event: self.events.put_nowait(("ping", event.data)))
        route.on_pong(lambda event: self.events.put_nowait(("pong", event.data)))
        route.on_error(self._error)
        route.on_disconnect(lambda event: self.events.put_nowait(("disconnect", event.close_code)))
        route.on_message(self._echo)

    def _error(self, event: Event) -> None:
        self.events.put_nowait(("error", event.error))

    async def _echo(self, event: Event) -> None:
        await event.send(event.data)

    async def next(self) -> tuple[str, object]:
        return await asyncio.wait_for(self.events.get(), 5)


async def test_ping_and_pong_reach_their_hooks_with_the_payload() -> None:
    rec = Recorder()
    async with serve_app(rec.app) as server, ws_connect(server.url("/hooks")) as ws:
        pong_waiter = await ws.ping(b"are you there")
        await asyncio.wait_for(pong_waiter, 5)  # the server still answers the ping itself
        assert await rec.next() == ("ping", b"are you there")
        await ws.pong(b"unsolicited")
        assert await rec.next() == ("pong", b"unsolicited")
        await ws.send("hi")
        assert await ws.recv() == "hi"  # the hooks did not get in the messages' way
    assert await rec.next() == ("disconnect", 1000)
    assert rec.events.empty()


async def test_the_heartbeat_pong_reaches_on_pong() -> None:
    rec = Recorder(ping_interval=0.2, tick=0.1)
    async with serve_app(rec.app) as server, ws_connect(server.url("/hooks")) as ws:
        assert await rec.next() == ("pong", b"")  # the client's answer to the server's ping
        await ws.close()


async def test_a_protocol_error_reaches_on_error_before_the_disconnect() -> None:
    rec = Recorder(close_timeout=0.5)  # the client never answers our close frame
    async with serve_app(rec.app) as server, stalled_client(server, "/hooks") as (sock, _):
        unmasked = b"\x81\x02hi"  # a client frame must be masked
        await asyncio.get_running_loop().sock_sendall(sock, unmasked)
        kind, error = await rec.next()
        assert kind == "error" and isinstance(error, ProtocolError)
        assert error.code == 1002
        assert await rec.next() == ("disconnect", 1002)


async def test_a_message_over_the_size_limit_reaches_on_error_with_1009() -> None:
    rec = Recorder(max_message_size=1024, close_timeout=0.5)
    async with serve_app(rec.app) as server, stalled_client(server, "/hooks") as (sock, _):
        head = bytes([0x82, 0x80 | 126]) + struct.pack("!H", 2048) + b"\x00\x00\x00\x00"
        await asyncio.get_running_loop().sock_sendall(sock, head + b"\x00" * 2048)
        kind, error = await rec.next()
        assert kind == "error" and isinstance(error, ProtocolError) and error.code == 1009
        assert await rec.next() == ("disconnect", 1009)


async def test_a_reset_connection_reaches_on_error() -> None:
    rec = Recorder()
    async with serve_app(rec.app) as server, stalled_client(server, "/hooks") as (sock, _):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # RST instead of FIN
        kind, error = await rec.next()
        assert kind == "error" and isinstance(error, OSError)
        assert await rec.next() == ("disconnect", 1006)


async def test_a_clean_close_reaches_no_hook_but_disconnect() -> None:
    rec = Recorder()
    async with serve_app(rec.app) as server:
        async with ws_connect(server.url("/hooks")) as ws:
            await ws.send("x")
            assert await ws.recv() == "x"
        assert await rec.next() == ("disconnect", 1000)
        assert rec.events.empty()
