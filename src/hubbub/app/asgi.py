"""The App as an ASGI 3 application: the same routes under uvicorn, Hypercorn, or mounted
in FastAPI / Starlette (`fastapi_app.mount("/rt", app)`).

The ASGI server owns the sockets, the HTTP parsing and the WebSocket framing;
hubbub keeps everything above: routing, middleware, authentication, rooms,
users, presence, the broker. A WebSocket's messages go through the same
`Connection` as on the native server; `AsgiWebSocket` stands in for the
native transport below it (bounded outbox, backpressure policy, pausing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Final, Protocol

from hubbub.transport import handshake
from hubbub.transport.framing import CLOSE_ABNORMAL, CLOSE_GOING_AWAY, CLOSE_POLICY
from hubbub.transport.queued import QueuedTransport
from hubbub.web.request import Headers, Request
from hubbub.web.response import Response, StreamingResponse, as_body, error_response

if TYPE_CHECKING:
    from hubbub.app.fallback import FallbackSessions
    from hubbub.options import ServerOptions
    from hubbub.runtime.hub import Hub
    from hubbub.transport.websocket import TransportStats, WebSocketListener

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

logger = logging.getLogger("hubbub.server")

OPEN: Final = 0
CLOSING: Final = 1
CLOSED: Final = 2
CLOSE_MESSAGE_TOO_BIG: Final = 1009
_CLOSE: Final = object()
"""Queued after the last message: the writer sends the close and stops."""


def route_path(scope: Scope) -> str:
    """The path the app routes on: the request path below the mount point (`root_path`)."""
    path: str = scope.get("path") or "/"
    root: str = scope.get("root_path") or ""
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path if path.startswith("/") else "/" + path


def request_from_scope(scope: Scope, method: str, body: bytes = b"") -> Request:
    """A hubbub Request for an ASGI HTTP or WebSocket scope."""
    client = scope.get("client")
    items = [(name.decode("latin-1").lower(), value.decode("latin-1")) for name, value in scope["headers"]]
    headers = Headers(items=items)
    return Request(
        method=method,
        path=route_path(scope),
        query_string=(scope.get("query_string") or b"").decode("latin-1"),
        headers=headers,
        client=(str(client[0]), int(client[1])) if client else ("", 0),
        body=body,
        http_version=scope.get("http_version", "1.1"),
    )


def _raw_headers(response: Response) -> list[tuple[bytes, bytes]]:
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in response.headers.items()]
    if response.media_type is not None:
        headers.append((b"content-type", response.media_type.encode("latin-1")))
    return headers


async def _stream_until_disconnect(send: Send, response: StreamingResponse, receive: Receive | None) -> bool:
    """Send a streaming body until it ends (True) or the client disconnects (False): an ASGI
    server may drop what is sent after a disconnect silently, so `receive` is watched."""

    async def pump() -> None:
        async with contextlib.aclosing(response.chunks()) as chunks:
            async for data in chunks:
                await send({"type": "http.response.body", "body": data, "more_body": True})

    async def disconnected() -> None:
        while receive is not None and (await receive())["type"] != "http.disconnect":
            pass
        if receive is None:
            await asyncio.Event().wait()

    pumping = asyncio.ensure_future(pump())
    watching = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({pumping, watching}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (pumping, watching):
            if not task.done():
                task.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        if not pumping.done():
            await asyncio.gather(pumping, return_exceptions=True)
    if pumping.cancelled():
        return False
    pumping.result()  # its exception, if any
    return True


class Served(Protocol):
    """What the bridge needs of the app it serves (`hubbub.App`)."""

    hub: Hub
    options: ServerOptions
    tasks: set[asyncio.Task[Any]]
    fallback: FallbackSessions

    async def handle_http(self, request: Request) -> Response: ...

    async def handle_upgrade(self, request: Request) -> Any: ...

    async def startup(self) -> list[asyncio.Task[Any]]: ...

    async def shutdown(self) -> None: ...


class AsgiBridge:
    """Serves one App over ASGI: HTTP requests, WebSocket connections and the lifespan."""

    def __init__(self, app: Served) -> None:
        self.app = app
        self.sockets: set[AsgiWebSocket] = set()
        self.closing = False
        self._started = False
        self._start_lock = asyncio.Lock()
        self._background: list[asyncio.Task[Any]] = []
        self._all_closed = asyncio.Event()
        self._all_closed.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if not self._started:
            await self.start()  # mounted in another app, whose lifespan does not reach us
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)

    # ---- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Connect the broker, run startup hooks, start background tasks (once)."""
        async with self._start_lock:
            if self._started:
                return
            await self.app.hub.start()
            self._background = await self.app.startup()
            self._started = True
            self.closing = False

    async def stop(self) -> None:
        """Close every WebSocket with 1001, let handlers finish, run shutdown hooks."""
        if not self._started:
            return
        opts = self.app.options
        self.closing = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + opts.shutdown_timeout
        if opts.shutdown_message is not None:
            await self.app.hub.broadcast(opts.shutdown_message)
        for ws in list(self.sockets):
            ws.close(CLOSE_GOING_AWAY, "server shutting down")
        self.app.fallback.close_all()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_closed.wait(), max(0.0, min(opts.close_timeout, deadline - loop.time())))
        pending = set(self.app.tasks)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()))
        for task in pending:
            task.cancel()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.app.shutdown()
        await self.app.hub.stop()
        self._started = False

    @contextlib.asynccontextmanager
    async def lifespan(self, _parent: object = None) -> AsyncIterator[None]:
        """Start on enter, stop on exit: `FastAPI(lifespan=app.lifespan)` when `app` is mounted."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    logger.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ---- HTTP ----------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.app.options.max_request_body
        parts: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._respond(send, error_response(413, "request body too large"), head_only=False)
                return
            parts.append(chunk)
            more = message.get("more_body", False)
        request = request_from_scope(scope, scope["method"], b"".join(parts))
        try:
            response = await self.app.handle_http(request)
            if not isinstance(response, StreamingResponse):
                response.body = as_body(response.body)
        except Exception:
            logger.exception("HTTP handler failed for %s %s", request.method, request.path)
            response = error_response(500, "internal server error")
        await self._respond(send, response, head_only=request.method == "HEAD", receive=receive)

    async def _respond(
        self, send: Send, response: Response, *, head_only: bool, receive: Receive | None = None
    ) -> None:
        headers = _raw_headers(response)
        if not isinstance(response, StreamingResponse):
            headers.append((b"content-length", str(len(response.body)).encode()))
            await send({"type": "http.response.start", "status": response.status, "headers": headers})
            await send({"type": "http.response.body", "body": b"" if head_only else response.body})
            return
        try:
            await send({"type": "http.response.start", "status": response.status, "headers": headers})
        except OSError:
            return  # the client left before the answer (ASGI servers raise OSError then): the body never starts
        if not head_only:
            try:
                if not await _stream_until_disconnect(send, response, receive):
                    return  # the client went away
            except OSError:
                return  # the client went away
            except Exception:
                logger.exception("streaming response failed")
                return  # the status is sent: the server sees an incomplete body and drops the connection
        await send({"type": "http.response.body", "body": b""})

    # ---- WebSocket -----------------------------------------------------------------------

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        request = request_from_scope(scope, "GET")
        if not handshake.origin_allowed(request, self.app.options.allowed_origins):
            await self._refuse(scope, send, error_response(403, "origin not allowed"))
            return
        if self.closing:
            await self._refuse(scope, send, error_response(503, "server shutting down"))
            return
        try:
            decided = await self.app.handle_upgrade(request)
        except Exception:
            logger.exception("upgrade handling failed for %s", request.path)
            decided = error_response(500, "internal server error")
        if isinstance(decided, Response):
            await self._refuse(scope, send, decided)
            return
        accept = {"type": "websocket.accept", "subprotocol": decided.subprotocol}
        ws = AsgiWebSocket(send, self.app.options, self.app.hub.stats, decided)
        try:
            await send(accept)
        except OSError:
            decided.abandon()
            return
        self.sockets.add(ws)
        self._all_closed.clear()
        try:
            decided.attach(ws)  # the AsgiWebSocket stands in for the native WebSocketProtocol
            await ws.run(receive)
        finally:
            self.sockets.discard(ws)
            if not self.sockets:
                self._all_closed.set()

    async def _refuse(self, scope: Scope, send: Send, response: Response) -> None:
        """Refuse a handshake with an HTTP response where the server can send one, else close (403)."""
        if "websocket.http.response" in (scope.get("extensions") or {}):
            start = {"type": "websocket.http.response.start", "status": response.status}
            await send({**start, "headers": _raw_headers(response)})
            await send({"type": "websocket.http.response.body", "body": as_body(response.body)})
        else:
            await send({"type": "websocket.close", "code": CLOSE_POLICY})


class AsgiWebSocket(QueuedTransport):
    """A WebSocket served by an ASGI server, with the native transport's interface upward:
    `send`, `send_message`, `close`, `pause_reading`, `resume_reading`, `buffered_amount`."""

    __slots__ = (
        "_backlog",
        "_close_timer",
        "_opts",
        "_reader",
        "_send",
        "close_code",
        "close_reason",
        "listener",
        "state",
    )

    def __init__(self, send: Send, opts: ServerOptions, stats: TransportStats, listener: WebSocketListener) -> None:
        super().__init__(opts, stats)
        self._send = send
        self._opts = opts
        self.listener = listener
        self.state = OPEN
        self.close_code = CLOSE_ABNORMAL
        self.close_reason = ""
        self._backlog = False
        self._reader: asyncio.Task[Any] | None = None
        self._close_timer: asyncio.TimerHandle | None = None

    # ---- outgoing ----------------------------------------------------------------------

    def send(self, data: str | bytes) -> bool:
        """Queue a text (str) or binary (bytes) message; False if dropped or closed."""
        if self.state != OPEN or not self._enqueue(data):
            return False
        if self._queued > self._limit // 2:
            self._backlog = True
        return True

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close after what is queued; the connection ends when the server reports it."""
        if self.state != OPEN:
            return
        self.state = CLOSING
        self.close_code = code
        self.close_reason = reason
        self._queue.append(_CLOSE)
        self._wakeup.set()

    async def _write(self) -> None:
        try:
            await self._write_queued()
        except OSError:
            self.state = CLOSED  # the client went away; the reader sees the disconnect

    async def _write_queued(self) -> None:
        queue = self._queue
        send = self._send
        while True:
            if not queue:
                if self._backlog and self.state == OPEN:
                    self._backlog = False
                    self.listener.ws_drain()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            item = queue.popleft()
            if item is _CLOSE:
                await send({"type": "websocket.close", "code": self.close_code, "reason": self.close_reason})
                loop = asyncio.get_running_loop()
                self._close_timer = loop.call_later(self._opts.close_timeout, self._stop_reading)
                return
            if isinstance(item, str):
                self._queued -= len(item)
                await send({"type": "websocket.send", "text": item})
            elif isinstance(item, bytes):
                self._queued -= len(item)
                await send({"type": "websocket.send", "bytes": item})

    def _stop_reading(self) -> None:
        """The peer did not finish the close handshake in time: stop waiting for it."""
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()

    # ---- incoming ----------------------------------------------------------------------

    async def run(self, receive: Receive) -> None:
        """Pass messages up until the connection ends, then report the close once."""
        self._reader = asyncio.current_task()
        writer = asyncio.create_task(self._write(), name="hubbub-asgi-writer")
        code, reason = CLOSE_ABNORMAL, "connection dropped without a close frame"
        limit = self._opts.max_message_size
        try:
            while True:
                if not self._read_allowed.is_set():
                    await self._read_allowed.wait()
                message = await receive()
                kind = message["type"]
                if kind == "websocket.receive":
                    text = message.get("text")
                    data: str | bytes = text if text is not None else (message.get("bytes") or b"")
                    if len(data) > limit:
                        self.close(CLOSE_MESSAGE_TOO_BIG, "message too big")
                    elif self.state == OPEN:
                        self.listener.ws_message(data, text is None)
                elif kind == "websocket.disconnect":
                    code, reason = int(message.get("code", 1005)), str(message.get("reason") or "")
                    break
        except asyncio.CancelledError:
            if self._close_timer is None:
                raise  # cancelled from outside (server shutdown), not our close timeout
        except OSError:
            pass  # the client went away
        finally:
            if self.state != OPEN:
                code, reason = self.close_code, self.close_reason
            self.state = CLOSED
            if self._close_timer is not None:
                self._close_timer.cancel()
            writer.cancel()
            self._queue.clear()
            self._queued = 0
            self.listener.ws_closed(code, reason)
