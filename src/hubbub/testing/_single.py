"""Helpers for testing hubbub apps with pytest: serve an app on a free port, connect
clients, make HTTP requests, and wait for things with timeouts.

    async def test_echo():
        async with serve_app(app) as server:
            async with await server.connect("/echo") as ws:
                await ws.send("hi")
                assert await ws.recv() == "hi"
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson

from hubbub.app.app import App
from hubbub.client import WebSocketClient, connect
from hubbub.serve.runner import RunningServer, host_in_url, start


class HttpResult:
    """A response received by `TestServer.request`."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        """The body parsed as JSON."""
        return orjson.loads(self.body)

    @property
    def text(self) -> str:
        """The body as text."""
        return self.body.decode("utf-8")


class TestServer:
    """A running app on 127.0.0.1 and a free port."""

    __test__ = False  # not a pytest test class

    def __init__(self, running: RunningServer) -> None:
        self.running = running
        self.app = running.app
        self.host = running.host
        self.port = running.port

    def url(self, path: str = "/") -> str:
        """The ws:// URL of `path`."""
        return f"ws://{host_in_url(self.host)}:{self.port}{path}"

    def http_url(self, path: str = "/") -> str:
        """The http:// URL of `path`."""
        return f"http://{host_in_url(self.host)}:{self.port}{path}"

    async def connect(self, path: str = "/", **kwargs: Any) -> WebSocketClient:
        """Open a WebSocket to `path` (see `hubbub.client.connect` for options)."""
        return await connect(self.url(path), **kwargs)

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | str | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> HttpResult:
        """Make one HTTP/1.1 request (connection: close) and read the whole response."""
        if json is not None:
            body = orjson.dumps(json)
            headers = {"content-type": "application/json", **(headers or {})}
        payload = body.encode("utf-8") if isinstance(body, str) else (body or b"")
        lines = [f"{method} {path} HTTP/1.1", f"host: {self.host}:{self.port}", "connection: close"]
        lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
        if payload or method in ("POST", "PUT", "PATCH"):
            lines.append(f"content-length: {len(payload)}")
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(self.host, self.port)
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
            raw = await reader.read()
            writer.close()
        head, _, content = raw.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parsed: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            parsed[name.strip().lower()] = value.strip()
        return HttpResult(int(status_line.split(" ", 2)[1]), parsed, content)

    async def shutdown(self, timeout: float | None = None) -> bool:
        """Shut the server down gracefully (see `RunningServer.shutdown`)."""
        return await self.running.shutdown(timeout)


@asynccontextmanager
async def serve_app(app: App, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[TestServer]:
    """Serve `app` for the duration of the block; it is shut down on exit."""
    running = await start(app, host, port)
    server = TestServer(running)
    try:
        yield server
    finally:
        await running.shutdown(timeout=5.0)


async def wait_for(condition: Callable[[], object], timeout: float = 5.0, interval: float = 0.01) -> None:
    """Wait until `condition()` is true (it may be async); raise TimeoutError after `timeout`."""
    async with asyncio.timeout(timeout):
        while True:
            result = condition()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await asyncio.sleep(interval)
