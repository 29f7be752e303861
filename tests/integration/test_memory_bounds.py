"""The server's memory stays bounded against readers that stop and clients that flood.

The server runs as a child process (tests/integration/apps/flood_app.py) so that its
resident set size can be measured alone, before and after each flood.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path

import pytest
from websockets.asyncio.client import connect as ws_connect

from tests.support.flood import Drain, flood, masked_frame, open_websocket, rss
from tests.support.processes import free_port, wait_accepting

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024
FLOOD_SECONDS = 5.0

pytestmark = pytest.mark.timeout(150)  # real floods against a child process, on a shared machine
FLOOD_ALLOWANCE = 32 * MiB
"""What a flood may add to the server's RSS (the issue allows +32 MB for a 20 s flood)."""


@asynccontextmanager
async def flood_server(tmp_path: Path) -> AsyncIterator[tuple[int, int]]:
    """Run the flood app in a child process; yield (pid, port)."""
    port = free_port()
    command = [sys.executable, "-m", "hubbub", "run", "tests/integration/apps/flood_app.py:app", "--port", str(port)]
    with (tmp_path / "server.log").open("wb") as log:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
    try:
        await wait_accepting(proc, port)
        yield proc.pid, port
        assert proc.poll() is None, "the server died"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, 15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def http_get(port: int, path: str) -> tuple[int, bytes]:
    """One GET on a fresh connection: (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def room_count(port: int, room: str) -> int:
    status, body = await asyncio.to_thread(http_get, port, f"/count/{room}")
    assert status == 200
    count: int = json.loads(body)["count"]
    return count


async def wait_room(port: int, room: str, count: int, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while await room_count(port, room) != count:
            await asyncio.sleep(0.05)


# ---- readers that stop reading --------------------------------------------------------


@pytest.mark.parametrize("policy", ["close", "drop"])
async def test_twenty_stalled_readers_cost_about_max_backpressure_each(tmp_path: Path, policy: str) -> None:
    """1,000 x 16 KiB broadcast to 20 readers that never read: buffering it all would take
    ~312 MiB; the bound is 256 KiB per reader (plus what the kernel holds)."""
    count, size, stalled = 1000, 16 * 1024, 20
    async with flood_server(tmp_path) as (pid, port):
        with ExitStack() as stack:
            for _ in range(stalled):
                sock, _ = await asyncio.to_thread(open_websocket, port, f"/fanout/{policy}", rcvbuf=4096)
                stack.callback(sock.close)
            await wait_room(port, policy, stalled)
            async with ws_connect(f"ws://127.0.0.1:{port}/fanout/{policy}", compression=None) as publisher:
                await wait_room(port, policy, stalled + 1)
                before = rss(pid)

                async def read_back() -> int:
                    for expected in range(count):
                        message = await publisher.recv()
                        assert isinstance(message, str) and message.startswith(f"{expected:08d}:")
                    return count

                reading = asyncio.ensure_future(read_back())
                async with asyncio.timeout(60):
                    for index in range(count):
                        head = f"{index:08d}:"
                        await publisher.send(head + "x" * (size - len(head)))
                    assert await reading == count  # the publisher, a fast reader, got everything
                grown = rss(pid) - before
                if policy == "close":
                    # Each got a 1008 close frame behind its backlog, and is dropped after close_timeout.
                    await wait_room(port, policy, 1, timeout=15)
                else:
                    assert await room_count(port, policy) == stalled + 1  # "drop" keeps them
        print(f"\n{policy}: {stalled} stalled readers, {count} x {size // 1024} KiB: RSS +{grown / MiB:.1f} MiB")
        assert grown < 39 * MiB, f"RSS grew by {grown / MiB:.1f} MiB (unbounded would be ~312 MiB)"


# ---- a flood while a server request waits for its reply --------------------------------


async def test_a_flood_while_a_server_request_waits_stays_bounded(tmp_path: Path) -> None:
    async with flood_server(tmp_path) as (pid, port):
        sock, rest = await asyncio.to_thread(open_websocket, port, "/ask", subprotocol="hubbub.v1.json")
        drain = Drain(sock)
        drain.tail = rest
        drain.start()
        try:
            sock.sendall(masked_frame(b'{"type": "start"}'))
            async with asyncio.timeout(10):
                while (found := re.search(rb'"type":"question","id":"(s\d+)"', drain.tail)) is None:
                    await asyncio.sleep(0.02)
            request_id = found.group(1).decode()
            before = rss(pid)
            block = masked_frame(b'{"type": "noise", "id": 7}') * 2000
            blocks = await asyncio.to_thread(flood, sock, block, FLOOD_SECONDS)
            grown = rss(pid) - before
            print(
                f"\n{blocks * 2000:,} requests in {FLOOD_SECONDS} s, a server request waiting: +{grown / MiB:.1f} MiB"
            )
            assert blocks > 10, "the flood never got going"
            assert grown < FLOOD_ALLOWANCE, f"RSS grew by {grown / MiB:.1f} MiB"
            # The messages past max_pending_messages were refused, and the reply is still read.
            sock.sendall(masked_frame(json.dumps({"id": request_id, "data": "yes"}).encode()))
            async with asyncio.timeout(30):
                while not drain.saw(b'"type":"answered","data":"yes"'):
                    assert not drain.closed.is_set(), "the server closed the connection"
                    await asyncio.sleep(0.05)
            assert drain.received > 0
        finally:
            sock.close()
            await asyncio.to_thread(drain.join, 5)


async def test_a_few_messages_while_a_server_request_waits_are_all_handled(tmp_path: Path) -> None:
    """Under max_pending_messages (64), messages behind the waiting handler are kept, not refused."""
    async with flood_server(tmp_path) as (_, port):
        sock, rest = await asyncio.to_thread(open_websocket, port, "/ask", subprotocol="hubbub.v1.json")
        drain = Drain(sock)
        drain.tail = rest
        drain.start()
        try:
            sock.sendall(masked_frame(b'{"type": "start"}'))
            async with asyncio.timeout(10):
                while (found := re.search(rb'"type":"question","id":"(s\d+)"', drain.tail)) is None:
                    await asyncio.sleep(0.02)
            sock.sendall(b"".join(masked_frame(f'{{"type": "noise", "id": {i}}}'.encode()) for i in range(60)))
            sock.sendall(masked_frame(json.dumps({"id": found.group(1).decode(), "data": "yes"}).encode()))
            async with asyncio.timeout(10):
                while drain.tail.count(b'"code":"unknown_type"') < 60:
                    await asyncio.sleep(0.02)
            assert drain.saw(b'"type":"answered","data":"yes"')
            assert b"overloaded" not in drain.tail
        finally:
            sock.close()
            await asyncio.to_thread(drain.join, 5)


# ---- HTTP keep-alive pipelining ---------------------------------------------------------

PIPELINED = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"


async def test_pipelined_requests_never_read_stay_bounded(tmp_path: Path) -> None:
    async with flood_server(tmp_path) as (pid, port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            before = rss(pid)
            blocks = await asyncio.to_thread(flood, sock, PIPELINED * 2000, FLOOD_SECONDS)
            grown = rss(pid) - before
            print(
                f"\n{blocks * 2000:,} pipelined requests in {FLOOD_SECONDS} s, never read: RSS +{grown / MiB:.1f} MiB"
            )
            assert blocks > 0
            assert grown < FLOOD_ALLOWANCE, f"RSS grew by {grown / MiB:.1f} MiB"
            assert await asyncio.to_thread(http_get, port, "/healthz") == (200, b'{"status":"ok"}')


async def test_pipelined_requests_that_are_read_are_all_answered(tmp_path: Path) -> None:
    count = 3000
    async with flood_server(tmp_path) as (_, port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            requests = (
                b"".join(f"GET /count/r{i} HTTP/1.1\r\nhost: x\r\n\r\n".encode() for i in range(count - 1))
                + b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
            )
            sender = asyncio.to_thread(sock.sendall, requests)

            def read_all() -> bytes:
                data = b""
                while chunk := sock.recv(1 << 18):
                    data += chunk
                return data

            _, data = await asyncio.gather(sender, asyncio.to_thread(read_all))
    assert data.count(b"HTTP/1.1 200 OK") == count
    assert data.endswith(b'{"status":"ok"}')
