"""Presence is decided once for the whole cluster: on_online when a user's first device anywhere
opens, on_offline after the last device anywhere closed (the app's presence grace is 0.2 s).

The nodes' hooks append to one events file. "Nothing more happened" is checked against a marker:
a later event of another user on the same node, which a wrong extra event would have preceded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from hubbub.testing import Cluster, Node, RedisServer
from tests.cluster.support import Clients, count_events, eventually, fresh, get, namespaced, running_cluster


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The file every node's presence hooks append to."""
    return tmp_path_factory.mktemp("presence") / "events.jsonl"


@pytest.fixture(scope="module")
def cluster(redis: RedisServer, events: Path) -> Iterator[Cluster]:
    """Two nodes recording presence events."""
    with running_cluster(namespaced(redis.url), 2, env={"CLUSTER_EVENTS": str(events)}) as cluster:
        yield cluster


async def online_marker(clients: Clients, node: Node, events: Path) -> None:
    """A new user comes online on `node`; returns once its event is recorded."""
    marker = fresh("user")
    await clients.chat(node, marker)
    await eventually(lambda: count_events(events, "online", marker) == 1)


async def offline_marker(clients: Clients, node: Node, events: Path) -> None:
    """A new user comes and goes on `node`; returns once its on_offline is recorded."""
    marker = fresh("user")
    device = await clients.chat(node, marker)
    await device.peer.close()
    await eventually(lambda: count_events(events, "offline", marker) == 1)


async def has_devices(node: Node, user: str, count: int) -> bool:
    """Whether the cluster has `count` connections for a user."""
    return len((await get(node, f"/users/{user}"))["clients"]) == count


async def test_online_fires_once_for_devices_on_different_nodes(
    cluster: Cluster, clients: Clients, events: Path
) -> None:
    a_node, b_node = cluster.nodes
    user = fresh("user")
    await clients.chat(a_node, user)
    await eventually(lambda: count_events(events, "online", user) == 1)
    await clients.chat(b_node, user)
    await clients.chat(a_node, user)
    await online_marker(clients, a_node, events)
    await online_marker(clients, b_node, events)
    assert count_events(events, "online", user) == 1
    assert count_events(events, "offline", user) == 0


async def test_online_fires_once_when_devices_connect_at_once(cluster: Cluster, clients: Clients, events: Path) -> None:
    user = fresh("user")
    await asyncio.gather(*(clients.chat(node, user) for node in (*cluster.nodes, *cluster.nodes)))
    await online_marker(clients, cluster.nodes[0], events)
    await online_marker(clients, cluster.nodes[1], events)
    assert count_events(events, "online", user) == 1


async def test_offline_fires_once_after_the_last_device_anywhere(
    cluster: Cluster, clients: Clients, events: Path
) -> None:
    a_node, b_node = cluster.nodes
    user = fresh("user")
    on_a = await clients.chat(a_node, user)
    on_b = await clients.chat(b_node, user)
    await eventually(lambda: count_events(events, "online", user) == 1)

    await on_a.peer.close()
    await eventually(lambda: has_devices(b_node, user, 1))
    await offline_marker(clients, a_node, events)
    assert count_events(events, "offline", user) == 0
    assert (await get(a_node, f"/users/{user}"))["online"] is True

    await on_b.peer.close()
    await eventually(lambda: count_events(events, "offline", user) == 1)
    await offline_marker(clients, a_node, events)
    await offline_marker(clients, b_node, events)
    assert count_events(events, "offline", user) == 1
    assert count_events(events, "online", user) == 1
    assert (await get(a_node, f"/users/{user}"))["online"] is False
