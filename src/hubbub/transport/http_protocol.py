"""One client socket while it speaks HTTP/1.1: requests parsed (httptools), bounded and pipelined,
handed to the server's app in order, answered (streaming ones chunked), and on an accepted
upgrade switched to a `WebSocketProtocol`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Protocol
from urllib.parse import unquote

import httptools

from hubbub.options import ServerOptions
from hubbub.transport import handshake
from hubbub.transport.deflate import DeflateParams
from hubbub.transport.proxies import TrustedProxies
from hubbub.transport.session import Session
from hubbub.transport.websocket import OPEN, WebSocketProtocol
from hubbub.web.request import Headers, Request
from hubbub.web.response import Response, StreamingResponse, error_response

logger = logging.getLogger("hubbub.server")

MAX_PIPELINED = 16
"""Requests a keep-alive connection may have parsed and waiting for their answers; past it
the socket is not read (a client pipelining without reading cannot grow the queue)."""
FEED_SLICE = 16 * 1024
"""A read is parsed in slices of this size, so a full pipeline stops the parsing mid-read."""


class HttpServer(Protocol):
    """What an `HttpProtocol` asks of the server that accepted its socket (`Server`)."""

    opts: ServerOptions
    loop: asyncio.AbstractEventLoop
    proxies: TrustedProxies | None
    http_connections: set[HttpProtocol]
    fd_ceiling: int
    closing: bool
    pending_upgrades: int

    @property
    def websocket_count(self) -> int:
        """Open WebSocket connections plus handshakes being decided."""

    def out_of_fds(self) -> Response:
        """The answer to a client accepted on a descriptor above the ceiling."""

    async def call_http(self, request: Request) -> Response:
        """The app's answer to a plain HTTP request."""

    async def call_upgrade(self, request: Request) -> Response | Session:
        """The app's decision on a WebSocket upgrade."""

    def open_websocket(
        self, transport: asyncio.Transport, session: Session, deflate: DeflateParams | None
    ) -> WebSocketProtocol:
        """The WebSocket side of an upgraded socket, registered with the server."""


class HttpProtocol(asyncio.Protocol):
    """One client socket while it speaks HTTP."""

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._opts = server.opts
        self._loop = server.loop
        self.transport: asyncio.Transport | None = None
        self._client: tuple[str, int] = ("", 0)
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._body_size = 0
        self._head_size = 0
        self._in_head = True
        self._queue: deque[tuple[Request, bool]] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._upgrade_data: bytes | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._done = False
        self._stash = b""
        """Bytes read but not parsed while the pipeline is full (reading is paused meanwhile)."""
        self._write_paused = False
        self._drained: asyncio.Future[None] | None = None
        self._starved = False

    # ---- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self._client = (str(peer[0]), int(peer[1]))
        self._server.http_connections.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.fileno() >= self._server.fd_ceiling:
            # Accept returns the lowest free descriptor: this one being high means nearly all are used.
            self._starved = True
        self._arm_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._done = True
        self._server.http_connections.discard(self)
        self._cancel_timer()
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._upgrade_data is not None:
            self._upgrade_data += data
            if len(self._upgrade_data) > self._opts.max_message_size + 64:
                self._respond_and_close(error_response(400, "data before the handshake completed"))
            return
        if self._stash:
            self._stash += data
            return
        if len(data) <= FEED_SLICE and len(self._queue) < MAX_PIPELINED:
            self._parse(data, b"")
        else:
            self._feed(data)

    def _feed(self, data: bytes) -> None:
        """Parse `data` slice by slice; stash the rest and stop reading once the pipeline is full."""
        view = memoryview(data)
        at = 0
        while at < len(view):
            if len(self._queue) >= MAX_PIPELINED:
                self._stash = bytes(view[at:])
                assert self.transport is not None
                self.transport.pause_reading()
                return
            end = at + FEED_SLICE
            if not self._parse(view[at:end], view[end:]):
                return
            at = end

    def _parse(self, data: bytes | memoryview, rest: bytes | memoryview) -> bool:
        """Feed one piece to the parser (`rest`: what follows it); False once parsing stopped."""
        if self._in_head:
            self._head_size += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = upgrade.args[0] if upgrade.args else len(data)
            self._upgrade_data = bytes(data[offset:]) + bytes(rest)
            self.transport.pause_reading()  # type: ignore[union-attr]
            return False
        except httptools.HttpParserError as exc:
            # httptools wraps an exception raised in a callback; its __context__ is the original.
            refused = exc.__context__
            if isinstance(refused, _RequestRefused):
                self._respond_and_close(refused.response)
            else:
                self._respond_and_close(error_response(400, "malformed HTTP request"))
            return False
        except _RequestRefused as refused:
            self._respond_and_close(refused.response)
            return False
        if self._in_head and self._head_size > self._opts.max_request_head:
            self._respond_and_close(error_response(431, "request headers too large"))
            return False
        return not self._done

    # ---- httptools callbacks ---------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._body = []
        self._body_size = 0
        self._in_head = True

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # RFC 9110 5.5: whitespace around a field value is not part of it.
        self._headers.append((name.decode("latin-1").lower(), value.decode("latin-1").strip(" \t")))

    def on_headers_complete(self) -> None:
        # data_received measures only heads still incomplete after a read; a complete one is measured here.
        size = len(self._url) + sum(len(name) + len(value) + 4 for name, value in self._headers)
        if size > self._opts.max_request_head:
            raise _RequestRefused(error_response(431, "request headers too large"))
        self._in_head = False
        self._head_size = 0

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._opts.max_request_body:
            raise _RequestRefused(error_response(413, "request body too large"))
        self._body.append(body)

    def on_message_complete(self) -> None:
        try:
            parsed = httptools.parse_url(self._url)
        except httptools.HttpParserInvalidURLError:
            raise _RequestRefused(error_response(400, "invalid request target")) from None
        proxies = self._server.proxies
        request = Request(
            method=self._parser.get_method().decode("ascii"),
            path=unquote(parsed.path.decode("latin-1")),
            query_string=(parsed.query or b"").decode("latin-1"),
            headers=Headers(items=self._headers),
            client=self._client if proxies is None else proxies.client(self._client, self._headers),
            body=b"".join(self._body),
            http_version=self._parser.get_http_version(),
        )
        # The next bytes begin a new request: an idle keep-alive connection then times out silently.
        self._body_size = 0
        self._in_head = True
        self._queue.append((request, self._parser.should_keep_alive()))
        self._cancel_timer()
        if self._worker is None or self._worker.done():
            self._worker = self._loop.create_task(self._serve())

    # ---- serving -----------------------------------------------------------------

    async def _serve(self) -> None:
        if self._starved:
            # Answered once the request is read: closing with unread input would reset the connection.
            self._respond_and_close(self._server.out_of_fds())
            return
        while self._queue and not self._done:
            request, keep_alive = self._queue.popleft()
            if self._stash:
                self._read_stash()
            upgrading = self._upgrade_data is not None and not self._queue
            if upgrading and request.is_websocket:
                await self._upgrade(request)
                return
            if upgrading:
                # Another protocol (e.g. "Upgrade: h2c"): answer in HTTP/1.1 and stop parsing.
                keep_alive = False
            response = await self._server.call_http(request)
            if self._done:
                return
            keep_alive = keep_alive and not self._server.closing
            assert self.transport is not None
            if isinstance(response, StreamingResponse):
                keep_alive = await self._stream(request, response, keep_alive)
            else:
                self.transport.write(response.encode(keep_alive=keep_alive, head_only=request.method == "HEAD"))
            if not keep_alive:
                self._finish()
                return
            if self._write_paused:
                # The client is not reading its answers: wait, and let the pipeline bound stop reading.
                self._drained = self._loop.create_future()
                await self._drained
                self._drained = None
        if not self._done:
            self._arm_timer()

    def _read_stash(self) -> None:
        """Parse what was read while the pipeline was full; read the socket again if it all fit."""
        stash = self._stash
        self._stash = b""
        self._feed(stash)
        if not self._stash and self._upgrade_data is None and not self._done:
            assert self.transport is not None
            self.transport.resume_reading()

    async def _stream(self, request: Request, response: StreamingResponse, keep_alive: bool) -> bool:
        """Send a streaming response (chunked on HTTP/1.1); whether the connection may be kept."""
        transport = self.transport
        assert transport is not None
        chunked = request.http_version != "1.0"
        keep_alive = keep_alive and chunked
        lines = response.head_lines()
        if chunked:
            lines.append("transfer-encoding: chunked")
        if not keep_alive:
            lines.append("connection: close")
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if request.method == "HEAD":
            return keep_alive
        try:
            async with contextlib.aclosing(response.chunks()) as chunks:
                async for data in chunks:
                    if self._done:
                        return False
                    transport.write(b"%x\r\n%b\r\n" % (len(data), data) if chunked else data)
                    if self._write_paused:
                        self._drained = self._loop.create_future()
                        await self._drained
                        self._drained = None
        except Exception:
            logger.exception("streaming response failed for %s %s", request.method, request.path)
            transport.abort()  # the status is sent: cutting the body short is all that is left to say
            return False
        if chunked and not self._done:
            transport.write(b"0\r\n\r\n")
        return keep_alive

    async def _upgrade(self, request: Request) -> None:
        server = self._server
        opts = self._opts
        checked = handshake.check_upgrade(request)
        if isinstance(checked, Response):
            self._respond_and_close(checked)
            return
        if not handshake.origin_allowed(request, opts.allowed_origins):
            self._respond_and_close(error_response(403, "origin not allowed"))
            return
        if server.closing:
            self._respond_and_close(error_response(503, "server shutting down"))
            return
        # A cheap local refusal before the app runs; the app's admission (cluster-wide) decides
        # the rest, including "close" mode, where the route's subprotocol must be selected.
        at_capacity = opts.max_connections is not None and server.websocket_count >= opts.max_connections
        if at_capacity and opts.over_capacity == "reject":
            self._respond_and_close(error_response(503, "server at capacity", {"retry-after": "5"}))
            return
        session: Response | Session
        server.pending_upgrades += 1
        try:
            session = await server.call_upgrade(request)
        finally:
            server.pending_upgrades -= 1
        if isinstance(session, Response):
            if not self._done:
                self._respond_and_close(session)
            return
        if self._done or server.closing:
            session.abandon()
            if not self._done:
                self._respond_and_close(error_response(503, "server shutting down"))
            return
        self._switch(checked, request, session)

    def _switch(self, key: str, request: Request, session: Session) -> None:
        transport = self.transport
        assert transport is not None
        deflate = handshake.negotiate_deflate(request, self._opts.compression)
        transport.write(handshake.switching_protocols(key, session.subprotocol, deflate))
        self._done = True
        self._cancel_timer()
        self._server.http_connections.discard(self)
        ws = self._server.open_websocket(transport, session, deflate)
        transport.set_protocol(ws)
        self._parser = None  # type: ignore[assignment]  # no more HTTP here; also ends the parser<->self cycle
        request.headers.compact()
        session.attach(ws)
        leftover = self._upgrade_data
        self._upgrade_data = None
        transport.resume_reading()
        if leftover and ws.state == OPEN:
            ws.data_received(leftover)

    def _respond_and_close(self, response: Response) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(response.encode(keep_alive=False))
        self._finish()

    def _finish(self) -> None:
        self._done = True
        self._cancel_timer()
        if self.transport is not None:
            self.transport.close()

    def close_idle(self) -> None:
        """On shutdown: close if no request is being served."""
        if self._worker is None or self._worker.done():
            self._finish()

    # ---- handshake / keep-alive timer ---------------------------------------------

    def _arm_timer(self) -> None:
        self._cancel_timer()
        self._timer = self._loop.call_later(self._opts.handshake_timeout, self._timed_out)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if self._worker is not None and not self._worker.done():
            return
        if self._head_size or self._body_size:
            self._respond_and_close(error_response(408, "request timed out"))
        else:
            self._finish()


class _RequestRefused(Exception):
    """Raised in a parser callback: the request is answered with `response` and the socket closed."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response
