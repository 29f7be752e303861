"""Backpressure policies over real sockets: per route "close", "drop" and "conflate",
what a lagging client receives under each, and what the app sees."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from hubbub import App, Connection, Event
from hubbub.testing import TestServer, serve_app, wait_for
from tests.support.stalled import stalled_client

LIMIT = 64 * 1024
SIZE = 4 * 1024


def frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of each complete unmasked frame in `data`."""
    found = []
    at = 0
    while at + 2 <= len(data):
        length, start = data[at + 1] & 0x7F, at + 2
        if length == 126:
            length, start = int.from_bytes(data[at + 2 : at + 4], "big"), at + 4
        elif length == 127:
            length, start = int.from_bytes(data[at + 2 : at + 10], "big"), at + 10
        if start + length > len(data):
            break
        found.append((data[at] & 0x0F, data[start : start + length]))
        at = start + length
    return found


async def read_until(sock: socket.socket, rest: bytes, done: Any, timeout: float = 10) -> bytes:
    """Read from `sock` until done(received bytes) or the peer closes."""
    loop = asyncio.get_running_loop()
    received = bytearray(rest)
    async with asyncio.timeout(timeout):
        while not done(bytes(received)):
            chunk = await loop.sock_recv(sock, 1 << 18)
            if not chunk:
                break
            received += chunk
    return bytes(received)


def policy_app(**options: Any) -> tuple[App, dict[str, int]]:
    """Routes /close, /drop and /conflate (64 KiB limit each), joining the room "r"."""
    app = App(**options)
    closed: dict[str, int] = {}

    async def join(event: Event) -> None:
        await event.hub.join("r", event.client_id)

    async def left(event: Event) -> None:
        closed[event.client_id] = event.close_code or 0

    for policy in ("close", "drop", "conflate"):
        app.websocket(
            f"/{policy}",
            on_connect=join,
            on_disconnect=left,
            max_backpressure=LIMIT,
            backpressure_policy=policy,  # type: ignore[arg-type]
        )
    return app, closed


async def the_client(server: TestServer) -> Connection:
    await wait_for(lambda: _one(server))
    (client_id,) = await server.app.hub.clients()
    conn = server.app.hub.get(client_id)
    assert conn is not None
    return conn


async def _one(server: TestServer) -> bool:
    return await server.app.hub.connection_count() == 1


async def fill(conn: Connection, make: Any) -> int:
    """Send make(i) in batches of 8 per loop iteration until the connection is over its limit
    (a send refused, or held for conflation); return how many were sent."""
    sent = 0
    async with asyncio.timeout(10):
        while conn.dropped_count == 0 and not conn.closed:
            for _ in range(8):
                await make(sent)
                sent += 1
            await asyncio.sleep(0)
    return sent


async def test_close_sends_1008_with_a_reason_behind_the_backlog() -> None:
    app, closed = policy_app(close_timeout=10)
    async with serve_app(app) as server, stalled_client(server, "/close") as (sock, rest):
        conn = await the_client(server)
        sent = await fill(conn, lambda i: conn.send(f"{i:06d}" + "x" * SIZE))
        assert await conn.send("too late") is False  # closing: nothing more is queued
        data = await read_until(sock, rest, lambda got: any(op == 0x8 for op, _ in frames(got)))
        got = frames(data)
        opcode, body = got[-1]
        assert opcode == 0x8
        assert int.from_bytes(body[:2], "big") == 1008 and body[2:] == b"backpressure limit exceeded"
        texts = [payload for op, payload in got if op == 0x1]
        assert 0 < len(texts) < sent  # whole messages up to the limit, then the close frame
        assert [t[:6] for t in texts] == [f"{i:06d}".encode() for i in range(len(texts))]
        await asyncio.get_running_loop().sock_sendall(sock, bytes([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xF0]))
        await wait_for(lambda: conn.id in closed)
        assert closed[conn.id] == 1008


async def test_close_aborts_when_no_close_frame_can_be_sent_and_the_handler_sees_1008() -> None:
    """A stalled reader that never answers the close frame is dropped after close_timeout,
    and the disconnect handler still sees 1008."""
    app, closed = policy_app(close_timeout=0.5)
    async with serve_app(app) as server, stalled_client(server, "/close"):
        conn = await the_client(server)
        await fill(conn, lambda i: conn.send("x" * SIZE))
        await wait_for(lambda: conn.id in closed, timeout=5)
        assert closed[conn.id] == 1008
        assert conn.closed


async def test_drop_keeps_the_connection_and_delivers_whole_messages_in_order() -> None:
    app, closed = policy_app()
    async with serve_app(app) as server, stalled_client(server, "/drop") as (sock, rest):
        conn = await the_client(server)
        sent = await fill(conn, lambda i: conn.send(f"{i:06d}" + "x" * SIZE))
        assert conn.buffered_amount <= LIMIT + SIZE + 16
        dropped = conn.dropped_count
        assert not conn.closed
        assert await server.app.hub.dropped_count() == dropped
        expected = sent - dropped
        data = await read_until(sock, rest, lambda got: len(frames(got)) >= expected)
        indexes = [int(payload[:6]) for _, payload in frames(data)]
        assert len(indexes) == expected
        assert indexes == sorted(indexes) and indexes[0] == 0  # whole messages, in order, some missing
        assert await conn.send("after") is True  # still open and usable
        assert conn.id not in closed


async def test_conflate_keeps_the_newest_message_per_key() -> None:
    app, closed = policy_app()
    async with serve_app(app) as server, stalled_client(server, "/conflate") as (sock, rest):
        conn = await the_client(server)
        # Unkeyed filler takes the connection over its limit: unkeyed messages are then dropped.
        await fill(conn, lambda i: conn.send("f" * SIZE))
        assert await conn.send("u" * SIZE) is False
        for seq in range(200):  # two tickers, well over the limit
            assert await conn.send(f"a:{seq:04d}", key="a") is True
            assert await conn.send(f"b:{seq:04d}", key="b") is True
        assert await server.app.hub.room_broadcast("r", "room news 1") == 1
        assert await server.app.hub.room_broadcast("r", "room news 2") == 1  # key: the room name
        assert not conn.closed

        def complete(got: bytes) -> bool:
            return any(payload == b"room news 2" for _, payload in frames(got))

        data = await read_until(sock, rest, complete)
        texts = [payload for op, payload in frames(data) if op == 0x1 and not payload.startswith(b"f")]
        assert texts == [b"a:0199", b"b:0199", b"room news 2"]
        assert conn.dropped_count >= 1 + 2 * 199 + 1
        assert conn.id not in closed


async def test_policy_given_to_room_broadcast_overrides_the_members() -> None:
    app, closed = policy_app()
    async with serve_app(app) as server, stalled_client(server, "/close") as (sock, rest):
        conn = await the_client(server)
        hub = server.app.hub
        await fill(conn, lambda i: hub.room_broadcast("r", "f" * SIZE, policy="drop"))
        for seq in range(100):  # over the limit on a "close" route, but conflated by the broadcast
            await hub.room_broadcast("r", f"{seq:04d}" + "p" * SIZE, policy="conflate")
        assert not conn.closed
        data = await read_until(sock, rest, lambda got: any(p[:4] == b"0099" for _, p in frames(got)))
        assert frames(data)[-1][1][:4] == b"0099"
        assert conn.id not in closed


async def test_route_options_are_checked() -> None:
    app = App()
    for bad in ({"backpressure_policy": "block"}, {"max_backpressure": 0}):
        try:
            app.websocket("/x", **bad)  # type: ignore[arg-type]
        except Exception as exc:
            assert type(exc).__name__ == "ConfigurationError"
        else:
            raise AssertionError(f"{bad} was accepted")
