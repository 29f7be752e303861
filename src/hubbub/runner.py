"""Starting and stopping a server for an App, with graceful shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from typing import Any

from hubbub.app import App
from hubbub.transport.server import Server

logger = logging.getLogger("hubbub.server")


def host_in_url(host: str) -> str:
    """A host as it goes in a URL: an IPv6 address in brackets (RFC 3986)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class RunningServer:
    """An app being served; `port` is the bound port. Stop it with `shutdown()`."""

    def __init__(self, app: App, server: Server, host: str, port: int, background: list[asyncio.Task[Any]]) -> None:
        self.app = app
        self.server = server
        self.host = host
        self.port = port
        self._background = background
        self._stopped = False

    @property
    def url(self) -> str:
        """ws://host:port of this server (an IPv6 host in brackets)."""
        return f"ws://{host_in_url(self.host)}:{self.port}"

    async def shutdown(self, timeout: float | None = None) -> bool:
        """Stop accepting, notify clients, close every connection with 1001, let handlers
        finish until the deadline, run shutdown hooks. True if everything ended in time."""
        if self._stopped:
            return True
        self._stopped = True
        opts = self.app.options
        deadline = time.monotonic() + (opts.shutdown_timeout if timeout is None else timeout)
        self.server.stop_accepting()
        if opts.shutdown_message is not None:
            await self.app.hub.broadcast(opts.shutdown_message)
        self.server.close_websockets()
        clean = await self.server.wait_closed(max(0.0, min(opts.close_timeout, deadline - time.monotonic())))
        pending = set(self.app.tasks) | self.server.http_in_flight()
        while pending:
            _, pending = await asyncio.wait(pending, timeout=max(0.0, deadline - time.monotonic()))
            if pending:
                break
            # Events queued behind the finished handlers (on_disconnect, say) have started by now.
            pending = set(self.app.tasks) | self.server.http_in_flight()
        for task in pending:
            task.cancel()
        clean = clean and not pending
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.app.shutdown()
        await self.app.hub.stop()
        logger.info("server on %s:%s stopped", self.host, self.port)
        return clean


async def start(
    app: App,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    reuse_port: bool = False,
    sock: socket.socket | None = None,
) -> RunningServer:
    """Run startup hooks and start listening; returns once the port is bound."""
    await app.hub.start()
    background = await app.startup()
    server = Server(app, app.options, app.hub.stats)
    bound = await server.listen(host, port, reuse_port=reuse_port, sock=sock)
    logger.info("hubbub serving on http://%s:%s", host_in_url(host), bound)
    return RunningServer(app, server, host, bound, background)


async def serve(app: App, host: str = "127.0.0.1", port: int = 8000, *, reuse_port: bool = False) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully."""
    running = await start(app, host, port, reuse_port=reuse_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
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
