"""Backpressure: a client that never reads cannot make the server buffer without bound,
cannot slow down or starve the other clients, a client that catches up gets a drain event,
and dropped messages never corrupt a connection's compression context."""

from __future__ import annotations

import asyncio
import hashlib
import os
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from hubbub import App, Connection, Event, Request
from hubbub.testing import TestServer, serve_app, wait_for
from tests.support.stalled import stalled_client

MESSAGES = 10_000
SIZE = 8 * 1024
"""10,000 x 8 KiB = 80 MiB per reader: far more than the RSS bound below if it were all buffered."""
BATCH = 8
"""Messages broadcast per event-loop iteration (the blaster yields between batches)."""
LIMIT = 256 * 1024


def vm_rss() -> int:
    """Resident set size of this process (the server runs in it), in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def payload(index: int, size: int = SIZE) -> str:
    """Message `index`: its number, then padding up to `size` bytes."""
    head = f"{index:08d}:"
    return head + "x" * (size - len(head))


class BlastApp:
    """An app with a room route and a POST /blast/{room} that broadcasts MESSAGES x SIZE,
    watching how much the server has buffered for the connection given as ?watch=ID."""

    def __init__(self, **options: Any) -> None:
        self.app = App(**options)
        self.disconnects: asyncio.Queue[tuple[str, int, str]] = asyncio.Queue()
        self.drains: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        room = self.app.websocket("/room/{room}")
        room.on_connect(self._joined)
        room.on_disconnect(self._left)
        room.on_drain(self._drained)
        room.on_message(self._echo)
        self.app.post("/blast/{room}")(self._blast)
        self.app.post("/send/{client}")(self._send)

    async def _joined(self, event: Event) -> None:
        await event.hub.join(event.params["room"], event.client_id)

    async def _left(self, event: Event) -> None:
        self.disconnects.put_nowait((event.client_id, event.close_code or 0, event.close_reason or ""))

    async def _echo(self, event: Event) -> None:
        await event.send(event.data)

    async def _drained(self, event: Event) -> None:
        self.drains.put_nowait((event.client_id, event.connection.buffered_amount))

    async def _blast(self, request: Request) -> dict[str, int]:
        watched = self.app.hub.get(request.query.get("watch", ""))
        peak = 0
        for start in range(0, MESSAGES, BATCH):
            for index in range(start, min(start + BATCH, MESSAGES)):
                await self.app.hub.room_broadcast(request.path_params["room"], payload(index))
                if watched is not None:
                    peak = max(peak, watched.buffered_amount)
            await asyncio.sleep(0)
        return {"peak": peak}

    async def _send(self, request: Request) -> dict[str, int]:
        conn = self.app.hub.get(request.path_params["client"])
        assert conn is not None
        start = int(request.query.get("start", "0"))
        for index in range(start, start + int(request.query.get("n", "1"))):
            await conn.send(payload(index, 1024))
        return {"dropped": conn.dropped_count}


async def only_client(server: TestServer) -> Connection:
    """The server side of the single connected client."""
    await wait_for(lambda: _count_is(server, 1))
    (client_id,) = await server.app.hub.clients()
    conn = server.app.hub.get(client_id)
    assert conn is not None
    return conn


async def _count_is(server: TestServer, count: int) -> bool:
    return await server.app.hub.connection_count() == count


async def read_all_in_order(ws: ClientConnection) -> int:
    """Read the blast to its end, checking that nothing is missing or out of order."""
    for expected in range(MESSAGES):
        message = await ws.recv()
        assert isinstance(message, str)
        assert message[:9] == f"{expected:08d}:", f"expected message {expected}, got {message[:9]}"
        assert len(message) == SIZE
    return MESSAGES


async def test_drop_policy_bounds_the_slow_reader_and_spares_the_fast_one() -> None:
    blast = BlastApp(backpressure_policy="drop", max_backpressure=LIMIT)
    async with serve_app(blast.app) as server, stalled_client(server, "/room/r"):
        slow = await only_client(server)
        async with ws_connect(server.url("/room/r"), compression=None) as fast:
            await wait_for(lambda: _count_is(server, 2))
            rss_before = vm_rss()
            reader = asyncio.create_task(read_all_in_order(fast))
            result = await server.request("POST", f"/blast/r?watch={slow.id}", timeout=30)
            assert await asyncio.wait_for(reader, 30) == MESSAGES  # every message, in order
            rss_growth = vm_rss() - rss_before
        assert result.status == 200
        assert 0 < result.json()["peak"] <= LIMIT + SIZE + 16
        assert slow.buffered_amount <= LIMIT + SIZE + 16
        assert not slow.closed  # "drop" keeps the slow reader connected
        assert slow.dropped_count > MESSAGES // 2  # it cannot have absorbed most of 80 MiB
        assert await server.app.hub.dropped_count() == slow.dropped_count  # none of the fast client's
        assert rss_growth < 50 * 1024 * 1024, f"RSS grew by {rss_growth / 2**20:.1f} MiB"


async def test_close_policy_disconnects_the_slow_reader_with_1008() -> None:
    blast = BlastApp(backpressure_policy="close", max_backpressure=LIMIT)
    async with serve_app(blast.app) as server, stalled_client(server, "/room/r"):
        slow = await only_client(server)
        async with ws_connect(server.url("/room/r"), compression=None) as fast:
            await wait_for(lambda: _count_is(server, 2))
            reader = asyncio.create_task(read_all_in_order(fast))
            result = await server.request("POST", f"/blast/r?watch={slow.id}", timeout=30)
            assert await asyncio.wait_for(reader, 30) == MESSAGES
            assert result.json()["peak"] <= LIMIT + SIZE + 16
            client_id, code, reason = await asyncio.wait_for(blast.disconnects.get(), 5)
            assert (client_id, code, reason) == (slow.id, 1008, "backpressure limit exceeded")
            assert slow.closed
            assert await server.app.hub.room_members("r") != [slow.id]
            assert await server.app.hub.connection_count() == 1  # the fast client is still there
            await fast.send("still open")  # and still usable


def masked_text(text: bytes) -> bytes:
    """A short masked client text frame."""
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(text)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(text))


def split_frames(data: bytes) -> list[bytes]:
    """The payloads of the unmasked text frames in `data` (short and 16-bit lengths only)."""
    payloads = []
    at = 0
    while at < len(data):
        assert data[at] == 0x81, f"not a final text frame at {at}"
        length, at = data[at + 1], at + 2
        if length == 126:
            length, at = int.from_bytes(data[at : at + 2], "big"), at + 2
        payloads.append(data[at : at + length])
        at += length
    assert at == len(data)
    return payloads


@pytest.mark.parametrize("chatty", [False, True], ids=["quiet", "chatty"])
async def test_drain_fires_when_a_backed_up_client_catches_up(chatty: bool) -> None:
    """A chatty client also sends while it catches up, so its echoes are queued for it right
    when its backlog empties; the drain must not be lost to them."""
    blast = BlastApp(max_backpressure=64 * 1024 * 1024)
    async with serve_app(blast.app) as server, stalled_client(server, "/room/r") as (sock, rest):
        conn = await only_client(server)
        sent = 0
        async with asyncio.timeout(10):
            # The kernel takes a few MiB first; keep sending until the server itself has to hold bytes.
            while conn.buffered_amount == 0:
                result = await server.request("POST", f"/send/{conn.id}?start={sent}&n=256")
                assert result.json() == {"dropped": 0}
                sent += 256
        assert blast.drains.empty()  # behind: no drain yet
        loop = asyncio.get_running_loop()
        received = bytearray(rest)
        echoes = 0
        async with asyncio.timeout(10):
            while len(received) < sent * (4 + 1024) + echoes * 4:
                chunk = await loop.sock_recv(sock, 256 * 1024)
                assert chunk, "server closed the connection"
                received += chunk
                if chatty and len(received) < sent * (4 + 1024):
                    await loop.sock_sendall(sock, masked_text(b"hi"))
                    echoes += 1
            client_id, buffered = await blast.drains.get()
        assert (client_id, buffered) == (conn.id, 0)
        assert conn.buffered_amount == 0
        frames = split_frames(bytes(received))
        assert frames.count(b"hi") == echoes
        assert [frame.decode() for frame in frames if frame != b"hi"] == [payload(i, 1024) for i in range(sent)]
        assert not chatty or echoes > 0
        assert blast.drains.empty()  # one drain per catch-up


def chained(index: int) -> str:
    """Message `index` repeats the random part of message index-1, so with context takeover
    its compressed form refers back into the previous message."""

    def noise(seed: int) -> str:
        return hashlib.shake_128(f"noise {seed}".encode()).hexdigest(800)

    return f"{index:06d} {noise(index - 1)} {noise(index)}"


def next_frame(buffer: bytearray) -> tuple[int, bytes] | None:
    """Take the first complete unmasked frame (up to 16-bit lengths) off `buffer`: (first byte, payload)."""
    if len(buffer) < 2:
        return None
    length, start = buffer[1], 2
    if length == 126:
        if len(buffer) < 4:
            return None
        length, start = int.from_bytes(buffer[2:4], "big"), 4
    if len(buffer) < start + length:
        return None
    frame = (buffer[0], bytes(buffer[start : start + length]))
    del buffer[: start + length]
    return frame


async def test_dedicated_deflate_stays_decodable_after_dropped_messages() -> None:
    """With a compression context per connection, a message dropped by backpressure must not
    leave the server compressing against history the client never received."""
    drained = asyncio.Event()
    app = App(compression="dedicated", backpressure_policy="drop", max_backpressure=16 * 1024)
    app.websocket("/c", on_drain=lambda event: drained.set())
    async with serve_app(app) as server, stalled_client(server, "/c", deflate=True) as (sock, rest):
        conn = await only_client(server)
        sent = 0
        async with asyncio.timeout(10):
            # Batches well under the limit, one per loop iteration: drops come only once the kernel is full.
            while conn.dropped_count == 0:
                for index in range(sent, sent + 8):
                    await conn.send(chained(index))
                sent += 8
                await asyncio.sleep(0)
        assert not drained.is_set()
        loop = asyncio.get_running_loop()
        inflate = zlib.decompressobj(-15)
        buffer = bytearray(rest)
        indexes: list[int] = []

        async def read_until(condition: Callable[[], bool]) -> None:
            while not condition():
                chunk = await loop.sock_recv(sock, 65536)
                assert chunk, "server closed the connection"
                buffer.extend(chunk)
                while (frame := next_frame(buffer)) is not None:
                    assert frame[0] == 0xC1  # final, compressed, text
                    text = inflate.decompress(frame[1] + b"\x00\x00\xff\xff").decode()
                    index = int(text[:6])
                    assert text == chained(index), f"message {index} did not decompress to what was sent"
                    indexes.append(index)

        async with asyncio.timeout(10):
            await read_until(drained.is_set)  # caught up with everything queued
            for index in range(sent, sent + 5):  # these follow dropped ones and must be decodable
                assert await conn.send(chained(index))
            await read_until(lambda: bool(indexes) and indexes[-1] == sent + 4)
        assert indexes == sorted(indexes)
        assert len(indexes) == sent + 5 - conn.dropped_count
