"""`hubbub run` settings in real processes: TOML file, HUBBUB_* variables, their order, refusals,
JSON logs, TLS on uvloop, and where /metrics is served."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from websockets.asyncio.client import connect as ws_connect

from tests.support.certs import self_signed
from tests.support.processes import free_port, wait_accepting

ROOT = Path(__file__).resolve().parents[2]
APP_FILE = "tests/integration/apps/cli_app.py"


@asynccontextmanager
async def running(
    command: list[str], port: int, stderr: Path, env: dict[str, str]
) -> AsyncIterator[subprocess.Popen[bytes]]:
    """Run a server command with `env`; on exit stop it with SIGTERM (kill by PID if it hangs)."""
    with stderr.open("wb") as err:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, env=env)
    try:
        await wait_accepting(proc, port)
        yield proc
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def env_with(**variables: str) -> dict[str, str]:
    base = {key: value for key, value in os.environ.items() if not key.startswith("HUBBUB_")}
    return base | variables


def refused(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hubbub", "run", APP_FILE, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env=env or env_with(),
    )


async def get(url: str, **kwargs: object) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url, **kwargs) as response:  # type: ignore[arg-type]
        return response.status, await response.text()


async def echo(url: str, **kwargs: object) -> None:
    async with ws_connect(url, **kwargs) as ws:  # type: ignore[arg-type]
        assert await asyncio.wait_for(ws.recv(), 5)  # the app greets with the client id
        await ws.send("ping")
        assert await asyncio.wait_for(ws.recv(), 5) == "ping"


async def test_file_then_environment_then_command_line(tmp_path: Path) -> None:
    file_port, env_port, cli_port = free_port(), free_port(), free_port()
    settings = tmp_path / "hubbub.toml"
    settings.write_text(f'port = {file_port}\nlog_format = "json"\nmetrics = false\n')
    base = [sys.executable, "-m", "hubbub", "run", APP_FILE, "--config", str(settings)]
    stderr = tmp_path / "err.log"

    # The file alone: its port, JSON logs, no /metrics.
    async with running(base, file_port, stderr, env=env_with()):
        await echo(f"ws://127.0.0.1:{file_port}/echo")
        assert (await get(f"http://127.0.0.1:{file_port}/metrics"))[0] == 404
    lines = [json.loads(line) for line in stderr.read_text().splitlines()]
    assert any(entry["message"] == f"hubbub serving on http://127.0.0.1:{file_port}" for entry in lines)
    assert all({"time", "level", "logger", "message", "pid"} <= entry.keys() for entry in lines)

    # The environment over the file (HUBBUB_CONFIG names the file, too).
    env = env_with(HUBBUB_CONFIG=str(settings), HUBBUB_PORT=str(env_port), HUBBUB_METRICS="true")
    async with running(base[:-2], env_port, stderr, env=env):
        assert (await get(f"http://127.0.0.1:{env_port}/metrics"))[0] == 200

    # The command line over both.
    async with running([*base, "--port", str(cli_port), "--log-format", "text"], cli_port, stderr, env=env):
        await echo(f"ws://127.0.0.1:{cli_port}/echo")
    assert " INFO hubbub.server: hubbub serving on" in stderr.read_text()


@pytest.mark.parametrize(
    ("args", "env", "key"),
    [
        (["--config", "{bad_key}"], {}, "prot"),
        (["--config", "{bad_value}"], {}, "workers"),
        (["--config", "{absent}"], {}, "absent.toml"),
        ([], {"HUBBUB_PORT": "eighty"}, "HUBBUB_PORT"),
        ([], {"HUBBUB_METRICS": "perhaps"}, "HUBBUB_METRICS"),
        (["--forwarded-allow-ips", "10.0.0.1,proxy"], {}, "forwarded_allow_ips"),
        (["--certfile", "{absent}", "--keyfile", "{absent}"], {}, "certfile"),
        (["--certfile", "{bad_key}"], {}, "certfile and keyfile"),
        (["--port", "many"], {}, "--port"),
    ],
)
def test_a_bad_setting_is_refused_by_name(tmp_path: Path, args: list[str], env: dict[str, str], key: str) -> None:
    files = {"bad_key": tmp_path / "bad_key.toml", "bad_value": tmp_path / "bad_value.toml"}
    files["bad_key"].write_text("prot = 8000\n")
    files["bad_value"].write_text("workers = 0\n")
    paths = {name: str(path) for name, path in files.items()} | {"absent": str(tmp_path / "absent.toml")}
    result = refused(*[arg.format(**paths) for arg in args], env=env_with(**env))
    assert result.returncode == 2, result.stderr
    assert key in result.stderr
    assert "Traceback" not in result.stderr


async def test_tls_from_the_command_line(tmp_path: Path) -> None:
    cert = self_signed(tmp_path)
    port = free_port()
    command = [
        *[sys.executable, "-m", "hubbub", "run", APP_FILE, "--port", str(port)],
        *["--certfile", str(cert.certfile), "--keyfile", str(cert.keyfile)],
    ]
    async with running(command, port, tmp_path / "err.log", env=env_with()):
        await echo(f"wss://127.0.0.1:{port}/echo", ssl=cert.client_context())
        status, body = await get(f"https://127.0.0.1:{port}/healthz", ssl=cert.client_context())
        assert (status, json.loads(body)) == (200, {"status": "ok"})
    assert f"hubbub serving on https://127.0.0.1:{port}" in (tmp_path / "err.log").read_text()


async def test_internal_port_and_dashboard_key_from_the_environment(tmp_path: Path) -> None:
    port, internal = free_port(), free_port()
    env = env_with(HUBBUB_INTERNAL_PORT=str(internal), HUBBUB_DASHBOARD_KEY="s3cret")
    command = [sys.executable, "-m", "hubbub", "run", APP_FILE, "--port", str(port)]
    async with running(command, port, tmp_path / "err.log", env=env):
        await echo(f"ws://127.0.0.1:{port}/echo")
        assert (await get(f"http://127.0.0.1:{port}/metrics"))[0] == 404
        assert (await get(f"http://127.0.0.1:{port}/_hubbub?key=s3cret"))[0] == 404
        status, text = await get(f"http://127.0.0.1:{internal}/metrics")
        assert status == 200
        assert "hubbub_messages_received_total 1.0" in text
        assert (await get(f"http://127.0.0.1:{internal}/_hubbub"))[0] == 401
        status, page = await get(f"http://127.0.0.1:{internal}/_hubbub?key=s3cret")
        assert status == 200
        assert "<title>hubbub dashboard</title>" in page
