"""Fixtures of the history conformance suite: a fresh store of each engine (memory, SQLite, Redis on one
server, Redis Cluster)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Literal

import pytest

from hubbub.history.store import MemoryStore, RedisStore, SqliteStore, Store
from hubbub.testing import RedisServer

Engine = Literal["memory", "sqlite", "redis", "redis-cluster"]
OpenStore = Callable[[], Awaitable[Store]]


@pytest.fixture(scope="module")
def history_redis() -> Iterator[RedisServer]:
    """A private redis-server for one test module (each test uses a namespace of its own)."""
    with RedisServer() as server:
        yield server


@pytest.fixture(params=["memory", "sqlite", "redis", "redis-cluster"])
def engine(request: pytest.FixtureRequest) -> Engine:
    """The engine under test."""
    name: Engine = request.param
    return name


@pytest.fixture
async def open_store(engine: Engine, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OpenStore]:
    """Open a store of the engine under test; called again, it opens the same state anew (as after a
    restart: the same SQLite file, the same Redis namespace; a new memory store). Closed at teardown."""
    redis_url = ""
    if engine == "redis":
        redis_url = request.getfixturevalue("history_redis").url
    elif engine == "redis-cluster":
        redis_url = request.getfixturevalue("redis_cluster_server").url
    namespace = f"t{uuid.uuid4().hex[:8]}"
    opened: list[Store] = []

    async def start() -> Store:
        store: Store
        if engine == "memory":
            store = MemoryStore()
        elif engine == "sqlite":
            store = SqliteStore(str(tmp_path / "history.db"))
        else:
            store = RedisStore(redis_url, namespace=namespace)
        await store.open(None)
        opened.append(store)
        return store

    yield start
    for store in reversed(opened):
        await store.close()


@pytest.fixture
async def store(open_store: OpenStore) -> Store:
    """An open store of the engine under test."""
    return await open_store()
