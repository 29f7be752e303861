"""Connection limits hold for the whole cluster: every node's connections count."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hubbub.client import connect as hubbub_connect
from hubbub.errors import HandshakeError
from hubbub.testing import Cluster, Node, RedisServer
from tests.cluster.support import TIMEOUT, Clients, eventually, fresh, get, namespaced, running_cluster, token

MAX_CONNECTIONS = 4
MAX_PER_USER = 2


@pytest.fixture(scope="module")
def cluster(redis: RedisServer) -> Iterator[Cluster]:
    """Two nodes allowing 4 connections in all and 2 per user."""
    env = {"CLUSTER_MAX_CONNECTIONS": str(MAX_CONNECTIONS), "CLUSTER_MAX_PER_USER": str(MAX_PER_USER)}
    with running_cluster(namespaced(redis.url), 2, env=env) as cluster:
        yield cluster


async def connections(cluster: Cluster, expected: int) -> None:
    """Wait until every node counts `expected` connections in the cluster."""

    async def counted() -> bool:
        return all([(await get(node, "/stats"))["connections"] == expected for node in cluster.nodes])

    await eventually(counted)


async def refused_close(node: Node, user_id: str) -> tuple[int, str]:
    """Open a /chat connection that the server closes at once; its close code and reason."""
    ws = await hubbub_connect(node.url("/chat"), headers={"Authorization": f"Bearer {token(user_id)}"})
    code = await ws.wait_closed(TIMEOUT)
    return code, ws.close_reason


async def test_per_user_limit_counts_devices_on_every_node(cluster: Cluster, clients: Clients) -> None:
    a_node, b_node = cluster.nodes
    await connections(cluster, 0)
    user = fresh("user")
    await clients.chat(a_node, user)
    on_b = await clients.chat(b_node, user)

    assert await refused_close(a_node, user) == (4003, "too many connections for this user")
    assert await refused_close(b_node, user) == (4003, "too many connections for this user")
    await clients.chat(a_node, "someone-else")  # the limit is per user

    await on_b.peer.close()
    await eventually(lambda: _devices(a_node, user, 1))
    await clients.chat(a_node, user)  # a device closed on B frees a place on A


async def _devices(node: Node, user: str, count: int) -> bool:
    return len((await get(node, f"/users/{user}"))["clients"]) == count


async def test_global_limit_counts_the_whole_cluster(cluster: Cluster, clients: Clients) -> None:
    a_node, b_node = cluster.nodes
    await connections(cluster, 0)
    opened = [await clients.raw(node.url("/echo")) for node in (a_node, b_node, b_node, a_node)]
    await connections(cluster, MAX_CONNECTIONS)

    for node in cluster.nodes:
        with pytest.raises(HandshakeError) as refused:
            await hubbub_connect(node.url("/echo"))
        assert refused.value.status == 503

    await opened[1].close()
    await connections(cluster, MAX_CONNECTIONS - 1)
    replacement = await clients.raw(a_node.url("/echo"))
    await replacement.send("admitted")
    assert await replacement.recv() == "admitted"
