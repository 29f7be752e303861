"""A tiny TCP relay between test clients and a server: it can cut every connection through
it (a network drop), refuse new ones for a while (the network stays down), and stop passing
what the server sends (a client that stalls, so the server's queue for it fills); or, as a
proxy that does not speak WebSocket, answer every upgrade request with 400 and pass the rest, or
(a network that swallows upgrades) take every upgrade request and never answer it, passing the rest."""

from __future__ import annotations

import asyncio
import contextlib
import socket


class Relay:
    """Listens on 127.0.0.1 and a free port and forwards each connection to `target_port`."""

    def __init__(self, target_port: int, *, refuse_upgrades: bool = False, hold_upgrades: bool = False) -> None:
        self.target_port = target_port
        self.refuse_upgrades = refuse_upgrades
        self.refused_upgrades = 0
        self.hold_upgrades = hold_upgrades
        self.held_upgrades = 0
        self.down = False
        self.port = 0
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    def url(self, path: str = "/", scheme: str = "ws") -> str:
        """The URL of `path` through the relay."""
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def start(self) -> Relay:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()

    async def __aenter__(self) -> Relay:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def cut(self) -> None:
        """Drop every connection through the relay at once (no close frame, a TCP reset)."""
        for writer in list(self._writers):
            transport = writer.transport
            if not transport.is_closing():
                transport.abort()  # type: ignore[attr-defined]
        self._writers.clear()

    def take_down(self) -> None:
        """Cut every connection and refuse new ones until `bring_up()`."""
        self.down = True
        self.cut()

    def bring_up(self) -> None:
        """Accept connections again."""
        self.down = False

    def stall(self) -> None:
        """Stop reading what the server sends (its socket buffers fill, then its queue)."""
        self._flowing.clear()

    def resume(self) -> None:
        """Pass what the server sends again."""
        self._flowing.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.transport.abort()  # type: ignore[attr-defined]
            return
        self.accepted += 1
        head = b""
        if self.refuse_upgrades or self.hold_upgrades:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
                writer.transport.abort()  # type: ignore[attr-defined]
                return
            if b"upgrade: websocket" in head.lower() and self.hold_upgrades:
                self.held_upgrades += 1
                self._writers.add(writer)  # open, silent, until cut() or stop()
                return
            if b"upgrade: websocket" in head.lower():
                self.refused_upgrades += 1
                writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                writer.close()
                return
        try:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # little buffering while stalled
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.target_port))
            upstream_reader, upstream_writer = await asyncio.open_connection(sock=sock, limit=4096)
        except OSError:
            writer.transport.abort()  # type: ignore[attr-defined]
            return
        self._writers.update((writer, upstream_writer))
        if head:
            upstream_writer.write(head)
        first = self._pipe(reader, upstream_writer)
        second = self._pipe(upstream_reader, writer, gate=self._flowing)
        for task in (asyncio.create_task(first), asyncio.create_task(second)):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        gate: asyncio.Event | None = None,
    ) -> None:
        try:
            while True:
                if gate is not None:
                    await gate.wait()
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
            self._writers.discard(writer)
