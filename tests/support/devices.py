"""A user's device: one JSON-text WebSocket connection made with hubbub's client, `websockets`
or aiohttp, behind one small interface (used by the presence and users tests)."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import aiohttp
import orjson
from websockets.asyncio.client import connect as ws_connect

from hubbub.client import connect as hubbub_connect

Lib = Literal["hubbub", "websockets", "aiohttp"]


class Device:
    """One connection of a user, made with any of the three libraries."""

    def __init__(self, lib: Lib, conn: Any, session: aiohttp.ClientSession | None = None) -> None:
        self.lib = lib
        self.conn = conn
        self.session = session
        self.client_id: str | None = None

    async def send_json(self, message: Any) -> None:
        """Send one JSON text message."""
        text = orjson.dumps(message).decode()
        await (self.conn.send_str(text) if self.session is not None else self.conn.send(text))

    async def recv_json(self, timeout: float = 5.0) -> Any:
        """The next message, parsed."""
        if self.session is not None:
            msg = await self.conn.receive(timeout=timeout)
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            return orjson.loads(msg.data)
        return orjson.loads(await asyncio.wait_for(self.conn.recv(), timeout))

    async def read_welcome(self, user: str) -> None:
        """Read the channel's welcome, which must name `user`; keep its client id."""
        welcome = await self.recv_json()
        assert welcome["type"] == "hubbub.welcome" and welcome["data"]["user"] == user
        self.client_id = welcome["data"]["client_id"]

    async def request(self, type: str, data: Any, id: int = 1) -> Any:
        """Send a request; the next message must be its reply (so nothing else came first)."""
        await self.send_json({"type": type, "data": data, "id": id})
        reply = await self.recv_json()
        assert reply.get("id") == id, reply
        return reply

    async def close_code(self, timeout: float = 5.0) -> int | None:
        """Wait for the server to close the connection; its close code."""
        if self.session is not None:
            msg = await self.conn.receive(timeout=timeout)
            assert msg.type == aiohttp.WSMsgType.CLOSE, msg
            return int(msg.data)
        if self.lib == "hubbub":
            return int(await self.conn.wait_closed(timeout))
        await asyncio.wait_for(self.conn.wait_closed(), timeout)
        return int(self.conn.close_code)

    async def close(self) -> None:
        """Close (a no-op when already closed)."""
        await self.conn.close()
        if self.session is not None:
            await self.session.close()


async def connect_device(lib: Lib, url: str, headers: dict[str, str]) -> Device:
    """Open a connection to `url` with `lib`; a refused handshake raises that library's own error."""
    if lib == "hubbub":
        return Device(lib, await hubbub_connect(url, headers=headers, timeout=5))
    if lib == "websockets":
        return Device(lib, await ws_connect(url, additional_headers=headers, open_timeout=5))
    session = aiohttp.ClientSession()
    try:
        return Device(lib, await session.ws_connect(url, headers=headers), session)
    except BaseException:
        await session.close()
        raise
