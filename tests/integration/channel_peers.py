"""JSON-envelope peers over the three client libraries the channel tests use.

A `Peer` wraps a websockets, aiohttp or hubbub.client connection behind the same
four calls (send an envelope, receive one, make a request, wait for a type), so a
test can run the same exchange over several independent WebSocket implementations.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import msgpack
import orjson
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

from hubbub.client import WebSocketClient

JSON = Subprotocol("hubbub.v1.json")
MSGPACK = Subprotocol("hubbub.v1.msgpack")
TIMEOUT = 5.0


class Peer:
    """One client connection speaking JSON (text) or msgpack (binary) envelopes."""

    def __init__(
        self,
        send: Callable[[str | bytes], Awaitable[None]],
        recv: Callable[[], Awaitable[str | bytes]],
        *,
        binary: bool = False,
    ) -> None:
        self._send = send
        self._recv = recv
        self.binary = binary
        self.frames: list[str | bytes] = []
        """Every frame received, as it came (to check what the client was shown)."""
        self._skipped: deque[dict[str, Any]] = deque()

    @classmethod
    def of_websockets(cls, ws: ClientConnection) -> Peer:
        """A peer over a `websockets` client connection."""
        return cls(ws.send, ws.recv, binary=ws.subprotocol == MSGPACK)

    @classmethod
    def of_hubbub(cls, ws: WebSocketClient) -> Peer:
        """A peer over a `hubbub.client` connection."""
        return cls(ws.send, lambda: ws.recv(timeout=None), binary=ws.subprotocol == MSGPACK)

    @classmethod
    def of_aiohttp(cls, ws: aiohttp.ClientWebSocketResponse) -> Peer:
        """A peer over an aiohttp client WebSocket."""

        async def send(data: str | bytes) -> None:
            if isinstance(data, str):
                await ws.send_str(data)
            else:
                await ws.send_bytes(data)

        async def recv() -> str | bytes:
            message = await ws.receive()
            if message.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                raise ConnectionError(f"expected a message, got {message.type!r}")
            data: str | bytes = message.data
            return data

        return cls(send, recv, binary=ws.protocol == MSGPACK)

    async def send_raw(self, data: str | bytes) -> None:
        """Send one frame as it is."""
        await self._send(data)

    async def send(self, envelope: dict[str, Any]) -> None:
        """Send an envelope in this peer's codec."""
        await self._send(msgpack.packb(envelope) if self.binary else orjson.dumps(envelope).decode())

    async def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next envelope (decoded with the codec its frame type says), oldest skipped one first."""
        if self._skipped:
            return self._skipped.popleft()
        async with asyncio.timeout(timeout):
            frame = await self._recv()
        self.frames.append(frame)
        decoded = msgpack.unpackb(frame) if isinstance(frame, bytes) else orjson.loads(frame)
        assert isinstance(decoded, dict), decoded
        return decoded

    async def recv_until(self, match: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next envelope `match` accepts; others (e.g. presence events) are kept for later `recv` calls."""
        for envelope in self._skipped:
            if match(envelope):
                self._skipped.remove(envelope)
                return envelope
        skipped = self._skipped
        self._skipped = deque()
        try:
            async with asyncio.timeout(timeout):
                while True:
                    envelope = await self.recv(timeout=timeout)
                    if match(envelope):
                        return envelope
                    skipped.append(envelope)
        finally:
            self._skipped = skipped

    async def recv_type(self, type: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next envelope of `type`."""
        return await self.recv_until(lambda envelope: envelope.get("type") == type, timeout)

    async def request(self, type: str, data: Any = None, id: str | int = 1) -> dict[str, Any]:
        """Send a request and return the reply carrying its id."""
        await self.send({"type": type, "data": data, "id": id})
        return await self.recv_until(lambda envelope: "type" not in envelope and envelope.get("id") == id)

    async def welcome(self) -> dict[str, Any]:
        """The first envelope, which must be the welcome; returns its data."""
        envelope = await self.recv()
        assert envelope["type"] == "hubbub.welcome", envelope
        data: dict[str, Any] = envelope["data"]
        return data
