"""`hub.join` and `hub.leave` of a client on another node return once that node has done it, on one Redis
and on a Redis Cluster: a room broadcast made right after a join reaches the client (it used to overtake
the join), and one made right after a leave does not."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest

from hubbub import App
from hubbub.broker.redis import RedisBroker
from hubbub.client import WebSocketClient, connect
from hubbub.testing import RedisClusterServer, RedisServer, serve_app
from tests.support.raw_and_channel import make_app

ROOMS = 10


@pytest.fixture(params=["redis", "redis-cluster"])
def redis_url(request: pytest.FixtureRequest) -> str:
    """One Redis of the test's own, or the session's Redis Cluster."""
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return server.url
    cluster: RedisClusterServer = request.getfixturevalue("redis_cluster_server")
    return cluster.url


@asynccontextmanager
async def client_on_the_other_node(redis_url: str) -> AsyncIterator[tuple[App, WebSocketClient, str]]:
    """Two nodes on the Redis at `redis_url`; yield the first node's app, a client of the second, its id."""
    namespace = f"remote{uuid.uuid4().hex[:8]}"
    async with AsyncExitStack() as stack:
        apps = [make_app(RedisBroker(redis_url, namespace=namespace)) for _ in range(2)]
        nodes = [await stack.enter_async_context(serve_app(app)) for app in apps]
        bob = await connect(nodes[1].url("/raw?user=bob"))
        stack.push_async_callback(bob.close)
        yield apps[0], bob, await bob.recv(timeout=5)


async def test_a_broadcast_right_after_a_remote_join_reaches_the_client(redis_url: str) -> None:
    async with client_on_the_other_node(redis_url) as (app, bob, client_id):
        for index in range(ROOMS):
            room = f"room-{index}"
            assert await app.hub.join(room, client_id)
            await app.hub.room_broadcast(room, f"hello {index}")
            assert await bob.recv(timeout=5) == f"hello {index}"


async def test_a_broadcast_right_after_a_remote_leave_misses_the_client(redis_url: str) -> None:
    async with client_on_the_other_node(redis_url) as (app, bob, client_id):
        for index in range(ROOMS):
            room = f"room-{index}"
            assert await app.hub.join(room, client_id)
            assert await app.hub.leave(room, client_id)
            await app.hub.room_broadcast(room, f"missed {index}")
        await app.hub.send(client_id, "marker")  # through the client's own channel, after all of them
        assert await bob.recv(timeout=5) == "marker"  # no room broadcast came before it
