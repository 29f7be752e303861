"""Scale-out through Redis: two server processes behave as one server.

Fan-out uses examples/echo.py itself (`hubbub run examples/echo.py:app --broker redis://...`);
the other hub operations are triggered over HTTP on the cluster app, on a node other than the client's.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from hubbub.testing import Cluster, RedisServer
from tests.cluster.support import (
    ECHO_APP,
    LIBRARIES,
    Clients,
    Library,
    eventually,
    fresh,
    get,
    namespaced,
    not_probe,
    post,
    probe_until_heard,
    running_cluster,
)


@pytest.fixture(scope="module")
def echo_cluster(redis: RedisServer) -> Iterator[Cluster]:
    """Two nodes of examples/echo.py."""
    with running_cluster(namespaced(redis.url), 2, target=ECHO_APP) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def cluster(redis: RedisServer) -> Iterator[Cluster]:
    """Two nodes of the cluster app."""
    with running_cluster(namespaced(redis.url), 2) as cluster:
        yield cluster


async def test_fanout_reaches_clients_on_the_other_node_both_ways(echo_cluster: Cluster, clients: Clients) -> None:
    a_node, b_node = echo_cluster.nodes
    on_a = await clients.raw(a_node.url("/fanout"), "websockets")
    on_b = await clients.raw(b_node.url("/fanout"), "aiohttp")
    also_on_a = await clients.raw(a_node.url("/fanout"), "hubbub")
    await probe_until_heard(on_a, on_b)
    await probe_until_heard(on_b, also_on_a)

    await on_b.send("from B")
    for peer in (on_a, also_on_a, on_b):
        assert (await peer.recv_until(not_probe))[-1] == "from B"
    await on_a.send("from A")
    for peer in (on_b, also_on_a, on_a):
        assert (await peer.recv_until(not_probe))[-1] == "from A"


async def test_echo_stays_on_its_node(echo_cluster: Cluster, clients: Clients) -> None:
    for node in echo_cluster.nodes:
        peer = await clients.raw(node.url("/echo"))
        await peer.send(f"echo on {node.port}")
        assert await peer.recv() == f"echo on {node.port}"


async def test_room_broadcast_reaches_members_on_every_node(cluster: Cluster, clients: Clients) -> None:
    a_node, b_node = cluster.nodes
    room = fresh("room")
    on_a, _ = await clients.room(a_node, room)
    on_b, _ = await clients.room(b_node, room)
    await eventually(lambda: _all_count(cluster, room, 2))

    assert (await post(a_node, f"/rooms/{room}", "hello from A"))["local"] == 1
    assert await on_a.recv() == "hello from A"
    assert await on_b.recv() == "hello from A"
    await post(b_node, f"/rooms/{room}", "hello from B")
    assert await on_a.recv() == "hello from B"
    assert await on_b.recv() == "hello from B"


async def _all_count(cluster: Cluster, room: str, count: int) -> bool:
    return all([(await get(node, f"/rooms/{room}"))["count"] == count for node in cluster.nodes])


async def test_send_to_a_client_on_another_node(cluster: Cluster, clients: Clients) -> None:
    a_node, b_node = cluster.nodes
    peer, hello = await clients.room(a_node, fresh("direct"))
    assert (await post(b_node, f"/send/{hello['client_id']}", "just for you"))["sent"] is True
    assert await peer.recv() == "just for you"
    assert (await post(b_node, f"/send/{uuid.uuid4()}", "nobody"))["sent"] is False


async def test_send_to_a_user_reaches_devices_on_every_node(cluster: Cluster, clients: Clients) -> None:
    a_node, b_node = cluster.nodes
    user, other = fresh("user"), fresh("other")
    devices = [
        await clients.chat(a_node, user, "websockets"),
        await clients.chat(b_node, user, "aiohttp"),
        await clients.chat(b_node, user, "hubbub"),
    ]
    bystander = await clients.chat(a_node, other)

    assert (await post(a_node, f"/user/{user}", '{"type": "note", "data": 1}'))["devices"] == 3
    for device in devices:
        assert (await device.next(lambda e: e.get("type") == "note"))["data"] == 1
    await post(b_node, f"/user/{other}", '{"type": "note", "data": 2}')
    assert (await bystander.next(lambda e: e.get("type") == "note"))["data"] == 2


@pytest.mark.parametrize("library", LIBRARIES)
async def test_close_a_client_on_another_node(cluster: Cluster, clients: Clients, library: Library) -> None:
    a_node, b_node = cluster.nodes
    peer, hello = await clients.room(a_node, fresh("closing"), library)
    assert (await post(b_node, f"/close/{hello['client_id']}?code=4321&reason=moved"))["closed"] is True
    assert await peer.wait_closed(10.0) == (4321, "moved")
    await eventually(lambda: _not_listed(cluster, hello["client_id"]))
    assert (await post(b_node, f"/close/{hello['client_id']}?code=4321"))["closed"] is False


async def _not_listed(cluster: Cluster, client_id: str) -> bool:
    return all([client_id not in (await get(node, "/stats"))["clients"] for node in cluster.nodes])


async def test_room_members_and_counts_are_the_same_from_every_node(cluster: Cluster, clients: Clients) -> None:
    a_node, b_node = cluster.nodes
    room = fresh("members")
    joined = [await clients.room(node, room) for node in (a_node, a_node, b_node)]
    ids = sorted(hello["client_id"] for _, hello in joined)

    async def everyone_sees(expected: list[str]) -> bool:
        views = [await get(node, f"/rooms/{room}") for node in cluster.nodes]
        return all(view == {"members": expected, "count": len(expected)} for view in views)

    await eventually(lambda: everyone_sees(ids))
    leaving, hello = joined[2]
    await leaving.close()
    await eventually(lambda: everyone_sees([i for i in ids if i != hello["client_id"]]))


async def test_connection_count_is_the_same_from_every_node(cluster: Cluster, clients: Clients) -> None:
    a_node, b_node = cluster.nodes
    joined = [await clients.room(node, fresh("count")) for node in (a_node, b_node, b_node)]
    ids = sorted(hello["client_id"] for _, hello in joined)

    async def everyone_counts() -> bool:
        views = [await get(node, "/stats") for node in cluster.nodes]
        return all(view["connections"] == 3 and view["clients"] == ids for view in views)

    await eventually(everyone_counts)


async def test_dropped_counts_are_summed_across_nodes(cluster: Cluster, clients: Clients) -> None:
    a_node, b_node = cluster.nodes
    _, hello_a = await clients.room(a_node, fresh("flood"))
    _, hello_b = await clients.room(b_node, fresh("flood"))
    before = (await get(a_node, "/stats"))["dropped"]
    # Backpressure counts only what the kernel refused: the floods (16 and 19 MiB to clients that read
    # none of it) are more than the socket buffers of a loopback connection can take.
    dropped_a = (await post(a_node, f"/flood/{hello_a['client_id']}?count=1000&size=16384"))["dropped"]
    dropped_b = (await post(b_node, f"/flood/{hello_b['client_id']}?count=1200&size=16384"))["dropped"]
    assert dropped_a > 0 and dropped_b > 0

    async def everyone_sums() -> bool:
        return all([(await get(node, "/stats"))["dropped"] == before + dropped_a + dropped_b for node in cluster.nodes])

    await eventually(everyone_sums)


async def test_joins_made_at_once_on_one_node_all_count_cluster_wide(cluster: Cluster, clients: Clients) -> None:
    room = fresh("crowd")
    peers = [await clients.chat(cluster.nodes[0], fresh("user")) for _ in range(12)]
    for peer in peers:  # every request leaves before any reply is read: the node handles them at once
        await peer.peer.send(json.dumps({"type": "hubbub.join", "data": {"room": room}, "id": 1}))
    for peer in peers:
        assert (await peer.next(lambda e: e.get("id") == 1))["data"] == {"room": room}
    await eventually(lambda: _all_count(cluster, room, len(peers)))
