"""An app with a raw route /raw and a JSON channel /chan, and the client wrapper that talks to it
with three libraries: hubbub's client and aiohttp on /raw, `websockets` on /chan.

Used by the tests that publish from outside a handler (the Emitter, the publish API).
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any, Literal

import aiohttp
import orjson
import redis.asyncio as aioredis
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed as WsClosed
from websockets.typing import Subprotocol

from hubbub import App, Event
from hubbub.broker.base import Broker
from hubbub.client import connect as hubbub_connect
from hubbub.testing import TestServer
from hubbub.web.request import Request

Lib = Literal["hubbub", "websockets", "aiohttp"]


def make_app(broker: Broker | None = None) -> App:
    """Raw route /raw and JSON channel /chan; ?user=U names the user, ?room=R joins a room.
    A raw client first gets its client id; a channel client gets the welcome, then "ready"."""
    app = App(broker=broker, room_presence_events=False)

    @app.authenticate
    def user_from_query(request: Request) -> str | None:
        return request.query.get("user")

    async def join_if_asked(event: Event) -> None:
        if "room" in event.query:
            await event.hub.join(event.query["room"], event.client_id)

    raw = app.websocket("/raw")

    @raw.on_connect
    async def raw_hello(event: Event) -> None:
        await join_if_asked(event)
        await event.send(event.client_id)

    chan = app.channel("/chan")

    @chan.on_connect
    async def chan_hello(event: Event) -> None:
        await join_if_asked(event)
        await event.emit("ready")

    return app


class Peer:
    """One client: hubbub or aiohttp on /raw, websockets on /chan."""

    def __init__(self, lib: Lib, conn: Any, session: aiohttp.ClientSession | None = None) -> None:
        self.lib = lib
        self.conn = conn
        self.session = session
        self.client_id = ""

    async def recv(self, timeout: float = 5.0) -> str | bytes:
        """The next message."""
        if self.lib == "hubbub":
            received: str | bytes = await self.conn.recv(timeout=timeout)
            return received
        if self.lib == "websockets":
            async with asyncio.timeout(timeout):
                message: str | bytes = await self.conn.recv()
                return message
        msg = await self.conn.receive(timeout=timeout)
        assert msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY), msg
        return msg.data  # type: ignore[no-any-return]

    async def recv_json(self, timeout: float = 5.0) -> Any:
        """The next message, which must be JSON text."""
        message = await self.recv(timeout)
        assert isinstance(message, str), message
        return orjson.loads(message)

    async def closed(self, timeout: float = 5.0) -> tuple[int | None, str]:
        """Read until the server closes; the close code and reason."""
        async with asyncio.timeout(timeout):
            if self.lib == "hubbub":
                code = await self.conn.wait_closed(timeout)
                return code, self.conn.close_reason
            if self.lib == "websockets":
                try:
                    while True:
                        await self.conn.recv()
                except WsClosed:
                    return self.conn.close_code, self.conn.close_reason
            while True:
                msg = await self.conn.receive()
                if msg.type == aiohttp.WSMsgType.CLOSE:
                    return msg.data, msg.extra
                assert msg.type not in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR), msg

    async def aclose(self) -> None:
        """Close the connection (and the aiohttp session)."""
        await self.conn.close()
        if self.session is not None:
            await self.session.close()


async def open_peer(stack: AsyncExitStack, server: TestServer, lib: Lib, user: str, room: str | None = None) -> Peer:
    """Connect with `lib` and wait until the server has set the connection up; closed when `stack` exits."""
    query = f"?user={user}" + (f"&room={room}" if room else "")
    if lib == "websockets":
        peer = Peer(lib, await ws_connect(server.url("/chan" + query), subprotocols=[Subprotocol("hubbub.v1.json")]))
        stack.push_async_callback(peer.aclose)
        welcome = await peer.recv_json()
        assert welcome["type"] == "hubbub.welcome"
        peer.client_id = welcome["data"]["client_id"]
        assert (await peer.recv_json())["type"] == "ready"
        return peer
    if lib == "hubbub":
        peer = Peer(lib, await hubbub_connect(server.url("/raw" + query)))
    else:
        session = aiohttp.ClientSession()
        peer = Peer(lib, await session.ws_connect(server.url("/raw" + query)), session)
    stack.push_async_callback(peer.aclose)
    client_id = await peer.recv()
    assert isinstance(client_id, str)
    peer.client_id = client_id
    return peer


async def listeners(probe: aioredis.Redis, channel: str, count: int) -> bool:
    """Whether `count` nodes listen to the Redis pub/sub `channel`."""
    numsub = dict(await probe.pubsub_numsub(channel))
    return int(numsub.get(channel.encode(), 0)) == count
