"""Acknowledged publications survive SIGKILL of the server: with the SQLite store, and on the Redis
engine (append-only file on) with a Redis restart too. Real processes: `hubbub run examples/echo.py:app`."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from hubbub.testing import RedisServer
from tests.support.processes import free_port, wait_accepting

ROOT = Path(__file__).resolve().parents[2]
ROOM = "durable"
BURST = 400


@contextmanager
def echo_server(port: int, *options: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`hubbub run examples/echo.py:app` as a child process; killed (by PID) when the block ends."""
    command = [sys.executable, "-m", "hubbub", "run", "examples/echo.py:app", "--port", str(port), *options]
    with log.open("ab") as err:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


async def request(ws: ClientConnection, kind: str, data: Any, request_id: int) -> dict[str, Any]:
    await ws.send(orjson.dumps({"type": kind, "data": data, "id": request_id}).decode())
    while True:
        envelope = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        if envelope.get("id") == request_id:
            reply: dict[str, Any] = envelope["data"]
            return reply


async def open_rooms(port: int) -> ClientConnection:
    ws = await ws_connect(f"ws://127.0.0.1:{port}/rooms", subprotocols=["hubbub.v1.json"])  # type: ignore[list-item]
    assert orjson.loads(await ws.recv())["type"] == "hubbub.welcome"
    return ws


async def publish_until_killed(port: int, proc: subprocess.Popen[bytes]) -> tuple[str, dict[int, int], int]:
    """A member watches the room; a publisher fires a burst of publishes and the server is killed
    (SIGKILL) once half of them were acknowledged. Returns the room's epoch, the acknowledged
    publications (offset -> n) and the last offset the member saw live."""
    member = await open_rooms(port)
    publisher = await open_rooms(port)
    epoch = (await request(member, "hubbub.join", {"room": ROOM}, 1))["epoch"]
    for n in range(1, BURST + 1):
        await publisher.send(
            orjson.dumps({"type": "hubbub.publish", "id": n, "data": {"room": ROOM, "data": {"n": n}}}).decode()
        )
    acked: dict[int, int] = {}
    try:
        async with asyncio.timeout(20):
            while True:
                envelope = orjson.loads(await publisher.recv())
                if "id" in envelope and "data" in envelope:
                    acked[envelope["data"]["offset"]] = envelope["id"]
                    if len(acked) == BURST // 2:
                        proc.kill()  # mid-stream: the rest of the burst is in flight
    except ConnectionClosed:
        pass
    seen = 0
    try:
        while True:
            envelope = orjson.loads(await asyncio.wait_for(member.recv(), 5))
            if envelope.get("type") == "hubbub.message":
                assert envelope["offset"] == seen + 1
                seen = envelope["offset"]
    except ConnectionClosed:
        pass
    proc.wait(10)
    assert BURST // 2 <= len(acked) < BURST  # killed mid-stream
    return epoch, acked, seen


async def recover_after_restart(port: int, epoch: str, acked: dict[int, int], seen: int) -> None:
    """Every acknowledged publication is recovered, in order, with the same epoch; the member
    recovers exactly what it had not seen; the stream goes on from where it was."""
    assert len(acked) >= BURST // 2
    client = await open_rooms(port)
    try:
        everything = await request(client, "hubbub.join", {"room": ROOM, "since": {"offset": 0, "epoch": epoch}}, 1)
        assert everything["recovered"] is True and everything["epoch"] == epoch
        kept = {p["offset"]: p["data"]["data"]["n"] for p in everything["publications"]}
        assert list(kept) == list(range(1, everything["offset"] + 1))  # no hole, in order
        for offset, n in acked.items():
            assert kept.get(offset) == n, f"acknowledged publication {offset} (n={n}) was lost"
        rest = await request(client, "hubbub.join", {"room": ROOM, "since": {"offset": seen, "epoch": epoch}}, 2)
        assert rest["recovered"] is True
        assert [p["offset"] for p in rest["publications"]] == list(range(seen + 1, everything["offset"] + 1))
        after = await request(client, "hubbub.publish", {"room": ROOM, "data": {"n": 0}}, 3)
        assert (after["offset"], after["epoch"]) == (everything["offset"] + 1, epoch)
    finally:
        await client.close()


async def test_sqlite_store_keeps_acknowledged_publications_through_sigkill(tmp_path: Path) -> None:
    port = free_port()
    store = f"sqlite:///{tmp_path / 'history.db'}"  # sqlite:////abs/path.db
    assert store.startswith("sqlite:////")
    log = tmp_path / "server.log"
    with echo_server(port, "--store", store, log=log) as proc:
        await wait_accepting(proc, port)
        epoch, acked, seen = await publish_until_killed(port, proc)
    assert proc.returncode == -9
    with echo_server(port, "--store", store, log=log) as proc:
        await wait_accepting(proc, port)
        await recover_after_restart(port, epoch, acked, seen)


async def test_redis_engine_keeps_acknowledged_publications_through_sigkill_and_a_redis_restart(
    tmp_path: Path,
) -> None:
    port = free_port()
    log = tmp_path / "server.log"
    with RedisServer(appendonly=True) as redis:
        with echo_server(port, "--broker", redis.url, log=log) as proc:
            await wait_accepting(proc, port)
            epoch, acked, seen = await publish_until_killed(port, proc)
        assert proc.returncode == -9
        await asyncio.to_thread(redis.restart)  # the data comes back from the append-only file
        with echo_server(port, "--broker", redis.url, log=log) as proc:
            await wait_accepting(proc, port)
            await recover_after_restart(port, epoch, acked, seen)


def run_to_exit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hubbub", "run", "examples/echo.py:app", "--port", str(free_port()), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_bad_store_urls_are_refused_with_a_clear_error(tmp_path: Path) -> None:
    for url, problem in [
        ("bogus://x", "unsupported store URL"),
        ("sqlite://host/x.db", "bad SQLite URL"),
        ("sqlite:///x.db?journal=off", "unknown SQLite URL option"),
        (f"sqlite:///{tmp_path}/missing/dir/x.db", "cannot use the SQLite database"),
        ("sqlite:///x.db?synchronous=SOMETIMES", "synchronous must be"),
    ]:
        result = run_to_exit("--store", url)
        assert result.returncode == 1 and problem in result.stderr, (url, result.stderr)
        assert "Traceback" not in result.stderr
    with_redis = run_to_exit("--broker", "redis://127.0.0.1:1/0", "--store", f"sqlite:///{tmp_path}/x.db")
    assert with_redis.returncode == 1 and "history lives in Redis" in with_redis.stderr
