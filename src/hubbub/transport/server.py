"""The listening server: HTTP/1.1 on a socket, upgraded to WebSocket on request.

`Server` owns the listening socket, the open connections, the timer sweep
(heartbeat, idle, lifetime), the file-descriptor reserve and the closing of
everything on shutdown. Each accepted socket is an `HttpProtocol`
(`hubbub.transport.http_protocol`), which hands requests to a `Dispatcher` (the
app, `hubbub.transport.session`) and on an accepted upgrade switches the socket
to a `WebSocketProtocol`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from ssl import SSLContext

from hubbub.options import ServerOptions
from hubbub.text import clip
from hubbub.transport.deflate import DeflateParams
from hubbub.transport.framing import CLOSE_GOING_AWAY, CLOSE_INTERNAL_ERROR
from hubbub.transport.gcfreeze import GcFreezer
from hubbub.transport.http_protocol import HttpProtocol
from hubbub.transport.outbox import flusher_for
from hubbub.transport.proxies import TrustedProxies
from hubbub.transport.session import Dispatcher, Session
from hubbub.transport.sweep import Sweep
from hubbub.transport.websocket import OPEN, TransportStats, WebSocketProtocol
from hubbub.web.request import Request
from hubbub.web.response import Response, StreamingResponse, as_body, error_response

logger = logging.getLogger("hubbub.server")

FD_RESERVE = 32
"""File descriptors kept back from clients for everything else the process opens (Redis,
files, the app's own sockets): a client accepted on a descriptor above `limit - FD_RESERVE`
is answered 503 instead of being served, so that it learns why rather than being dropped."""
FD_LOG_INTERVAL = 10.0
"""At most one "out of file descriptors" warning per this many seconds."""


def fd_limit() -> int | None:
    """The process's open-file limit (soft RLIMIT_NOFILE), or None if there is none."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return None
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def fd_ceiling(limit: int | None, reserve: int = FD_RESERVE) -> int:
    """The lowest descriptor number at which new clients are refused (half the limit when it
    is too low to keep the whole reserve)."""
    if limit is None:
        return 1 << 30
    return limit - reserve if limit > 2 * reserve else limit // 2


class Server:
    """A listening socket, its connections, and their timers."""

    def __init__(self, dispatcher: Dispatcher, opts: ServerOptions, stats: TransportStats | None = None) -> None:
        self.dispatcher = dispatcher
        self.opts = opts
        self.loop = asyncio.get_running_loop()
        self.flusher = flusher_for(self.loop)
        self.stats = stats or TransportStats()
        self.proxies = TrustedProxies(opts.forwarded_allow_ips) if opts.forwarded_allow_ips else None
        self.websockets: set[WebSocketProtocol] = set()
        self.http_connections: set[HttpProtocol] = set()
        self.pending_upgrades = 0
        self.opened_total = 0
        """WebSocket connections opened since the server started."""
        self.closing = False
        self.fd_limit = fd_limit()
        self.fd_ceiling = fd_ceiling(self.fd_limit)
        self._fd_warned_at = -FD_LOG_INTERVAL
        self._fd_refusals_logged = 0
        self._servers: list[asyncio.base_events.Server] = []
        self._sweep = Sweep(self.loop, opts.tick, self.websockets, self._check_timers)
        self.gc_freezer = GcFreezer(self.loop, self, batch=opts.gc_freeze_batch) if opts.gc_freeze_batch else None
        self._all_closed = asyncio.Event()
        self._all_closed.set()

    @property
    def websocket_count(self) -> int:
        """Open WebSocket connections plus handshakes being decided."""
        return len(self.websockets) + self.pending_upgrades

    def out_of_fds(self) -> Response:
        """Count (and, rate-limited, log) a client refused for want of file descriptors; its 503."""
        stats = self.stats
        stats.fd_refusals += 1
        now = self.loop.time()
        if now - self._fd_warned_at >= FD_LOG_INTERVAL:
            logger.warning(
                "out of file descriptors (new clients reach descriptor %d of the limit %s): answering 503; "
                "%d refused since the last warning; raise the limit (ulimit -n)",
                self.fd_ceiling,
                self.fd_limit,
                stats.fd_refusals - self._fd_refusals_logged,
            )
            self._fd_warned_at = now
            self._fd_refusals_logged = stats.fd_refusals
        return error_response(503, "server out of file descriptors", {"retry-after": "5"})

    @property
    def open_now(self) -> int:
        """Open WebSocket connections (read by the garbage-collector freezer)."""
        return len(self.websockets)

    def http_in_flight(self) -> set[asyncio.Task[None]]:
        """Tasks answering HTTP requests right now (a graceful shutdown waits for them)."""
        return {conn._worker for conn in self.http_connections if conn._worker is not None and not conn._worker.done()}

    async def listen(
        self,
        host: str,
        port: int,
        *,
        reuse_port: bool = False,
        sock: socket.socket | None = None,
        ssl: SSLContext | None = None,
    ) -> int:
        """Start accepting on host:port (or an existing socket), over TLS with `ssl`; return the bound port."""
        if sock is not None:
            srv = await self.loop.create_server(lambda: HttpProtocol(self), sock=sock, backlog=4096, ssl=ssl)
        else:
            srv = await self.loop.create_server(
                lambda: HttpProtocol(self), host, port, reuse_port=reuse_port or None, backlog=4096, ssl=ssl
            )
        self._servers.append(srv)
        if not self.closing:
            self._sweep.start()
            if self.gc_freezer is not None:
                self.gc_freezer.start()
        bound: int = srv.sockets[0].getsockname()[1]
        return bound

    async def call_http(self, request: Request) -> Response:
        """Run the app's HTTP handler; an unexpected error becomes a 500."""
        try:
            response = await self.dispatcher.handle_http(request)
            if not isinstance(response, StreamingResponse):
                response.body = as_body(response.body)  # a body set after construction is checked here
            return response
        except Exception:
            logger.exception("HTTP handler failed for %s %s", request.method, clip(request.path))
            return error_response(500, "internal server error")

    async def call_upgrade(self, request: Request) -> Response | Session:
        """Ask the app about an upgrade; an unexpected error refuses it with 500."""
        try:
            return await self.dispatcher.handle_upgrade(request)
        except Exception:
            logger.exception("upgrade handling failed for %s", clip(request.path))
            return error_response(500, "internal server error")

    def open_websocket(
        self, transport: asyncio.Transport, session: Session, deflate: DeflateParams | None
    ) -> WebSocketProtocol:
        """Create and register the WebSocket side of an upgraded socket."""
        ws = _TrackedWebSocket(transport, session, self.opts, self.flusher, self.stats, deflate, self.loop.time())
        ws.server = self
        self.websockets.add(ws)
        self.opened_total += 1
        self._all_closed.clear()
        return ws

    def forget(self, ws: WebSocketProtocol) -> None:
        """A WebSocket connection is gone."""
        self.websockets.discard(ws)
        if not self.websockets:
            self._all_closed.set()

    # ---- timers --------------------------------------------------------------------

    def _check_timers(self, ws: WebSocketProtocol, now: float) -> None:
        """One connection's heartbeat, idle timeout and lifetime (called by the sweep)."""
        if ws.heard:
            ws.heard = False
            ws.last_heard = now
        if ws.got_message:
            ws.got_message = False
            ws.last_message = now
        if ws.state != OPEN:
            return
        opts = self.opts
        if opts.max_lifetime and now - ws.opened_at >= opts.max_lifetime:
            ws.close(CLOSE_GOING_AWAY, "connection lifetime exceeded")
        elif opts.idle_timeout and now - ws.last_message >= opts.idle_timeout:
            ws.close(CLOSE_GOING_AWAY, "idle timeout")
        elif opts.ping_interval:
            if ws.ping_sent_at:
                if ws.reading_paused:
                    # We stopped reading (the app is behind): the pong may be waiting unread.
                    ws.ping_sent_at = now
                elif opts.ping_timeout and now - ws.ping_sent_at >= opts.ping_timeout:
                    ws.abort(CLOSE_INTERNAL_ERROR, "ping timeout")
            elif now - ws.last_heard >= opts.ping_interval:
                ws.ping(now)

    # ---- shutdown --------------------------------------------------------------------

    def stop_accepting(self) -> None:
        """Close the listening sockets; open connections stay."""
        self.closing = True
        self._sweep.stop()
        if self.gc_freezer is not None:
            self.gc_freezer.stop()
        for srv in self._servers:
            srv.close()
        for conn in list(self.http_connections):
            conn.close_idle()

    def close_websockets(self, code: int = CLOSE_GOING_AWAY, reason: str = "server shutting down") -> None:
        """Start the close handshake on every open WebSocket."""
        for ws in list(self.websockets):
            ws.close(code, reason)

    async def wait_closed(self, timeout: float) -> bool:
        """Wait until every WebSocket is gone; abort the rest after `timeout`. True if all closed cleanly."""
        try:
            await asyncio.wait_for(self._all_closed.wait(), timeout)
            clean = True
        except TimeoutError:
            clean = False
            for ws in list(self.websockets):
                ws.abort()
        self._sweep.stop()
        if self.gc_freezer is not None:
            self.gc_freezer.stop()
        for srv in self._servers:
            await srv.wait_closed()
        return clean


class _TrackedWebSocket(WebSocketProtocol):
    """A WebSocket that tells its server when it is gone."""

    __slots__ = ("server",)

    server: Server

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.forget(self)
        super().connection_lost(exc)
