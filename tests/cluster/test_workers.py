"""`hubbub run --workers N --broker redis://...`: N processes share one port (SO_REUSEPORT),
act as one server through Redis, and stop together on SIGTERM; bad setups exit with a clear error."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from hubbub.testing import Node, RedisServer, free_port
from tests.cluster.support import (
    APP,
    LIBRARIES,
    ROOT,
    SECRET,
    TIMEOUT,
    Clients,
    Peer,
    eventually,
    http,
    namespaced,
    probe_until_heard,
)


def hubbub_run(*args: str) -> list[str]:
    """The command line of `hubbub run APP ARGS` (the cluster app)."""
    return [sys.executable, "-m", "hubbub", "run", APP, "--host", "127.0.0.1", "--log-level", "warning", *args]


def children(pid: int) -> list[int]:
    """Processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


@asynccontextmanager
async def supervisor(redis_url: str, port: int, log: Path) -> AsyncIterator[subprocess.Popen[bytes]]:
    """`hubbub run --workers 2` on `port`, ready; on exit it and its workers are gone whatever happened."""
    command = hubbub_run("--port", str(port), "--workers", "2", "--broker", redis_url)
    with log.open("wb") as err:
        proc = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "CLUSTER_JWT_SECRET": SECRET}, stderr=err)
    workers: list[int] = []
    try:
        await eventually(lambda: len(children(proc.pid)) == 2, timeout=TIMEOUT)
        workers = children(proc.pid)
        node = Node([], port, {}, None)
        await eventually(lambda: _ready(node), timeout=20)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, 15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def _ready(node: Node) -> bool:
    try:
        return (await http(node, "GET", "/readyz"))[0] == 200
    except OSError:
        return False


async def one_per_worker(clients: Clients, node: Node) -> dict[int, Peer]:
    """Connect to /room/workers until two processes answered; one client per worker pid."""
    by_pid: dict[int, Peer] = {}
    async with asyncio.timeout(20):
        while len(by_pid) < 2:
            peer, hello = await clients.room(node, "workers", LIBRARIES[len(by_pid)])
            by_pid.setdefault(hello["pid"], peer)
    return by_pid


async def test_workers_share_the_port_and_fan_out_between_them(
    redis: RedisServer, clients: Clients, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "supervisor.log"
    async with supervisor(namespaced(redis.url), port, log) as proc:
        workers = children(proc.pid)
        by_pid = await one_per_worker(clients, Node([], port, {}, None))
        assert sorted(by_pid) == sorted(workers), log.read_text()
        (first_pid, first), (second_pid, second) = by_pid.items()
        assert first_pid != second_pid
        await probe_until_heard(first, second)
        await probe_until_heard(second, first)
        await first.send("across workers")
        assert (await second.recv_until(lambda m: m == "across workers"))[-1] == "across workers"

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 20) == 0, log.read_text()
        for peer in (first, second):
            assert (await peer.wait_closed(TIMEOUT))[0] == 1001
        await eventually(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers))
    assert "Traceback" not in log.read_text()


def run_to_exit(*args: str) -> subprocess.CompletedProcess[str]:
    """`hubbub run APP ARGS` that should fail on its own."""
    return subprocess.run(hubbub_run(*args), cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "2"], "Error: --workers needs a cluster broker"),
        (["--broker", "redis//x"], "Error: unsupported broker URL 'redis//x'"),
        (["--broker", "redis://127.0.0.1:{closed}/0"], "Error: cannot reach Redis at redis://127.0.0.1:{closed}/0"),
        (
            ["--workers", "2", "--broker", "redis://127.0.0.1:{closed}/0"],
            "Error: cannot reach Redis at redis://127.0.0.1:{closed}/0",
        ),
    ],
    ids=["workers-without-broker", "malformed-url", "redis-unreachable", "workers-redis-unreachable"],
)
def test_bad_setup_exits_with_a_clear_error(args: list[str], message: str) -> None:
    closed = str(free_port())
    result = run_to_exit("--port", str(free_port()), *(arg.format(closed=closed) for arg in args))
    assert result.returncode != 0
    assert message.format(closed=closed) in result.stderr
    assert "Traceback" not in result.stderr
