"""The client side of the fallback transport: an event stream (GET, `text/event-stream`)
for what the server sends, a POST per message for what the client sends, on the route's
own path. `Client(..., transports=("websocket", "sse"))` uses it when a WebSocket cannot be
opened. It needs aiohttp (`pip install 'hubbub[sse]'`)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_module
from collections import deque
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from hubbub.errors import ConnectionClosed, HandshakeError
from hubbub.transport.framing import CLOSE_ABNORMAL

SESSION_HEADER = "x-hubbub-session"


def http_url(url: str) -> str:
    """The http(s):// URL of a ws(s):// one (the same route)."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path or "/", parts.query, ""))


class SseClient:
    """One fallback session, with the raw WebSocket client's interface to `Client`:
    `send`, `recv`, `close`, `abort`, `wait_closed`, `close_code`, `close_reason`."""

    def __init__(self, http: Any, url: str, response: Any) -> None:
        self._http = http
        self._url = url
        self._response = response
        self.session = ""
        self.close_code: int | None = CLOSE_ABNORMAL
        self.close_reason = "event stream dropped"
        self._messages: deque[str] = deque()
        self._arrived = asyncio.Event()
        self._ended = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._posting = asyncio.Lock()
        self._named = asyncio.Event()
        self._closer: asyncio.Future[None] | None = None

    async def _start(self, timeout: float) -> None:
        self._reader = asyncio.create_task(self._read(), name="hubbub-sse-reader")
        await asyncio.wait_for(self._named.wait(), timeout)

    async def _read(self) -> None:
        event, data = "message", []
        try:
            async for raw in self._response.content:
                line = raw.decode("utf-8").rstrip("\r\n")
                if line:
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "event":
                        event = value
                    elif name == "data":
                        data.append(value)
                    continue
                if data:
                    self._event(event, "\n".join(data))
                event, data = "message", []
        except Exception:
            pass
        finally:
            self._ended.set()
            self._arrived.set()
            self._named.set()
            self._response.release()

    def _event(self, event: str, data: str) -> None:
        if event == "session":
            self.session = orjson.loads(data)["session"]
            self._named.set()
        elif event == "close":
            closing = orjson.loads(data)
            self.close_code, self.close_reason = int(closing["code"]), str(closing["reason"])
        else:
            self._messages.append(data)
            self._arrived.set()

    async def recv(self, timeout: float | None = 10.0) -> str:
        """The next envelope (text); ConnectionClosed once the stream ended."""
        async with asyncio.timeout(timeout):
            while not self._messages:
                if self._ended.is_set():
                    raise ConnectionClosed(f"closed with {self.close_code}")
                self._arrived.clear()
                await self._arrived.wait()
        return self._messages.popleft()

    async def send(self, text: str | bytes) -> None:
        """POST one envelope (in order with the others); ConnectionClosed if the session is gone."""
        if self._ended.is_set():
            raise ConnectionClosed(f"closed with {self.close_code}")
        body = text.encode("utf-8") if isinstance(text, str) else text
        async with self._posting:
            try:
                async with self._http.post(
                    self._url, data=body, headers={SESSION_HEADER: self.session, "content-type": "application/json"}
                ) as answer:
                    await answer.read()
                    status = answer.status
            except OSError as exc:
                raise ConnectionClosed(str(exc)) from None
        if status != 202:
            raise ConnectionClosed(f"POST answered {status}")

    def abort(self) -> None:
        """Drop the stream at once."""
        if self._reader is not None:
            self._reader.cancel()
        self._response.close()
        self._closer = asyncio.ensure_future(self._http.close())

    async def close(self, code: int = 1000, reason: str = "", timeout: float = 10.0) -> None:
        """End the session (the stream is dropped; the server sees it end)."""
        self.close_code, self.close_reason = code, reason
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        self._response.close()
        await self._http.close()

    async def wait_closed(self, timeout: float = 10.0) -> None:
        """Wait for the stream's end, then let go of the HTTP session."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ended.wait(), timeout)
        await self._http.close()


async def open_sse(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
    ssl: ssl_module.SSLContext | None = None,
) -> SseClient:
    """Open a fallback session on a channel route's ws(s):// URL; HandshakeError if refused."""
    import aiohttp

    target = http_url(url)
    connector = aiohttp.TCPConnector(ssl=ssl) if ssl is not None else aiohttp.TCPConnector()
    http = aiohttp.ClientSession(connector=connector, headers=headers or {}, read_bufsize=2**22)
    try:
        response = await asyncio.wait_for(
            http.get(target, headers={"accept": "text/event-stream"}, timeout=aiohttp.ClientTimeout(total=None)),
            timeout,
        )
        if response.status != 200:
            body = await response.read()
            raise HandshakeError(response.status, dict(response.headers), body)
        client = SseClient(http, target, response)
        await client._start(timeout)
        if not client.session:
            raise ConnectionClosed("the event stream ended before naming its session")
        return client
    except BaseException:
        await http.close()
        raise
