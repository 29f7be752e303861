"""The load generator: raw uvloop ``asyncio.Protocol`` clients.

Each WebSocket client does the upgrade itself, then writes pre-built masked
frames and counts server frames by header (:mod:`bench.wsframe`); no client
library sits in the hot path. :class:`RawEchoClient` sends the same frames
over plain TCP and counts returned bytes, for the raw-echo ceiling.

Counters are shared :class:`Tally` objects so a scenario can read totals
without touching every connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TypeVar, cast

from bench import wsframe

HOST = "127.0.0.1"


class Tally:
    """Messages (or round trips) counted across many connections."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class Client(asyncio.Protocol):
    """Base of every load-generator connection: ``upgraded`` resolves when ready."""

    transport: asyncio.Transport

    def __init__(self) -> None:
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def close(self) -> None:
        """Close the TCP connection."""
        self.transport.close()


class WsClient(Client):
    """A WebSocket client connection: upgrade, then count data messages.

    Pings are answered with pongs and a server close is answered with a close,
    so default server keep-alives never cut a measurement short.
    """

    def __init__(self, port: int, path: str) -> None:
        super().__init__()
        self._request, self._accept = wsframe.upgrade_request(HOST, port, path)
        self._head = b""
        self.counter: wsframe.FrameCounter | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Send the upgrade request."""
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        """Finish the handshake, then hand complete message counts to on_messages."""
        counter = self.counter
        if counter is None:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self._head[:end], self._head[end + 4 :]
            self._head = b""
            try:
                wsframe.check_upgrade(head, self._accept)
            except wsframe.HandshakeError as e:
                self._fail(e)
                return
            counter = self.counter = wsframe.FrameCounter()
            self.upgraded.set_result(None)
            if not data:
                return
        n = counter.feed(data)
        if counter.controls:
            self._on_controls(counter.controls)
            counter.controls.clear()
        if n:
            self.on_messages(n)

    def on_messages(self, n: int) -> None:
        """Called with the number of data messages just completed."""

    def _on_controls(self, controls: list[tuple[int, bytes]]) -> None:
        for opcode, payload in controls:
            if opcode == wsframe.OP_PING:
                self.transport.write(wsframe.client_frame(payload, wsframe.OP_PONG))
            elif opcode == wsframe.OP_CLOSE and not self.closed:
                self.closed = True
                self.transport.write(wsframe.client_frame(payload[:2], wsframe.OP_CLOSE))
                self.transport.close()

    def _fail(self, exc: BaseException) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(exc)
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        """Mark closed; fail a pending handshake."""
        self.closed = True
        if not self.upgraded.done():
            self.upgraded.set_exception(exc or ConnectionError("closed during upgrade"))

    def close(self) -> None:
        """Send a normal close frame and close TCP without waiting for the reply."""
        if not self.closed and self.counter is not None:
            self.transport.write(wsframe.CLOSE_NORMAL)
        self.closed = True
        super().close()


class EchoClient(WsClient):
    """Keeps ``depth`` messages in flight: each echo returned triggers one more send."""

    def __init__(self, port: int, path: str, frame: bytes, depth: int, tally: Tally) -> None:
        super().__init__(port, path)
        self.frame = frame
        self.depth = depth
        self.tally = tally
        self.running = False

    def start(self) -> None:
        """Fill the pipeline."""
        self.running = True
        self.transport.write(self.frame * self.depth)

    def on_messages(self, n: int) -> None:
        """Count round trips and refill the pipeline."""
        self.tally.count += n
        if self.running:
            self.transport.write(self.frame * n)


class RawEchoClient(Client):
    """Plain TCP: send pre-built frames, count echoed bytes as round trips."""

    def __init__(self, frame: bytes, depth: int, tally: Tally) -> None:
        super().__init__()
        self.frame = frame
        self.size = len(frame)
        self.depth = depth
        self.tally = tally
        self.pending = 0
        self.running = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Ready as soon as TCP is connected."""
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.upgraded.set_result(None)

    def start(self) -> None:
        """Fill the pipeline."""
        self.running = True
        self.transport.write(self.frame * self.depth)

    def data_received(self, data: bytes) -> None:
        """Count whole frames returned and send that many more."""
        n, self.pending = divmod(self.pending + len(data), self.size)
        if n:
            self.tally.count += n
            if self.running:
                self.transport.write(self.frame * n)


class FanoutClient(WsClient):
    """Counts every message received and reports reaching a shared target."""

    def __init__(self, port: int, path: str, barrier: Barrier) -> None:
        super().__init__(port, path)
        self.barrier = barrier
        self.received = 0
        self.reached = False

    def on_messages(self, n: int) -> None:
        """Count; tell the barrier when this client has everything expected."""
        self.received += n
        if not self.reached and self.received >= self.barrier.expected:
            self.reached = True
            self.barrier.arrive()


class Barrier:
    """Completes when every fan-out client has received ``expected`` messages."""

    def __init__(self) -> None:
        self.expected = 0
        self.waiting = 0
        self.done_at = 0.0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def reset(self, expected: int, clients: Sequence[FanoutClient]) -> None:
        """Arm for a new target; clients already at ``expected`` count as arrived."""
        self.expected = expected
        self.done = asyncio.get_running_loop().create_future()
        self.waiting = 0
        for c in clients:
            c.reached = c.received >= expected
            self.waiting += not c.reached
        if not self.waiting:
            self.arrive_all()

    def arrive(self) -> None:
        """One more client reached the target."""
        self.waiting -= 1
        if self.waiting == 0:
            self.arrive_all()

    def arrive_all(self) -> None:
        """Record the completion time and wake the waiter."""
        self.done_at = asyncio.get_running_loop().time()
        if not self.done.done():
            self.done.set_result(None)


P = TypeVar("P", bound=Client)


async def open_many(
    factory: Callable[[], P],
    port: int,
    count: int,
    concurrency: int = 64,
    timeout: float | None = None,
) -> list[P]:
    """Open ``count`` connections to 127.0.0.1:``port``, ``concurrency`` at a time.

    Returns once every one is connected (and upgraded, for WebSocket clients);
    on any failure closes those opened so far and raises. The default
    ``timeout`` allows 10 s plus 5 ms per connection.
    """
    if timeout is None:
        timeout = 10 + count / 200
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(concurrency)
    opened: list[P] = []

    async def one() -> None:
        async with sem:
            proto = factory()
            await loop.create_connection(lambda: proto, HOST, port)
            opened.append(proto)
            await proto.upgraded

    try:
        await asyncio.wait_for(asyncio.gather(*(one() for _ in range(count))), timeout)
    except BaseException:
        close_all(opened)
        raise
    return opened


def close_all(protos: Sequence[Client]) -> None:
    """Close every connection."""
    for proto in protos:
        proto.close()
