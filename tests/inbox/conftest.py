"""Fixtures of the inbox conformance suite: one store per engine (memory, sqlite, redis, redis-cluster),
on a clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from hubbub.broker.redis_target import RedisTarget
from hubbub.inbox import InboxLimits, InboxStore, MemoryInboxStore
from hubbub.inbox.redis import RedisInboxStore
from hubbub.inbox.sqlite import SQLiteInboxStore
from hubbub.testing import RedisServer

ENGINES = ("memory", "sqlite", "redis", "redis-cluster")


class Clock:
    """Seconds since the epoch, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def inbox_redis() -> Iterator[RedisServer]:
    """A private redis-server for one test module."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


StoreFactory = Callable[..., Awaitable[InboxStore]]


@pytest.fixture(params=ENGINES)
async def open_store(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> AsyncIterator[StoreFactory]:
    """Open stores of the engine under test (`await open_store(size=..., ttl=...)`); closed at teardown.
    Stores opened by one test share their data (one file, one namespace), as after a restart."""
    engine: str = request.param
    opened: list[InboxStore] = []
    clients: list[Any] = []
    namespace = f"t{id(request)}"

    async def open_one(size: int = 100, ttl: float = 3600.0, max_devices: int = 8) -> InboxStore:
        limits = InboxLimits(size=size, ttl=ttl, max_devices=max_devices)
        store: InboxStore
        if engine == "memory":
            store = opened[0] if opened else MemoryInboxStore(limits, clock=clock)
            store.limits = limits
        elif engine == "sqlite":
            store = SQLiteInboxStore(str(tmp_path / "inbox.db"), limits, clock=clock)
        else:
            if engine == "redis-cluster":
                url = request.getfixturevalue("redis_cluster_server").url
                client: Any = RedisTarget.parse(url)[0].client(max_connections=16, socket_timeout=5.0)
            else:
                client = aioredis.from_url(request.getfixturevalue("inbox_redis").url)
            clients.append(client)
            store = RedisInboxStore(client, limits, namespace=namespace, clock=clock)
        if store not in opened:
            await store.start()
            opened.append(store)
        return store

    yield open_one
    for store in opened:
        await store.close()
    for client in clients:
        await client.aclose()
