"""Fixtures of the broker conformance suite: `cluster_of(n)` for each engine (memory, redis on one
server, redis-cluster on a Redis Cluster of 3 masters and 3 replicas)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Protocol

import pytest

from hubbub.testing import RedisServer
from tests.broker.cluster import BrokerCluster, Engine

PRESENCE_GRACE = 0.3
"""Seconds between a user's last connection closing and the offline decision."""
NODE_TIMEOUT = 3.0
"""Seconds within which a dead Redis node is reaped (heartbeat every quarter of it)."""


class ClusterOf(Protocol):
    """Start n nodes sharing state (a fresh cluster each call)."""

    def __call__(
        self, size: int, *, presence_grace: float = PRESENCE_GRACE, node_timeout: float = NODE_TIMEOUT
    ) -> Awaitable[BrokerCluster]: ...


@pytest.fixture(scope="module")
def broker_redis() -> Iterator[RedisServer]:
    """A private redis-server for one test module (each test uses a namespace of its own)."""
    with RedisServer() as server:
        yield server


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
def engine(request: pytest.FixtureRequest) -> Engine:
    """The engine under test."""
    name: Engine = request.param
    return name


@pytest.fixture
async def cluster_of(engine: Engine, request: pytest.FixtureRequest) -> AsyncIterator[ClusterOf]:
    """A factory of clusters of the engine under test; every node is stopped at teardown."""
    redis_url = None
    if engine == "redis":
        redis_url = request.getfixturevalue("broker_redis").url
    elif engine == "redis-cluster":
        redis_url = request.getfixturevalue("redis_cluster_server").url
    made: list[BrokerCluster] = []

    async def start(
        size: int, *, presence_grace: float = PRESENCE_GRACE, node_timeout: float = NODE_TIMEOUT
    ) -> BrokerCluster:
        cluster = BrokerCluster(
            engine, size, presence_grace=presence_grace, node_timeout=node_timeout, redis_url=redis_url
        )
        made.append(cluster)
        await cluster.start()
        return cluster

    yield start
    for cluster in reversed(made):
        await cluster.stop()


def redis_only(engine: Engine, why: str) -> None:
    """Skip a case that only the Redis engine has (memory nodes live and die with their process)."""
    if engine == "memory":
        pytest.skip(f"Redis engine only: {why}")


def one_server_only(engine: Engine, why: str) -> None:
    """Skip a case that needs the Redis engine on one server (it stalls or pokes that server)."""
    if engine != "redis":
        pytest.skip(f"Redis engine on one server only: {why}")
