"""The load generator: raw uvloop ``asyncio.Protocol`` clients.

Each WebSocket client does the upgrade itself, then writes pre-built masked
frames and counts server frames by header (:mod:`bench.wsframe`); no client
library sits in the hot path. :class:`RawEchoClient` sends the same frames
over plain TCP and counts returned bytes, for the raw-echo ceiling.

Counters are shared :class:`Tally` objects so a scenario can read totals
without touching every connection. A client given a Socket.IO connect packet
(:mod:`bench.wire`) also completes the Engine.IO/Socket.IO handshake before
it counts as upgraded, and answers Engine.IO pings.
"""

from __future__ import annotations

import asyncio
import socket
import time
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
    so default server keep-alives never cut a measurement short. With
    ``sio_connect``, the client is upgraded once the Engine.IO open packet has
    been answered with that Socket.IO connect packet and the server confirmed
    it; Engine.IO pings (``2``) are answered with pongs (``3``) and not counted.
    """

    def __init__(self, port: int, path: str, *, sio_connect: bytes | None = None) -> None:
        super().__init__()
        self._request, self._accept = wsframe.upgrade_request(HOST, port, path)
        self._head = b""
        self.sio_connect = sio_connect
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
            if self.sio_connect is None:
                counter = self.counter = wsframe.FrameCounter()
                self._upgrade_done()
            else:  # keep every message until the Socket.IO connect is confirmed
                counter = self.counter = wsframe.FrameCounter(keep_below=1 << 62)
            if not data:
                return
        n = counter.feed(data)
        if counter.controls:
            self._on_controls(counter.controls)
            counter.controls.clear()
        if counter.kept:
            n += self._on_socketio(counter)
        if n:
            self.on_messages(n)

    def _on_socketio(self, counter: wsframe.FrameCounter) -> int:
        """Handle kept Engine.IO/Socket.IO packets; return how many are data messages after all."""
        extra = 0
        for packet in counter.kept:
            if packet == b"2":
                self.transport.write(_SIO_PONG)
            elif self.upgraded.done():
                extra += 1  # sent right behind the connect confirmation
                counter.payload_bytes += len(packet)
            elif packet[:1] == b"0" and self.sio_connect is not None:
                self.transport.write(wsframe.client_frame(self.sio_connect))
            elif packet[:2] == b"40":
                counter.keep_below = 2  # from now on only pings are kept
                self._upgrade_done()
            else:
                self._fail(wsframe.HandshakeError(f"Socket.IO connect refused: {packet[:80]!r}"))
        counter.kept.clear()
        return extra

    def on_messages(self, n: int) -> None:
        """Called with the number of data messages just completed."""

    def on_control(self, opcode: int, payload: bytes) -> None:
        """Called with each control frame before it is answered (a ping with a pong, a close with a close)."""

    def _on_controls(self, controls: list[tuple[int, bytes]]) -> None:
        for opcode, payload in controls:
            self.on_control(opcode, payload)
            if opcode == wsframe.OP_PING:
                self.transport.write(wsframe.client_frame(payload, wsframe.OP_PONG))
            elif opcode == wsframe.OP_CLOSE and not self.closed:
                self.closed = True
                self.transport.write(wsframe.client_frame(payload[:2], wsframe.OP_CLOSE))
                self.transport.close()

    def _upgrade_done(self) -> None:
        """The upgrade (and Socket.IO connect) succeeded, unless the opener stopped waiting (a timed-out
        `open_many` cancels it): then the answer is late and nobody wants it."""
        if not self.upgraded.done():
            self.upgraded.set_result(None)

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


_SIO_PONG = wsframe.client_frame(b"3")


class EchoClient(WsClient):
    """Keeps ``depth`` messages in flight: each echo returned triggers one more send."""

    def __init__(
        self, port: int, path: str, frame: bytes, depth: int, tally: Tally, *, sio_connect: bytes | None = None
    ) -> None:
        super().__init__(port, path, sio_connect=sio_connect)
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


class Laps:
    """Round trips of one-at-a-time messages, in nanoseconds."""

    def __init__(self) -> None:
        self.samples: list[int] = []
        self.remaining = 0
        self.sent_at = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def arm(self, count: int) -> asyncio.Future[None]:
        """Start a new series of ``count`` round trips; the future completes after the last."""
        self.samples = []
        self.remaining = count
        self.done = asyncio.get_running_loop().create_future()
        return self.done

    def lap(self) -> bool:
        """Record a reply; True if another message should be sent."""
        self.samples.append(time.perf_counter_ns() - self.sent_at)
        self.remaining -= 1
        if self.remaining > 0:
            return True
        if not self.done.done():
            self.done.set_result(None)
        return False


class LatencyClient(WsClient):
    """One message in flight: each reply is timed and triggers the next send."""

    def __init__(self, port: int, path: str, frame: bytes, *, sio_connect: bytes | None = None) -> None:
        super().__init__(port, path, sio_connect=sio_connect)
        self.frame = frame
        self.laps = Laps()

    def send(self) -> None:
        """Send one message and note the time."""
        self.laps.sent_at = time.perf_counter_ns()
        self.transport.write(self.frame)

    def on_messages(self, n: int) -> None:
        """Time the reply (one at a time, so ``n`` is 1) and send the next."""
        if self.laps.lap():
            self.send()


class RawLatencyClient(Client):
    """Plain TCP: one frame in flight, timed until all its bytes are back."""

    def __init__(self, frame: bytes) -> None:
        super().__init__()
        self.frame = frame
        self.pending = 0
        self.laps = Laps()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Ready as soon as TCP is connected."""
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.upgraded.set_result(None)

    def send(self) -> None:
        """Send one frame and note the time."""
        self.laps.sent_at = time.perf_counter_ns()
        self.transport.write(self.frame)

    def data_received(self, data: bytes) -> None:
        """Time the reply once the whole frame is back, and send the next."""
        self.pending += len(data)
        if self.pending >= len(self.frame):
            self.pending -= len(self.frame)
            if self.laps.lap():
                self.send()


class FanoutClient(WsClient):
    """Counts every message received and reports reaching a shared target."""

    def __init__(self, port: int, path: str, barrier: Barrier, *, sio_connect: bytes | None = None) -> None:
        super().__init__(port, path, sio_connect=sio_connect)
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
        """``time.perf_counter()`` when the last client arrived (uvloop's ``loop.time()`` ticks in whole ms)."""
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
        self.done_at = time.perf_counter()
        if not self.done.done():
            self.done.set_result(None)


P = TypeVar("P", bound=Client)


async def open_many(
    factory: Callable[[], P],
    port: int,
    count: int,
    concurrency: int = 64,
    timeout: float | None = None,
    local_addr: tuple[str, int] | None = None,
) -> list[P]:
    """Open ``count`` connections to 127.0.0.1:``port``, ``concurrency`` at a time.

    Returns once every one is connected (and upgraded, for WebSocket clients);
    on any failure closes those opened so far and raises. The default
    ``timeout`` allows 10 s plus 5 ms per connection. ``local_addr`` is the
    source address of every connection (e.g. ``("127.0.0.2", 0)``), with its
    own ephemeral ports (see :func:`connect_from`).
    """
    if timeout is None:
        timeout = 10 + count / 200
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(concurrency)
    opened: list[P] = []

    async def one() -> None:
        async with sem:
            proto = factory()
            if local_addr is None:
                await loop.create_connection(lambda: proto, HOST, port)
            else:
                await connect_from(local_addr, lambda: proto, port)
            opened.append(proto)
            await proto.upgraded

    gathered = asyncio.gather(*(one() for _ in range(count)))
    # When cancelled from outside (a scenario time limit), mark the outcome as seen: no "never retrieved" noise.
    gathered.add_done_callback(lambda f: f.cancelled() or f.exception())
    try:
        await asyncio.wait_for(gathered, timeout)
    except BaseException:
        close_all(opened)
        raise
    return opened


IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


async def connect_from(local_addr: tuple[str, int], factory: Callable[[], Client], port: int) -> None:
    """Connect a ``factory`` protocol to 127.0.0.1:``port`` from ``local_addr``.

    The socket is bound with IP_BIND_ADDRESS_NO_PORT, so the ephemeral port is
    chosen at connect time for this destination: a plain ``bind(addr, 0)``
    would refuse every port still in TIME_WAIT from an earlier run (and slow to
    a few hundred binds/s as they run out).
    """
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    try:
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind(local_addr)
        sock.setblocking(False)
        await loop.sock_connect(sock, (HOST, port))
        await loop.create_connection(factory, sock=sock)
    except BaseException:
        sock.close()
        raise


def close_all(protos: Sequence[Client]) -> None:
    """Close every connection."""
    for proto in protos:
        proto.close()
