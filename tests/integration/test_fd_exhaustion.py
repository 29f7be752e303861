"""Out of file descriptors: clients past the limit get a 503 (not silence), the process logs it
once per interval and counts it, and serves again as soon as descriptors are free.

The server is a real subprocess started with a low RLIMIT_NOFILE."""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from hubbub.client import WebSocketClient, connect
from hubbub.errors import HandshakeError
from hubbub.testing.cluster import free_port
from hubbub.transport.server import FD_LOG_INTERVAL, FD_RESERVE

ROOT = Path(__file__).resolve().parents[2]
FD_LIMIT = 96
CLIENTS = 120


def low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


async def http_get(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".encode())
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hubbub", "run", "tests/integration/apps/fd_app.py:app", "--port", str(port)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=low_fd_limit,
        )
    deadline = time.monotonic() + 15
    while b"serving on" not in log.read_bytes():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    yield proc, port, log
    proc.terminate()
    proc.wait(10)


async def test_clients_past_the_fd_limit_get_503_and_are_counted_and_logged(
    server: tuple[subprocess.Popen[bytes], int, Path],
) -> None:
    proc, port, log = server
    held: list[WebSocketClient] = []
    answers: Counter[int] = Counter()
    started = time.monotonic()
    for _ in range(CLIENTS):
        try:
            held.append(await connect(f"ws://127.0.0.1:{port}/echo", timeout=5))
            answers[101] += 1
        except HandshakeError as refused:
            answers[refused.status] += 1
            assert refused.status == 503 and json.loads(refused.body) == {"error": "server out of file descriptors"}
            assert refused.headers["retry-after"] == "5"
    # Every client got an answer: those under the reserve were served, the rest refused with 503.
    assert sum(answers.values()) == CLIENTS
    elapsed = time.monotonic() - started
    assert answers[101] >= 20, answers
    assert answers[503] >= CLIENTS - (FD_LIMIT - FD_RESERVE), answers
    # The held connections still work while others are being refused.
    await held[0].send("still here")
    assert await held[0].recv() == "still here"
    for client in held:
        await client.close()
    # Descriptors are free again: a new client is served, and the counter matches the 503s.
    await asyncio.sleep(0)
    async with asyncio.timeout(10):
        while True:
            status, body = await http_get(port, "/fd-refusals")
            if status == 200:
                break
            await asyncio.sleep(0.05)
    assert json.loads(body) == {"fd_refusals": answers[503]}
    again = await connect(f"ws://127.0.0.1:{port}/echo", timeout=5)
    await again.send("back")
    assert await again.recv() == "back"
    await again.close()
    warnings = [line for line in log.read_text().splitlines() if "out of file descriptors" in line]
    # Rate-limited: one line per FD_LOG_INTERVAL however many are refused (one for the burst, unless
    # a loaded machine stretched it past the interval).
    assert 1 <= len(warnings) <= 1 + int(elapsed / FD_LOG_INTERVAL), warnings
    assert "1 refused since the last warning" in warnings[0]
    assert proc.poll() is None


async def test_under_the_limit_nobody_is_refused(server: tuple[subprocess.Popen[bytes], int, Path]) -> None:
    _, port, log = server
    held = [await connect(f"ws://127.0.0.1:{port}/echo", timeout=5) for _ in range(FD_LIMIT - FD_RESERVE - 30)]
    for client in held:
        await client.close()
    status, body = await http_get(port, "/fd-refusals")
    assert status == 200 and json.loads(body) == {"fd_refusals": 0}
    assert "out of file descriptors" not in log.read_text()
