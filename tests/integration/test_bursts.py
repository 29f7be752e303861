"""Bursts on the library defaults: a reader that keeps up is never dropped, whatever the
burst and whoever else is in the room; a reader that stops is dealt with by the policy.

The room route is the bench contract's /fanout: every message is broadcast to every
member, the publisher included. `App()` defaults: max_backpressure 256 KiB, "close".
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from hubbub import App, Event
from hubbub.testing import TestServer, serve_app, wait_for
from tests.support.stalled import stalled_client

BURSTS = [(2000, 1024), (300, 16 * 1024), (100, 64 * 1024)]


def payload(index: int, size: int) -> str:
    """Message `index`: its number, then padding up to `size` bytes."""
    head = f"{index:08d}:"
    return head + "x" * (size - len(head))


class FanoutApp:
    """`examples/echo.py`'s /fanout on App() defaults, recording every disconnect."""

    def __init__(self) -> None:
        self.app = App()
        self.closed: dict[str, int] = {}
        fanout = self.app.websocket("/fanout")
        fanout.on_connect(self._join)
        fanout.on_message(self._fan_out)
        fanout.on_disconnect(self._left)

    async def _join(self, event: Event) -> None:
        await event.hub.join("fanout", event.client_id)

    async def _fan_out(self, event: Event) -> None:
        await event.hub.room_broadcast("fanout", event.data)  # type: ignore[arg-type]

    async def _left(self, event: Event) -> None:
        self.closed[event.client_id] = event.close_code or 0


async def read_in_order(ws: ClientConnection, count: int, size: int) -> int:
    """Read `count` messages, checking that none is missing, cut or out of order."""
    for expected in range(count):
        message = await ws.recv()
        assert isinstance(message, str)
        assert message[:9] == f"{expected:08d}:", f"expected message {expected}, got {message[:9]}"
        assert len(message) == size
    return count


async def members_are(server: TestServer, count: int) -> bool:
    return await server.app.hub.room_count("fanout") == count


@pytest.mark.parametrize("stalled", [0, 10], ids=["alone", "with-10-stalled"])
@pytest.mark.parametrize(("count", "size"), BURSTS, ids=[f"{n}x{s // 1024}KiB" for n, s in BURSTS])
async def test_a_burst_reaches_a_fast_reader_and_the_publisher_in_full(count: int, size: int, stalled: int) -> None:
    fan = FanoutApp()
    async with serve_app(fan.app) as server, AsyncExitStack() as stack:
        for _ in range(stalled):
            await stack.enter_async_context(stalled_client(server, "/fanout"))
        await wait_for(lambda: members_are(server, stalled))
        stalled_ids = set(await server.app.hub.room_members("fanout"))
        reader = await stack.enter_async_context(ws_connect(server.url("/fanout"), compression=None))
        publisher = await stack.enter_async_context(ws_connect(server.url("/fanout"), compression=None))
        await wait_for(lambda: members_are(server, stalled + 2))
        fast_ids = set(await server.app.hub.room_members("fanout")) - stalled_ids
        reading = asyncio.gather(read_in_order(reader, count, size), read_in_order(publisher, count, size))
        async with asyncio.timeout(60):
            for index in range(count):
                await publisher.send(payload(index, size))
            assert await reading == [count, count]
        for client_id in fast_ids:
            conn = server.app.hub.get(client_id)
            assert conn is not None and not conn.closed
            assert conn.dropped_count == 0
        assert fast_ids.isdisjoint(fan.closed)
        if stalled and count * size > 4 * 1024 * 1024:
            # More than the kernel takes for a reader with a 4 KiB window: the stalled ones are closed.
            await wait_for(lambda: set(fan.closed) == stalled_ids, timeout=15)
            assert set(fan.closed.values()) == {1008}
