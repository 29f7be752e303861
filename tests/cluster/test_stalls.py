"""A Redis that stalls and a node that pauses (SIGSTOP, then SIGCONT, of the real processes).

Documented behaviour (docs/guide.md, "Stalls and pauses"): a stalled Redis costs no state, however
long it lasts; while it does not answer, each node reports not ready within a heartbeat, and
handshakes and joins do not wait on it. A node paused past node_timeout is reaped, and writes its
connections, rooms and users back within a heartbeat of resuming. Publications held up by either
are counted lost or dropped as stale, never delivered late. Afterwards the cluster's counts, `send`
to a client on another node, presence and limits are as if nothing had happened.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hubbub.client import connect as hubbub_connect
from hubbub.errors import HandshakeError
from hubbub.testing import Cluster, Node, RedisServer
from tests.cluster.support import (
    ChatPeer,
    Clients,
    count_events,
    eventually,
    fresh,
    get,
    http,
    namespaced,
    not_probe,
    post,
    probe_until_heard,
    running_cluster,
)

MAX_CONNECTIONS = 8
NO_WAIT_ON_REDIS = 1.5
"""Seconds within which a handshake or a join completes while Redis is known not to answer: far below
the 4 s that redis-py would wait for it (its socket timeout is node_timeout)."""


@dataclass
class Setting:
    """A private redis-server, nodes on it, the presence events file and the nodes' log file."""

    redis: RedisServer
    cluster: Cluster
    events: Path
    log: Path
    node_timeout: float


def _setting(tmp_path: Path, nodes: int, node_timeout: float) -> Iterator[Setting]:
    events, log = tmp_path / "events.jsonl", tmp_path / "nodes.log"
    env = {
        "CLUSTER_EVENTS": str(events),
        "CLUSTER_LOG": str(log),
        "CLUSTER_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    }
    url_of = namespaced
    with RedisServer() as redis, running_cluster(url_of(redis.url, node_timeout=node_timeout), nodes, env=env) as c:
        yield Setting(redis, c, events, log, node_timeout)


@pytest.fixture
def three_nodes(tmp_path: Path) -> Iterator[Setting]:
    """Three nodes with node_timeout=4: heartbeat 1 s, lease 3 s, Redis socket timeout 4 s."""
    yield from _setting(tmp_path, 3, 4.0)


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[Setting]:
    """Two nodes with node_timeout=2: heartbeat 0.5 s, lease 1.5 s."""
    yield from _setting(tmp_path, 2, 2.0)


async def readiness_is(nodes: list[Node], status: int) -> bool:
    """Whether each of these nodes' /readyz answers `status`."""
    return all([(await http(node, "GET", "/readyz"))[0] == status for node in nodes])


async def holds(nodes: list[Node], connections: int) -> bool:
    """Whether each of these nodes counts this many connections in the cluster."""
    return all([(await get(node, "/stats"))["connections"] == connections for node in nodes])


async def joined(room: str, *peers: ChatPeer) -> None:
    """Each peer joins `room`."""
    for peer in peers:
        assert await peer.request("hubbub.join", {"room": room}) == {"room": room, "offset": 0, "epoch": ""}


def presence(action: str, client_id: str) -> Callable[[dict[str, Any]], bool]:
    """Matches a hubbub.presence event about one client."""
    return lambda e: (
        e.get("type") == "hubbub.presence" and e["data"]["action"] == action and e["data"]["client_id"] == client_id
    )


async def assert_sends_across(sender: Node, receiver: ChatPeer) -> None:
    """`hub.send` on `sender` reaches a client on another node."""
    text = fresh("hello")
    assert await post(sender, f"/send/{receiver.client_id}", text) == {"sent": True}
    await receiver.next(lambda envelope: envelope.get("raw") == text)


async def assert_limit_holds(clients: Clients, nodes: list[Node], connected: int) -> None:
    """The cluster-wide limit counts every node's connections: up to it is admitted, past it refused."""
    for index in range(MAX_CONNECTIONS - connected):
        peer = await clients.raw(nodes[index % len(nodes)].url("/echo"))
        await peer.send("admitted")
        assert await peer.recv() == "admitted"
    await eventually(lambda: holds(nodes, MAX_CONNECTIONS))
    for node in nodes:
        with pytest.raises(HandshakeError) as refused:
            await hubbub_connect(node.url("/echo"))
        assert refused.value.status == 503


@pytest.mark.parametrize("stall", [3.5, 6.0], ids=["longer-than-the-lease", "longer-than-the-socket-timeout"])
async def test_a_stalled_redis_costs_no_state(three_nodes: Setting, clients: Clients, stall: float) -> None:
    a_node, b_node, c_node = three_nodes.cluster.nodes
    survivors = [a_node, b_node]
    room = fresh("room")
    ana, bob, carl = (
        await clients.chat(a_node, "ana"),
        await clients.chat(b_node, "bob"),
        await clients.chat(c_node, "carl"),
    )
    await joined(room, ana, bob, carl)
    on_a, on_b = await clients.raw(a_node.url("/fanout")), await clients.raw(b_node.url("/fanout"))
    await probe_until_heard(on_a, on_b)
    await eventually(lambda: holds(three_nodes.cluster.nodes, 5))
    lost_before = (await get(a_node, "/debug"))["lost_publications"]

    stalled_at = time.monotonic()
    three_nodes.redis.pause()
    try:
        await on_a.send("during the stall")
        late = None
        if stall > three_nodes.node_timeout:
            await eventually(lambda: readiness_is(survivors, 503), timeout=3.0)
            async with asyncio.timeout(NO_WAIT_ON_REDIS):
                late = await clients.chat(a_node, "dora")
            async with asyncio.timeout(NO_WAIT_ON_REDIS):
                await joined(room, late)
        assert time.monotonic() - stalled_at < stall, "the stall was over before its checks"
        await asyncio.sleep(stall - (time.monotonic() - stalled_at))  # the fault itself lasts this long
    finally:
        three_nodes.redis.resume()

    c_node.kill()  # reaped once the others reap again: by then a wrongful reaping would have happened too
    await eventually(lambda: readiness_is(survivors, 200), timeout=10.0)
    await eventually(lambda: count_events(three_nodes.events, "offline", "carl") == 1, timeout=15.0)
    for user in ("ana", "bob"):
        assert count_events(three_nodes.events, "offline", user) == 0, f"{user} went offline"
        assert count_events(three_nodes.events, "online", user) == 1, f"{user}'s presence flapped"

    members = sorted([ana.client_id, bob.client_id, *([late.client_id] if late else [])])
    connections = 4 + (1 if late else 0)
    await eventually(lambda: holds(survivors, connections))
    for node in survivors:
        assert await get(node, f"/rooms/{room}") == {"members": members, "count": len(members)}
        assert (await get(node, "/users/ana"))["online"] is True
        assert (await get(node, "/users/bob"))["clients"] == [bob.client_id]
    await assert_sends_across(a_node, bob)
    await assert_sends_across(b_node, ana)

    heard = await probe_until_heard(on_a, on_b)
    assert "during the stall" not in heard, "a publication held up by the stall was delivered late"
    assert (await get(a_node, "/debug"))["lost_publications"] > lost_before
    await on_b.send("after the stall")
    assert (await on_a.recv_until(lambda m: m == "after the stall"))[-1] == "after the stall"
    assert "during the stall" not in await on_b.recv_until(not_probe)

    await assert_limit_holds(clients, survivors, connections)
    assert "Traceback" not in three_nodes.log.read_text()


async def test_a_node_paused_past_node_timeout_comes_back_whole(two_nodes: Setting, clients: Clients) -> None:
    a_node, b_node = two_nodes.cluster.nodes
    room = fresh("room")
    ana, bob = await clients.chat(a_node, "ana"), await clients.chat(b_node, "bob")
    await joined(room, ana, bob)
    on_a, on_b = await clients.raw(a_node.url("/fanout")), await clients.raw(b_node.url("/fanout"))
    await probe_until_heard(on_b, on_a)
    await eventually(lambda: holds(two_nodes.cluster.nodes, 4))

    a_node.pause()
    try:
        await eventually(lambda: count_events(two_nodes.events, "offline", "ana") == 1, timeout=10.0)
        assert await get(b_node, f"/rooms/{room}") == {"members": [bob.client_id], "count": 1}
        assert await get(b_node, "/users/ana") == {"clients": [], "online": False}
        await on_b.send("while A was paused")
        await asyncio.sleep(1.5)  # the fault itself: A stays paused past publish_timeout (1 s) after it
    finally:
        a_node.resume()

    await eventually(lambda: holds([b_node], 4))
    await eventually(lambda: readiness_is([a_node], 200))
    assert count_events(two_nodes.events, "online", "ana") == 2, "ana came back online once"
    members = sorted([ana.client_id, bob.client_id])
    for node in (a_node, b_node):
        assert await get(node, f"/rooms/{room}") == {"members": members, "count": 2}
        assert await get(node, "/users/ana") == {"clients": [ana.client_id], "online": True}
    await assert_sends_across(b_node, ana)
    await assert_sends_across(a_node, bob)
    await bob.next(presence("leave", ana.client_id))  # from the reaper
    await bob.next(presence("join", ana.client_id))  # from A, back

    heard = await probe_until_heard(on_b, on_a)
    assert "while A was paused" not in heard, "a publication was delivered after the pause"
    assert (await get(a_node, "/debug"))["stale_publications"] >= 1

    await assert_limit_holds(clients, [a_node, b_node], 4)
    log = two_nodes.log.read_text()
    assert "did not run for" in log and "lost its registration" in log
    assert "Traceback" not in log
