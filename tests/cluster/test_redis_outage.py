"""Redis goes away and comes back (stopped, then restarted empty on the same port).

Documented behaviour (docs/guide.md, "When Redis is unreachable"): every node keeps serving its
own clients; /readyz answers 503; publications for other nodes are dropped, never queued or
replayed; new handshakes are accepted and served by their node (cluster-wide limits cannot be
checked meanwhile) and counted in the cluster once Redis is back; then the node resubscribes, rewrites its state
(on_online runs again for users connected through the outage) and /readyz answers 200.
Connections that closed, and rooms that were left, during the outage are gone from the cluster
afterwards, also when Redis kept its data (a snapshot, a replica taking over).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import redis as redis_py

from hubbub.client import connect as hubbub_connect
from hubbub.testing import Cluster, Node, RedisServer
from tests.cluster.support import (
    ChatPeer,
    Clients,
    Peer,
    count_events,
    eventually,
    get,
    http,
    namespaced,
    not_probe,
    probe_until_heard,
    running_cluster,
)

CYCLES = 3
SLACK = 3
"""How many more tasks or file descriptors a node may hold after the outages than before."""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The presence events file and the nodes' log file."""
    folder = tmp_path_factory.mktemp("outage")
    return folder / "events.jsonl", folder / "nodes.log"


@pytest.fixture(scope="module")
def cluster(redis: RedisServer, files: tuple[Path, Path]) -> Iterator[Cluster]:
    """Two nodes that check on Redis every 0.5 s (node_timeout=2)."""
    events, log = files
    env = {"CLUSTER_EVENTS": str(events), "CLUSTER_LOG": str(log)}
    with running_cluster(namespaced(redis.url, node_timeout=2), 2, env=env) as cluster:
        yield cluster


async def readiness_is(cluster: Cluster, status: int) -> bool:
    """Whether every node's /readyz answers `status`."""
    return all([(await http(node, "GET", "/readyz"))[0] == status for node in cluster.nodes])


UNREACHABLE = "serving local clients only"
"""What a node logs when its heartbeat finds Redis gone."""


@asynccontextmanager
async def redis_down(redis: RedisServer, cluster: Cluster, log: Path) -> AsyncIterator[None]:
    """Redis is stopped inside the block (every node's heartbeat has failed on it); on exit
    Redis is back and every node is ready again."""
    noticed = log.read_text().count(UNREACHABLE) if log.exists() else 0
    await asyncio.to_thread(redis.stop)
    try:
        await eventually(lambda: readiness_is(cluster, 503))
        await eventually(lambda: log.read_text().count(UNREACHABLE) >= noticed + len(cluster.nodes))
        yield
        assert await readiness_is(cluster, 503)
    finally:
        await asyncio.to_thread(redis.start)
    await eventually(lambda: readiness_is(cluster, 200), timeout=15)


async def fanout_pair(clients: Clients, cluster: Cluster) -> tuple[Peer, Peer, Peer]:
    """Two /fanout clients on node A, one on node B, with cross-node delivery working."""
    a_node, b_node = cluster.nodes
    first = await clients.raw(a_node.url("/fanout"), "websockets")
    second = await clients.raw(a_node.url("/fanout"), "aiohttp")
    remote = await clients.raw(b_node.url("/fanout"), "hubbub")
    await probe_until_heard(first, remote)
    return first, second, remote


async def test_local_clients_are_served_while_redis_is_down(
    redis: RedisServer, cluster: Cluster, clients: Clients, files: tuple[Path, Path]
) -> None:
    events, log = files
    a_node, b_node = cluster.nodes
    first, second, remote = await fanout_pair(clients, cluster)
    echo = await clients.raw(a_node.url("/echo"))
    user_device = await clients.chat(b_node, "through-the-outage")
    await eventually(lambda: count_events(events, "online", "through-the-outage") == 1)
    lost_before = (await get(a_node, "/debug"))["lost_publications"]

    async with redis_down(redis, cluster, log):
        await echo.send("still echoing")
        assert await echo.recv() == "still echoing"
        await first.send("during the outage")
        for local in (first, second):
            assert (await local.recv_until(not_probe))[-1] == "during the outage"
        await user_device.peer.send('{"type": "hubbub.join", "data": {"room": "r"}, "id": 7}')
        assert (await user_device.next(lambda e: e.get("id") == 7))["data"] == {"room": "r", "offset": 0, "epoch": ""}
        during = await hubbub_connect(a_node.url("/room/outage"))
        during_id = json.loads(await during.recv())["client_id"]
        await during.send("connected during the outage")
        assert await during.recv() == "connected during the outage"
        assert (await get(a_node, "/debug"))["lost_publications"] > lost_before

    heard = await probe_until_heard(first, remote)
    await second.send("after the outage")
    heard += await remote.recv_until(lambda m: m == "after the outage")
    assert "during the outage" not in heard, "a publication from the outage was replayed"
    assert (await first.recv_until(not_probe))[-1] == "after the outage"
    assert a_node.alive and b_node.alive
    await eventually(lambda: count_events(events, "online", "through-the-outage") == 2)
    fresh = await clients.raw(a_node.url("/echo"))
    await fresh.send("new after recovery")
    assert await fresh.recv() == "new after recovery"

    async def listed_by_the_other_node() -> bool:
        return during_id in (await get(b_node, "/stats"))["clients"]

    await eventually(listed_by_the_other_node)
    await during.close()
    assert "Traceback" not in log.read_text()


async def test_repeated_outages_leak_no_tasks_or_fds(
    redis: RedisServer, cluster: Cluster, clients: Clients, files: tuple[Path, Path]
) -> None:
    _, log = files
    first, _, remote = await fanout_pair(clients, cluster)
    async with redis_down(redis, cluster, log):  # warm-up: the first outage may open what later ones reuse
        pass
    await probe_until_heard(first, remote)
    before = [await get(node, "/debug") for node in cluster.nodes]

    for _ in range(CYCLES):
        async with redis_down(redis, cluster, log):
            await first.send("lost")
        await probe_until_heard(first, remote)

    after = [await get(node, "/debug") for node in cluster.nodes]
    for old, new in zip(before, after, strict=True):
        assert new["pid"] == old["pid"]
        assert new["tasks"] <= old["tasks"] + SLACK, (old, new)
        assert new["fds"] <= old["fds"] + SLACK, (old, new)
        assert new["reconnects"] >= old["reconnects"] + CYCLES
    assert all(node.alive for node in cluster.nodes)


@pytest.fixture
def snapshotting(tmp_path: Path) -> Iterator[tuple[RedisServer, Cluster, Path, Path]]:
    """A redis-server of the test's own (it reloads the snapshot the test saves when restarted),
    two nodes on it, their presence events file and their log file."""
    events, log = tmp_path / "events.jsonl", tmp_path / "nodes.log"
    env = {"CLUSTER_EVENTS": str(events), "CLUSTER_LOG": str(log)}
    with RedisServer() as redis, running_cluster(namespaced(redis.url, node_timeout=2), 2, env=env) as cluster:
        yield redis, cluster, events, log


def save_snapshot(redis: RedisServer) -> None:
    """Make Redis write its data to disk (a restart loads it back)."""
    with redis_py.Redis(port=redis.port) as admin:
        admin.save()


async def test_what_ended_during_an_outage_is_gone_from_a_redis_that_kept_its_data(
    snapshotting: tuple[RedisServer, Cluster, Path, Path], clients: Clients
) -> None:
    redis, cluster, events, log = snapshotting
    a_node, b_node = cluster.nodes
    stays = await clients.chat(a_node, "stays")
    leaving = [(a_node, await clients.chat(a_node, "leaves")), (b_node, await clients.chat(b_node, "leaves"))]
    for peer in (stays, *(peer for _, peer in leaving)):
        assert await peer.request("hubbub.join", {"room": "kept"}) == {"room": "kept", "offset": 0, "epoch": ""}
    assert await stays.request("hubbub.join", {"room": "left"}) == {"room": "left", "offset": 0, "epoch": ""}
    await eventually(lambda: cluster_holds(cluster, 3))
    await asyncio.to_thread(save_snapshot, redis)

    async with redis_down(redis, cluster, log):
        assert await stays.request("hubbub.leave", {"room": "left"}) == {"room": "left"}
        for node, peer in leaving:
            await peer.peer.close()
            await eventually(lambda n=node, p=peer: _gone_from(n, p))  # type: ignore[misc]

    await eventually(lambda: cluster_holds(cluster, 1))
    for node in cluster.nodes:
        assert await get(node, "/rooms/kept") == {"members": [stays.client_id], "count": 1}
        assert await get(node, "/rooms/left") == {"members": [], "count": 0}
        assert await get(node, "/users/leaves") == {"clients": [], "online": False}
    await eventually(lambda: count_events(events, "offline", "leaves") == 1)
    assert count_events(events, "offline", "stays") == 0


async def cluster_holds(cluster: Cluster, connections: int) -> bool:
    """Whether every node counts this many connections in the cluster (a node that cannot ask
    Redis yet, just after an outage, answers 500: not yet)."""
    for node in cluster.nodes:
        status, body = await http(node, "GET", "/stats")
        if status != 200 or body["connections"] != connections:
            return False
    return True


async def _gone_from(node: Node, peer: ChatPeer) -> bool:
    return (await get(node, f"/local/{peer.client_id}"))["here"] is False
