"""Subscriptions cut behind the nodes' backs: `CLIENT KILL TYPE pubsub` on the Redis server
drops every node's subscriber connection while ordinary commands keep working. Each node
notices, subscribes again (to the cluster channel and its rooms' channels), and cross-node
delivery comes back within a bounded time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
import redis as redis_py

from hubbub.testing import Cluster, Node, RedisServer
from tests.cluster.support import ChatPeer, Clients, eventually, namespaced, post, probe_until_heard, running_cluster

ROUNDS = 2
"""Cut the subscriptions this many times in a row (a rebuilt subscription must survive a cut too)."""
USER = "deaf-test-user"
RECOVERY = 10.0
"""Bound on how long a node may stay deaf (its heartbeat is 0.5 s with node_timeout=2)."""


async def user_reached(sender: Node, device: ChatPeer, number: int) -> bool:
    """Send a note to the device's user from `sender` (through the cluster-wide channel); whether it arrives."""
    await post(sender, f"/user/{USER}", json.dumps({"type": "note", "data": number}))
    try:
        await device.next(lambda e: e.get("type") == "note" and e["data"] == number, timeout=0.25)
    except TimeoutError:
        return False
    return True


@pytest.fixture(scope="module")
def cluster(redis: RedisServer) -> Iterator[Cluster]:
    """Two nodes with a 0.5 s heartbeat."""
    with running_cluster(namespaced(redis.url, node_timeout=2), 2) as cluster:
        yield cluster


def kill_subscriptions(redis: RedisServer) -> int:
    """Close every pub/sub connection of the Redis server; return how many there were."""
    with redis_py.Redis(port=redis.port) as admin:
        killed: int = admin.client_kill_filter(_type="pubsub")
        return killed


async def test_cut_subscriptions_are_restored(redis: RedisServer, cluster: Cluster, clients: Clients) -> None:
    a_node, b_node = cluster.nodes
    on_a = await clients.raw(a_node.url("/fanout"), "websockets")
    on_b = await clients.raw(b_node.url("/fanout"), "aiohttp")
    device = await clients.chat(a_node, USER, "hubbub")
    await probe_until_heard(on_a, on_b)

    for round_number in range(ROUNDS):
        assert await asyncio.to_thread(kill_subscriptions, redis) >= len(cluster.nodes)
        await probe_until_heard(on_a, on_b, timeout=RECOVERY)  # a room channel, A -> B
        await probe_until_heard(on_b, on_a, timeout=RECOVERY)  # and B -> A

        await eventually(lambda n=round_number: user_reached(b_node, device, n), timeout=RECOVERY)  # type: ignore[misc]
    assert a_node.alive and b_node.alive
