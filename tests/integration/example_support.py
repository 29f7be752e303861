"""Helpers for the example-app tests: load an example module fresh, and talk JSON envelopes to it.

examples/ is not a package, so each test loads its example file under a new module name
(after setting the environment the example reads at import) and gets a fresh app.
`EnvelopeClient` wraps a websockets, aiohttp or hubbub.client connection; it keeps every
envelope it received until a test takes it, so waiting for one kind never loses another.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import aiohttp
import orjson
from websockets.asyncio.client import connect as websockets_connect
from websockets.exceptions import ConnectionClosed as WebSocketsClosed

from hubbub.client import connect as hubbub_connect
from hubbub.errors import ConnectionClosed

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TIMEOUT = 5.0
Library = Literal["websockets", "aiohttp", "hubbub"]
LIBRARIES: tuple[Library, ...] = ("websockets", "aiohttp", "hubbub")
Match = Callable[[dict[str, Any]], bool]

_loads = itertools.count(1)


def load_example(name: str) -> ModuleType:
    """Import examples/<name>.py as a new module (so it reads the environment now and has its own app)."""
    module_name = f"hubbub_example_{name}_{next(_loads)}"
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def of_type(kind: str, **fields: Any) -> Match:
    """Match envelopes of type `kind` whose data has these field values."""

    def match(envelope: dict[str, Any]) -> bool:
        data = envelope.get("data")
        return envelope.get("type") == kind and all(
            isinstance(data, dict) and data.get(name) == value for name, value in fields.items()
        )

    return match


class EnvelopeClient:
    """One JSON-envelope connection; `welcome` is the data of its hubbub.welcome."""

    def __init__(
        self,
        send: Callable[[str], Awaitable[None]],
        recv: Callable[[], Awaitable[str | bytes | None]],
        closed: Callable[[float], Awaitable[int | None]],
    ) -> None:
        self._send = send
        self._recv = recv
        self._closed = closed
        self._ids = itertools.count(1)
        self.inbox: list[dict[str, Any]] = []
        """Envelopes received and not yet taken by `next`, in order."""
        self.welcome: dict[str, Any] = {}

    async def _read(self) -> dict[str, Any]:
        frame = await self._recv()
        if frame is None:
            raise ConnectionClosed("the server closed the connection")
        envelope = orjson.loads(frame)
        assert isinstance(envelope, dict), envelope
        return envelope

    async def next(self, match: Match, timeout: float = TIMEOUT) -> dict[str, Any]:
        """Take the first envelope `match` accepts, waiting for it if it has not come yet."""
        async with asyncio.timeout(timeout):
            position = 0
            while True:
                while position < len(self.inbox):
                    if match(self.inbox[position]):
                        return self.inbox.pop(position)
                    position += 1
                self.inbox.append(await self._read())

    async def next_of(self, kind: str, timeout: float = TIMEOUT, **fields: Any) -> dict[str, Any]:
        """The data of the next envelope of type `kind` (with these data fields)."""
        data: dict[str, Any] = (await self.next(of_type(kind, **fields), timeout))["data"]
        return data

    def taken(self, match: Match) -> list[dict[str, Any]]:
        """Remove and return every envelope already received that `match` accepts."""
        found = [envelope for envelope in self.inbox if match(envelope)]
        self.inbox = [envelope for envelope in self.inbox if not match(envelope)]
        return found

    async def emit(self, kind: str, data: Any = None) -> None:
        """Send an event (no reply expected)."""
        await self._send(orjson.dumps({"type": kind, "data": data}).decode())

    async def request(self, kind: str, data: Any = None, timeout: float = TIMEOUT) -> dict[str, Any]:
        """Send a request and return its reply envelope ({"id", "data"} or {"id", "error"})."""
        request_id = next(self._ids)
        await self._send(orjson.dumps({"type": kind, "data": data, "id": request_id}).decode())
        return await self.next(lambda envelope: "type" not in envelope and envelope.get("id") == request_id, timeout)

    async def call(self, kind: str, data: Any = None) -> Any:
        """A request that must succeed: its reply data."""
        reply = await self.request(kind, data)
        assert "error" not in reply, reply
        return reply["data"]

    async def error(self, kind: str, data: Any = None) -> dict[str, Any]:
        """A request that must fail: its error object."""
        reply = await self.request(kind, data)
        assert "error" in reply, reply
        error: dict[str, Any] = reply["error"]
        return error

    async def wait_closed(self, timeout: float = TIMEOUT) -> int | None:
        """Wait for the server to close the connection (reading and keeping what comes first); the close code."""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    self.inbox.append(await self._read())
                except (ConnectionClosed, WebSocketsClosed, ConnectionError, aiohttp.ClientError):
                    break
            return await self._closed(timeout)


@asynccontextmanager
async def open_client(
    url: str,
    library: Library = "websockets",
    *,
    headers: dict[str, str] | None = None,
    subprotocols: list[str] | None = None,
    expect_welcome: bool = True,
) -> AsyncIterator[EnvelopeClient]:
    """Connect with one of the three client libraries; wait for the welcome unless told not to."""
    async with AsyncExitStack() as stack:
        if library == "websockets":
            ws = await stack.enter_async_context(
                websockets_connect(url, additional_headers=headers, subprotocols=subprotocols)  # type: ignore[arg-type]
            )

            async def ws_recv() -> str | bytes | None:
                return await ws.recv()

            async def ws_closed(timeout: float) -> int | None:
                await asyncio.wait_for(ws.wait_closed(), timeout)
                return ws.close_code

            client = EnvelopeClient(ws.send, ws_recv, ws_closed)
        elif library == "aiohttp":
            session = await stack.enter_async_context(aiohttp.ClientSession())
            aws = await stack.enter_async_context(
                session.ws_connect(url, headers=headers, protocols=subprotocols or (), autoclose=True)
            )

            async def aio_recv() -> str | bytes | None:
                message = await aws.receive()
                if message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    data: str | bytes = message.data
                    return data
                return None

            async def aio_closed(timeout: float) -> int | None:
                return aws.close_code

            client = EnvelopeClient(aws.send_str, aio_recv, aio_closed)
        else:
            hws = await hubbub_connect(url, headers=headers, subprotocols=subprotocols)
            stack.push_async_callback(hws.close)

            async def hub_recv() -> str | bytes | None:
                try:
                    return await hws.recv(timeout=None)
                except ConnectionClosed:
                    return None

            async def hub_closed(timeout: float) -> int | None:
                return await hws.wait_closed(timeout)

            client = EnvelopeClient(hws.send, hub_recv, hub_closed)
        if expect_welcome:
            client.welcome = await client.next_of("hubbub.welcome")
        yield client
