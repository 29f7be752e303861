"""A node that dies without a goodbye (SIGKILL) leaves the cluster within node_timeout:
its connections vanish from rooms, counts and presence, the room's members on surviving
nodes hear hubbub.presence leave events, and users with no device left go offline once."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hubbub.testing import Cluster, RedisServer
from tests.cluster.support import ChatPeer, Clients, count_events, eventually, fresh, get, namespaced, running_cluster

NODE_TIMEOUT = 2.0
SLACK = 1.0


@pytest.fixture
def events(tmp_path: Path) -> Path:
    """The file every node's presence hooks append to."""
    return tmp_path / "events.jsonl"


@pytest.fixture
def cluster(redis: RedisServer, events: Path) -> Iterator[Cluster]:
    """Three nodes with a 2 s node timeout; the tests kill the last one."""
    url = namespaced(redis.url, node_timeout=NODE_TIMEOUT)
    with running_cluster(url, 3, env={"CLUSTER_EVENTS": str(events)}) as cluster:
        yield cluster


def presence(action: str, client_id: str) -> Callable[[dict[str, Any]], bool]:
    """Matches a hubbub.presence event about one client."""
    return lambda e: (
        e.get("type") == "hubbub.presence" and e["data"]["action"] == action and e["data"]["client_id"] == client_id
    )


async def joined(room: str, *peers: ChatPeer) -> None:
    """Each peer joins `room` (a request with a reply)."""
    for peer in peers:
        assert await peer.request("hubbub.join", {"room": room}) == {"room": room, "offset": 0, "epoch": ""}


async def test_members_and_counts_of_a_killed_node_vanish_within_node_timeout(
    cluster: Cluster, clients: Clients
) -> None:
    a_node, b_node, doomed = cluster.nodes
    room = fresh("room")
    watcher = await clients.chat(a_node, fresh("watcher"))
    survivor = await clients.chat(b_node, fresh("survivor"))
    victim_users = [fresh("victim"), fresh("victim")]
    victims = [await clients.chat(doomed, user) for user in victim_users]
    await joined(room, watcher, survivor, *victims)
    alive = sorted([watcher.client_id, survivor.client_id])
    everyone = sorted([*alive, *(victim.client_id for victim in victims)])

    async def seen_by_all(members: list[str]) -> bool:
        for node in (a_node, b_node):
            stats, view = await get(node, "/stats"), await get(node, f"/rooms/{room}")
            if view != {"members": members, "count": len(members)} or stats["clients"] != members:
                return False
            if stats["connections"] != len(members):
                return False
        return True

    await eventually(lambda: seen_by_all(everyone))
    for other in (survivor, *victims):
        await watcher.next(presence("join", other.client_id))
    killed_at = time.monotonic()
    doomed.kill()
    await eventually(lambda: seen_by_all(alive), timeout=NODE_TIMEOUT + 5)
    took = time.monotonic() - killed_at
    assert took <= NODE_TIMEOUT + SLACK, f"the dead node's connections lingered {took:.2f} s"

    for listener in (watcher, survivor):
        for victim, user in zip(victims, victim_users, strict=True):
            leave = await listener.next(presence("leave", victim.client_id))
            assert (leave["data"]["room"], leave["data"]["user"], leave["data"]["info"]) == (room, user, {"name": user})
    latecomer = await clients.chat(b_node, fresh("latecomer"))
    await joined(room, latecomer)
    next_presence = await watcher.next(lambda e: e.get("type") == "hubbub.presence")
    assert next_presence["data"]["client_id"] == latecomer.client_id, "a leave event came twice"
    assert a_node.alive and b_node.alive


async def test_offline_fires_once_only_for_users_left_without_a_device(
    cluster: Cluster, clients: Clients, events: Path
) -> None:
    a_node, b_node, doomed = cluster.nodes
    gone, kept = fresh("gone"), fresh("kept")
    await clients.chat(doomed, gone)
    await clients.chat(doomed, gone)
    await clients.chat(doomed, kept)
    await clients.chat(b_node, kept)
    await eventually(lambda: count_events(events, "online", gone) == 1 and count_events(events, "online", kept) == 1)

    doomed.kill()
    await eventually(lambda: count_events(events, "offline", gone) == 1, timeout=NODE_TIMEOUT + 5)
    assert (await get(a_node, f"/users/{gone}")) == {"clients": [], "online": False}
    kept_view = await get(a_node, f"/users/{kept}")
    assert kept_view["online"] is True and len(kept_view["clients"]) == 1

    for node in (a_node, b_node):  # markers: later offline decisions on each survivor
        marker = fresh("marker")
        device = await clients.chat(node, marker)
        await device.peer.close()
        await eventually(lambda m=marker: count_events(events, "offline", m) == 1)  # type: ignore[misc]
    assert count_events(events, "offline", gone) == 1
    assert count_events(events, "offline", kept) == 0
