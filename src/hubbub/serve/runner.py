"""Starting and stopping a server for an App, with graceful shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from typing import Any

from hubbub.app.app import App
from hubbub.serve.ops import FrontDispatcher, Operations
from hubbub.serve.tls import server_context
from hubbub.transport.server import Server
from hubbub.transport.session import Dispatcher

logger = logging.getLogger("hubbub.server")


def host_in_url(host: str) -> str:
    """A host as it goes in a URL: an IPv6 address in brackets (RFC 3986)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class RunningServer:
    """An app being served; `port` is the bound port. Stop it with `shutdown()`."""

    def __init__(
        self,
        app: App,
        server: Server,
        host: str,
        port: int,
        background: list[asyncio.Task[Any]],
        *,
        tls: bool = False,
        ops: Operations | None = None,
        internal: Server | None = None,
        internal_port: int | None = None,
    ) -> None:
        self.app = app
        self.server = server
        self.host = host
        self.port = port
        self.tls = tls
        """Whether the port speaks TLS (https:// and wss://)."""
        self.ops = ops
        """The /metrics and dashboard routes, if any are served."""
        self.internal = internal
        self.internal_port = internal_port
        """The port serving /metrics and the dashboard when `internal_port` is set."""
        self._background = background
        self._stopped = False

    @property
    def url(self) -> str:
        """ws://host:port (wss:// with TLS) of this server (an IPv6 host in brackets)."""
        return f"{'wss' if self.tls else 'ws'}://{host_in_url(self.host)}:{self.port}"

    async def shutdown(self, timeout: float | None = None) -> bool:
        """Stop accepting, notify clients, close every connection with 1001, let handlers
        finish until the deadline, run shutdown hooks. True if everything ended in time."""
        if self._stopped:
            return True
        self._stopped = True
        opts = self.app.options
        deadline = time.monotonic() + (opts.shutdown_timeout if timeout is None else timeout)
        servers = [self.server] if self.internal is None else [self.server, self.internal]
        for server in servers:
            server.stop_accepting()
        if opts.shutdown_message is not None:
            await self.app.hub.broadcast(opts.shutdown_message)
        for server in servers:
            server.close_websockets()
        self.app.fallback.close_all()
        clean = True
        for server in servers:
            waited = await server.wait_closed(max(0.0, min(opts.close_timeout, deadline - time.monotonic())))
            clean = clean and waited
        apps = [self.app] if self.ops is None else [self.app, self.ops.app]
        pending = self._in_flight(apps, servers)
        while pending:
            _, pending = await asyncio.wait(pending, timeout=max(0.0, deadline - time.monotonic()))
            if pending:
                break
            # Events queued behind the finished handlers (on_disconnect, say) have started by now.
            pending = self._in_flight(apps, servers)
        for task in pending:
            task.cancel()
        clean = clean and not pending
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        for app in apps:
            await app.shutdown()
            await app.hub.stop()
        logger.info("server on %s:%s stopped", self.host, self.port)
        return clean

    @staticmethod
    def _in_flight(apps: list[App], servers: list[Server]) -> set[asyncio.Task[Any]]:
        pending: set[asyncio.Task[Any]] = set()
        for app in apps:
            pending |= app.tasks
        for server in servers:
            pending |= server.http_in_flight()
        return pending


async def start(
    app: App,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    reuse_port: bool = False,
    sock: socket.socket | None = None,
) -> RunningServer:
    """Run startup hooks and start listening; returns once the port is bound.

    With the app's options this also serves /metrics and the dashboard (on the
    same port, or on `internal_port`) and speaks TLS when `certfile` and `keyfile` are set."""
    opts = app.options
    context = server_context(opts.certfile, opts.keyfile) if opts.certfile and opts.keyfile else None
    ops = Operations.for_app(app)
    await app.hub.start()
    background = await app.startup()
    if ops is not None:
        await ops.app.hub.start()
        background += await ops.app.startup()
    dispatcher: Dispatcher = app if ops is None or opts.internal_port is not None else FrontDispatcher(app, ops)
    server = Server(dispatcher, opts, app.hub.stats)
    bound = await server.listen(host, port, reuse_port=reuse_port, sock=sock, ssl=context)
    scheme = "https" if context is not None else "http"
    logger.info("hubbub serving on %s://%s:%s", scheme, host_in_url(host), bound)
    internal = internal_port = None
    if ops is not None and opts.internal_port is not None:
        internal = Server(ops.app, opts, ops.app.hub.stats)
        internal_port = await internal.listen(host, opts.internal_port, reuse_port=reuse_port)
        logger.info("metrics and dashboard on http://%s:%s", host_in_url(host), internal_port)
    return RunningServer(
        app,
        server,
        host,
        bound,
        background,
        tls=context is not None,
        ops=ops,
        internal=internal,
        internal_port=internal_port,
    )


async def serve(app: App, host: str = "127.0.0.1", port: int = 8000, *, reuse_port: bool = False) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):  # before listening: a SIGTERM once the port opens is graceful
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    running = await start(app, host, port, reuse_port=reuse_port)
    if running.server.gc_freezer is not None:
        running.server.gc_freezer.freeze_startup()
    await stop.wait()
    logger.info("shutting down")
    await running.shutdown()


def run(app: App, host: str = "127.0.0.1", port: int = 8000, *, reuse_port: bool = False) -> None:
    """Serve `app` (on uvloop when installed) until SIGTERM/SIGINT."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        asyncio.run(serve(app, host, port, reuse_port=reuse_port))
    else:
        uvloop.run(serve(app, host, port, reuse_port=reuse_port))
