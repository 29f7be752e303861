"""Graceful shutdown of a real `python -m hubbub run` process on SIGTERM and SIGINT."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed as WsConnectionClosed

from hubbub.client import connect as hub_connect
from hubbub.testing import wait_for
from tests.support.processes import free_port, wait_accepting

ROOT = Path(__file__).resolve().parents[2]
APP = "tests/integration/apps/shutdown_app.py:app"


@dataclass
class ServerProcess:
    """A hubbub server running as a child process."""

    proc: subprocess.Popen[bytes]
    port: int
    markers: Path
    stderr: Path

    def url(self, path: str) -> str:
        """ws:// URL of `path` on this server."""
        return f"ws://127.0.0.1:{self.port}{path}"

    async def wait_exit(self, timeout: float) -> int:
        """Wait for the process to exit; return its exit code."""
        return await asyncio.to_thread(self.proc.wait, timeout)


@asynccontextmanager
async def hubbub_server(tmp_path: Path, shutdown_timeout: float = 3.0) -> AsyncIterator[ServerProcess]:
    """Run the shutdown app in a subprocess; kill it by PID if a test leaves it running."""
    port = free_port()
    env = {
        **os.environ,
        "HUBBUB_TEST_MARKERS": str(tmp_path),
        "HUBBUB_TEST_SHUTDOWN_TIMEOUT": str(shutdown_timeout),
    }
    stderr = tmp_path / "stderr.log"
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hubbub", "run", APP, "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        await wait_accepting(proc, port)
        yield ServerProcess(proc, port, tmp_path, stderr)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


async def test_sigterm_drains_clients_and_finishes_running_handlers(tmp_path: Path) -> None:
    async with hubbub_server(tmp_path, shutdown_timeout=3.0) as server:
        busy = await ws_connect(server.url("/work"))
        idle = await hub_connect(server.url("/work"))
        await busy.send("1.0 slow")
        assert await asyncio.wait_for(busy.recv(), 5) == "started slow"
        server.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()

        assert await idle.recv(timeout=5) == "server going away"
        assert await idle.wait_closed(timeout=5) == 1001
        assert await asyncio.wait_for(busy.recv(), 5) == "server going away"
        with pytest.raises(WsConnectionClosed) as closed:
            await asyncio.wait_for(busy.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001

        with pytest.raises(ConnectionRefusedError):  # the listening socket is gone...
            await asyncio.open_connection("127.0.0.1", server.port)
        assert server.proc.poll() is None  # ...while the slow handler is still finishing
        assert not (tmp_path / "slow.done").exists()

        assert await server.wait_exit(timeout=10) == 0
        assert time.monotonic() - signalled < 3.0 + 2.0  # shutdown_timeout plus a margin
    assert (tmp_path / "slow.done").read_text() == "done"
    assert not (tmp_path / "slow.cancelled").exists()
    # the disconnect handler could only start once the slow one finished: it was waited for too
    assert (tmp_path / "slow.disconnect").read_text() == "1001"
    assert (tmp_path / "shutdown-hook").exists()
    log = server.stderr.read_text()
    assert "shutting down" in log
    assert "Traceback" not in log


async def test_handler_past_shutdown_timeout_is_cancelled(tmp_path: Path) -> None:
    async with hubbub_server(tmp_path, shutdown_timeout=0.5) as server:
        ws = await hub_connect(server.url("/work"))
        await ws.send("60 stuck")
        assert await ws.recv(timeout=5) == "started stuck"
        server.proc.send_signal(signal.SIGTERM)
        assert await ws.recv(timeout=5) == "server going away"
        assert await ws.wait_closed(timeout=5) == 1001
        assert await server.wait_exit(timeout=10) == 0
    assert (tmp_path / "stuck.cancelled").exists()
    assert not (tmp_path / "stuck.done").exists()
    assert (tmp_path / "shutdown-hook").exists()
    assert "Traceback" not in server.stderr.read_text()


async def test_sigint_shuts_down_gracefully(tmp_path: Path) -> None:
    async with hubbub_server(tmp_path) as server:
        async with ws_connect(server.url("/work")) as ws:
            await ws.send("0.3 quick")
            assert await asyncio.wait_for(ws.recv(), 5) == "started quick"
            server.proc.send_signal(signal.SIGINT)
            assert await asyncio.wait_for(ws.recv(), 5) == "server going away"
            with pytest.raises(WsConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert await server.wait_exit(timeout=10) == 0
    assert (tmp_path / "quick.done").exists()
    assert (tmp_path / "quick.disconnect").read_text() == "1001"
    log = server.stderr.read_text()
    assert "KeyboardInterrupt" not in log
    assert "Traceback" not in log


async def test_sigterm_lets_in_flight_http_requests_finish(tmp_path: Path) -> None:
    async with hubbub_server(tmp_path) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        await wait_for(lambda: (tmp_path / "http.started").exists())
        server.proc.send_signal(signal.SIGTERM)
        response = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert response.startswith(b"HTTP/1.1 200")
        assert b"connection: close" in response.lower()
        assert response.endswith(b'{"finished":"yes"}')
        assert await server.wait_exit(timeout=10) == 0


async def test_sigterm_with_no_clients_exits_promptly(tmp_path: Path) -> None:
    async with hubbub_server(tmp_path, shutdown_timeout=10.0) as server:
        server.proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert await server.wait_exit(timeout=10) == 0
        assert time.monotonic() - started < 5.0  # nothing to wait for: no shutdown_timeout spent
    assert (tmp_path / "shutdown-hook").exists()
