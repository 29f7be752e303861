"""`hub.join` and `hub.leave` of a client on another node return once that node has done it, on one Redis
and on a Redis Cluster: a room broadcast made right after a join reaches the client (it used to overtake
the join), and one made right after a leave does not."""

from __future__ import annotations

import uuid
from contextlib import AsyncExitStack

import pytest

from hubbub.broker.redis import RedisBroker
from hubbub.client import connect
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


async def test_a_broadcast_right_after_a_remote_join_reaches_the_client(redis_url: str) -> None:
    namespace = f"join{uuid.uuid4().hex[:8]}"
    async with AsyncExitStack() as stack:
        apps = [make_app(RedisBroker(redis_url, namespace=namespace)) for _ in range(2)]
        nodes = [await stack.enter_async_context(serve_app(app)) for app in apps]
        bob = await connect(nodes[1].url("/raw?user=bob"))
        stack.push_async_callback(bob.close)
        client_id = await bob.recv(timeout=5)
        for index in range(ROOMS):
            room = f"room-{index}"
            assert await apps[0].hub.join(room, client_id)
            await apps[0].hub.room_broadcast(room, f"hello {index}")
            assert await bob.recv(timeout=5) == f"hello {index}"


async def test_a_broadcast_right_after_a_remote_leave_misses_the_client(redis_url: str) -> None:
    namespace = f"leave{uuid.uuid4().hex[:8]}"
    async with AsyncExitStack() as stack:
        apps = [make_app(RedisBroker(redis_url, namespace=namespace)) for _ in range(2)]
        nodes = [await stack.enter_async_context(serve_app(app)) for app in apps]
        bob = await connect(nodes[1].url("/raw?user=bob"))
        stack.push_async_callback(bob.close)
        client_id = await bob.recv(timeout=5)
        for index in range(ROOMS):
            room = f"room-{index}"
            assert await apps[0].hub.join(room, client_id)
            assert await apps[0].hub.leave(room, client_id)
            await apps[0].hub.room_broadcast(room, f"missed {index}")
        await apps[0].hub.send(client_id, "marker")  # through the client's own channel, after all of them
        assert await bob.recv(timeout=5) == "marker"  # no room broadcast came before it
