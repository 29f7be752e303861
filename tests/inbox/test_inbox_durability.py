"""Inboxes outlive the server: SQLite across a SIGKILL of the process, Redis across a restart of a
redis-server that keeps an append-only file, and across the nodes of a Redis cluster."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from hubbub.broker.redis import RedisBroker
from hubbub.protocol.envelope import Envelope
from hubbub.runtime.emitter import Emitter
from hubbub.testing import serve_app
from hubbub.testing.cluster import free_port
from tests.inbox.devices import device, durable, notice, offsets
from tests.inbox.inbox_app import make_app
from tests.support.processes import wait_accepting

ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def server_process(store_url: str, stderr: Path) -> AsyncIterator[tuple[subprocess.Popen[bytes], int]]:
    """`hubbub run tests.inbox.inbox_app:app` with its inbox at `store_url`; killed by PID at the end."""
    port = free_port()
    env = {**os.environ, "INBOX_STORE": store_url}
    command = [sys.executable, "-m", "hubbub", "run", "tests.inbox.inbox_app:app", "--port", str(port)]
    with stderr.open("ab") as err:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        await wait_accepting(proc, port)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


async def test_sqlite_inbox_keeps_every_acknowledged_send_across_a_sigkill(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'inbox.db'}"
    acknowledged: list[int] = []
    async with server_process(store, tmp_path / "server.log") as (proc, port):
        base = f"ws://127.0.0.1:{port}"
        async with device(base, "alice", "phone") as phone:
            assert (await notice(phone))["pending"] == 0

            async def sender(session: aiohttp.ClientSession) -> None:
                for n in range(10_000):
                    try:
                        async with session.post(f"http://127.0.0.1:{port}/send/alice", json=n) as response:
                            if response.status != 200:
                                return
                    except aiohttp.ClientError:
                        return
                    acknowledged.append(n)

            async with aiohttp.ClientSession() as session:
                sending = asyncio.create_task(sender(session))
                got = await durable(phone, 20)  # delivered live while the sender keeps going
                assert await phone.call("hubbub.ack", {"inbox": 10}) == {"inbox": 10}
                proc.send_signal(signal.SIGKILL)  # mid-stream
                await asyncio.wait_for(sending, 10)
        assert offsets(got) == list(range(1, 21))
    assert proc.returncode == -signal.SIGKILL
    assert len(acknowledged) >= 20
    async with server_process(store, tmp_path / "server.log") as (_, port):
        base = f"ws://127.0.0.1:{port}"
        async with device(base, "alice", "phone") as phone, device(base, "alice", "laptop") as laptop:
            pending = (await notice(phone))["pending"]
            assert pending >= len(acknowledged) - 10  # stored, maybe also a send killed before its answer
            replayed = await durable(phone, pending)
            assert offsets(replayed) == list(range(11, 11 + pending))
            assert [e["data"] for e in replayed][: len(acknowledged) - 10] == acknowledged[10:]
            everything = await durable(laptop, (await notice(laptop))["pending"])
            assert [e["data"] for e in everything][: len(acknowledged)] == acknowledged
            async with (
                aiohttp.ClientSession() as session,
                session.post(f"http://127.0.0.1:{port}/send/alice", json="after") as response,
            ):
                assert response.status == 200
            assert offsets(await durable(phone, 1)) == [11 + pending]  # offsets are not reused


# ---- Redis ---------------------------------------------------------------------------------------------------


class AofRedis:
    """A redis-server of the test's own that logs every write to an append-only file (fsync always)."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        executable = shutil.which("redis-server")
        assert executable is not None
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory), "--save", ""]
        args += ["--appendonly", "yes", "--appendfsync", "always"]
        self.process = subprocess.Popen([executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[AofRedis]:
    server = AofRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def answers(url: str) -> None:
    """Wait until the Redis at `url` answers PING."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    try:
        async with asyncio.timeout(10):
            while True:
                try:
                    await client.ping()
                    return
                except Exception:
                    await asyncio.sleep(0.05)
    finally:
        await client.aclose()


async def test_redis_inbox_survives_a_redis_kill_with_aof_and_a_new_server(aof_redis: AofRedis) -> None:
    await answers(aof_redis.url)
    namespace = f"aof-{uuid.uuid4().hex[:8]}"
    async with serve_app(make_app(broker=RedisBroker(f"{aof_redis.url}?namespace={namespace}"))) as server:
        base = server.url("").rstrip("/")
        for n in range(5):
            await server.app.hub.send_to_user("alice", Envelope("notification", n), durable=True)
        async with device(base, "alice", "phone") as phone:
            assert offsets(await durable(phone, 5)) == [1, 2, 3, 4, 5]
            assert await phone.call("hubbub.ack", {"inbox": 2}) == {"inbox": 2}
    aof_redis.kill()
    aof_redis.start()
    await answers(aof_redis.url)
    async with serve_app(make_app(broker=RedisBroker(f"{aof_redis.url}?namespace={namespace}"))) as server:
        base = server.url("").rstrip("/")
        async with device(base, "alice", "phone") as phone, device(base, "alice", "laptop") as laptop:
            assert await notice(phone) == {"device": "phone", "pending": 3, "missed": 0}
            assert [e["data"] for e in await durable(phone, 3)] == [2, 3, 4]
            assert offsets(await durable(laptop, 5)) == [1, 2, 3, 4, 5]
            await server.app.hub.send_to_user("alice", Envelope("notification", "next"), durable=True)
            for client in (phone, laptop):
                assert offsets(await durable(client, 1)) == [6]


async def test_a_durable_send_on_one_node_reaches_devices_on_every_node(inbox_redis: object) -> None:
    url = f"{inbox_redis.url}?namespace=nodes-{uuid.uuid4().hex[:8]}"  # type: ignore[attr-defined]
    async with serve_app(make_app(broker=RedisBroker(url))) as a, serve_app(make_app(broker=RedisBroker(url))) as b:
        on_a, on_b = a.url("").rstrip("/"), b.url("").rstrip("/")
        async with device(on_a, "alice", "phone") as phone:
            await notice(phone)
            assert await b.app.hub.send_to_user("alice", Envelope("notification", "from b"), durable=True) == 1
            assert await durable(phone, 1) == [{"type": "notification", "inbox": 1, "data": "from b"}]
            assert await phone.call("hubbub.ack", {"inbox": 1}) == {"inbox": 1}
        await a.app.hub.send_to_user("alice", Envelope("notification", "from a"), durable=True)
        async with device(on_b, "alice", "phone") as phone, device(on_b, "alice", "laptop") as laptop:
            assert [e["data"] for e in await durable(phone, 1)] == ["from a"]
            assert [e["data"] for e in await durable(laptop, 2)] == ["from b", "from a"]


async def test_an_emitter_durable_send_waits_in_the_nodes_inbox(inbox_redis: object) -> None:
    redis_url = inbox_redis.url  # type: ignore[attr-defined]
    namespace = f"emit-{uuid.uuid4().hex[:8]}"
    async with (
        serve_app(make_app(broker=RedisBroker(f"{redis_url}?namespace={namespace}"))) as node,
        Emitter(redis_url, namespace=namespace) as emitter,
    ):
        base = node.url("").rstrip("/")
        await emitter.send_to_user("alice", Envelope("job", "done"), durable=True)
        async with device(base, "alice", "phone") as phone:
            assert await durable(phone, 1) == [{"type": "job", "inbox": 1, "data": "done"}]
            await emitter.send_to_users(["alice", "bob"], Envelope("job", "live"), durable=True)
            assert await durable(phone, 1) == [{"type": "job", "inbox": 2, "data": "live"}]
        async with device(base, "bob", "phone") as bob:
            assert await durable(bob, 1) == [{"type": "job", "inbox": 1, "data": "live"}]
        with pytest.raises(TypeError, match="a durable message must be an Envelope"):
            await emitter.send_to_user("alice", "text", durable=True)


async def test_two_nodes_sending_at_once_reach_each_device_once_without_a_gap(inbox_redis: object) -> None:
    url = f"{inbox_redis.url}?namespace=race-{uuid.uuid4().hex[:8]}"  # type: ignore[attr-defined]
    each = 100
    async with serve_app(make_app(broker=RedisBroker(url))) as a, serve_app(make_app(broker=RedisBroker(url))) as b:

        async def sender(node: object, name: str) -> None:
            for n in range(each):
                await node.app.hub.send_to_user("alice", Envelope("n", f"{name}{n}"), durable=True)  # type: ignore[attr-defined]

        async with device(a.url("").rstrip("/"), "alice", "phone") as phone:
            await notice(phone)
            sending = asyncio.gather(sender(a, "a"), sender(b, "b"))
            async with device(b.url("").rstrip("/"), "alice", "laptop") as laptop:  # connects mid-stream
                await sending
                for client in (phone, laptop):
                    got = await durable(client, 2 * each)
                    assert sorted(offsets(got)) == list(range(1, 2 * each + 1))  # each once, none missing
                    data = [e["data"] for e in got]
                    for name in ("a", "b"):  # one node's sends keep their order
                        assert [d for d in data if d.startswith(name)] == [f"{name}{n}" for n in range(each)]
                await a.app.hub.send_to_user("alice", Envelope("n", "fence"), durable=True)
                for client in (phone, laptop):
                    assert offsets(await durable(client, 1)) == [2 * each + 1]
