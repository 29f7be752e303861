"""The `hubbub run` command: loading apps, clear errors, and its logs."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from websockets.asyncio.client import connect as ws_connect

from hubbub.client import connect as hub_connect
from tests.support.processes import free_port, wait_accepting

ROOT = Path(__file__).resolve().parents[2]
APP_FILE = "tests/integration/apps/cli_app.py"
APP_MODULE = "tests.integration.apps.cli_app"


def hubbub_command() -> list[str]:
    """The installed `hubbub` script if there is one, else `python -m hubbub`."""
    script = shutil.which("hubbub") or str(Path(sys.executable).parent / "hubbub")
    return [script] if Path(script).exists() else [sys.executable, "-m", "hubbub"]


@asynccontextmanager
async def running(command: list[str], port: int, stderr: Path) -> AsyncIterator[subprocess.Popen[bytes]]:
    """Run a server command; on exit stop it with SIGTERM (kill by PID if it hangs)."""
    with stderr.open("wb") as err:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
    try:
        await wait_accepting(proc, port)
        yield proc
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def run_to_exit(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m hubbub ARGS` that is expected to stop on its own."""
    return subprocess.run([sys.executable, "-m", "hubbub", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)


async def echo_round_trip(port: int) -> str:
    """Connect to /echo, check the greeting and the echo; return the client id."""
    async with aiohttp.ClientSession() as session, session.ws_connect(f"ws://127.0.0.1:{port}/echo") as ws:
        client_id = (await ws.receive(timeout=5)).data
        await ws.send_str("hello")
        assert (await ws.receive(timeout=5)).data == "hello"
    assert re.fullmatch(r"[0-9a-f-]{36}", client_id)
    return str(client_id)


@pytest.mark.parametrize(
    ("target", "use_script"),
    [(f"{APP_MODULE}:app", False), (f"{APP_FILE}:app", True), (APP_FILE, False)],
    ids=["module-attr", "file-attr-script", "file-default-attr"],
)
async def test_run_serves_the_app(tmp_path: Path, target: str, use_script: bool) -> None:
    port = free_port()
    base = hubbub_command() if use_script else [sys.executable, "-m", "hubbub"]
    async with running([*base, "run", target, "--port", str(port)], port, tmp_path / "err.log"):
        await echo_round_trip(port)
    assert "Traceback" not in (tmp_path / "err.log").read_text()


async def test_compression_flag_overrides_the_app(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "hubbub", "run", APP_FILE, "--port", str(port), "--compression", "shared"]
    async with running(command, port, tmp_path / "err.log"), ws_connect(f"ws://127.0.0.1:{port}/echo") as ws:
        assert ws.response is not None  # the app itself leaves compression disabled
        assert ws.response.headers["Sec-WebSocket-Extensions"] == "permessage-deflate; server_no_context_takeover"
        await asyncio.wait_for(ws.recv(), 5)  # the greeting
        await ws.send("compressible " * 100)
        assert await asyncio.wait_for(ws.recv(), 5) == "compressible " * 100


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("tests/integration/apps/no_such_app.py:app", "no such file: tests/integration/apps/no_such_app.py"),
        (f"{APP_FILE}:not_an_app", f"{APP_FILE}:not_an_app is not a hubbub App"),
        (f"{APP_FILE}:missing", f"{APP_FILE}:missing is not a hubbub App"),
        ("no_such_module_anywhere:app", "no module named 'no_such_module_anywhere'"),
    ],
    ids=["missing-file", "not-an-app", "missing-attr", "missing-module"],
)
def test_bad_target_is_a_clear_error(target: str, message: str) -> None:
    result = run_to_exit("run", target, "--port", str(free_port()))
    assert result.returncode != 0
    assert f"Error: {message}" in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_to_exit("run", f"{APP_FILE}:app", "--port", str(port))
    assert result.returncode != 0
    assert f"Error: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


async def test_info_logs_connect_and_disconnect(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "err.log"
    command = [sys.executable, "-m", "hubbub", "run", f"{APP_FILE}:app", "--port", str(port), "--log-level", "info"]
    async with running(command, port, log):
        client_id = await echo_round_trip(port)
        ws = await hub_connect(f"ws://127.0.0.1:{port}/echo")
        other_id = await ws.recv(timeout=5)
        await ws.close(code=4001)
    text = log.read_text()
    assert f"hubbub serving on http://127.0.0.1:{port}" in text
    assert re.search(rf"INFO hubbub\.\S+: connect {client_id} /echo from 127\.0\.0\.1", text)
    assert re.search(rf"INFO hubbub\.\S+: disconnect {client_id} /echo from 127\.0\.0\.1 code=1000", text)
    assert re.search(rf"INFO hubbub\.\S+: disconnect {other_id} /echo from 127\.0\.0\.1 code=4001", text)


async def test_log_level_warning_hides_info_lines(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "err.log"
    command = [sys.executable, "-m", "hubbub", "run", f"{APP_FILE}:app", "--port", str(port), "--log-level", "warning"]
    async with running(command, port, log):
        client_id = await echo_round_trip(port)
    text = log.read_text()
    assert client_id not in text
    assert "INFO" not in text
    assert "hubbub serving on" not in text


async def test_log_level_debug_includes_info_lines(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "err.log"
    command = [sys.executable, "-m", "hubbub", "run", f"{APP_FILE}:app", "--port", str(port), "--log-level", "debug"]
    async with running(command, port, log):
        client_id = await echo_round_trip(port)
    assert f"connect {client_id} /echo" in log.read_text()


def test_bad_log_level_is_refused() -> None:
    result = run_to_exit("run", f"{APP_FILE}:app", "--log-level", "loud")
    assert result.returncode == 2
    assert "Invalid value for '--log-level'" in result.stderr
    assert "Traceback" not in result.stderr
