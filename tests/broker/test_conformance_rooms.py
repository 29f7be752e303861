"""Conformance: rooms across nodes (join, leave, members, counts, the list of rooms)."""

from __future__ import annotations

from hubbub.broker.base import Member
from tests.broker.conftest import ClusterOf


def ids(members: list[Member]) -> list[str]:
    """Sorted client ids."""
    return sorted(member.client_id for member in members)


async def test_join_is_seen_by_every_node(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(3)
    a = await cluster.connect(0, "ana", name="Ana")
    b = await cluster.connect(1)
    c = await cluster.connect(2, "bea")
    await cluster.nodes[0].join("lobby", a)
    await cluster.nodes[1].join("lobby", b)
    await cluster.nodes[2].join("lobby", c)
    await cluster.nodes[2].join("side", c)
    for node in cluster.nodes:
        assert ids(await node.room_members("lobby")) == sorted([a.client_id, b.client_id, c.client_id])
        assert await node.room_members("side") == [c]
        assert await node.room_count("lobby") == 3
        assert await node.room_count("side") == 1
        assert await node.room_count("empty") == 0
        assert await node.room_members("empty") == []
        assert sorted(await node.rooms()) == ["lobby", "side"]
    members = {m.client_id: m for m in await cluster.nodes[1].room_members("lobby")}
    assert members[a.client_id] == a
    assert members[a.client_id].who() == {"client_id": a.client_id, "user": "ana", "info": {"name": "Ana"}}


async def test_join_twice_counts_once(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(2)
    a = await cluster.connect(0)
    await cluster.nodes[0].join("lobby", a)
    await cluster.nodes[0].join("lobby", a)
    assert await cluster.nodes[1].room_count("lobby") == 1


async def test_leave_is_seen_by_every_node_and_empty_rooms_disappear(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(2)
    a = await cluster.connect(0)
    b = await cluster.connect(1)
    for index, member in ((0, a), (1, b)):
        await cluster.nodes[index].join("lobby", member)
    await cluster.nodes[0].join("side", a)
    await cluster.nodes[0].leave("lobby", a)
    for node in cluster.nodes:
        assert await node.room_members("lobby") == [b]
        assert await node.room_count("lobby") == 1
    await cluster.nodes[1].leave("lobby", b)
    await cluster.nodes[0].leave("side", a)
    for node in cluster.nodes:
        assert await node.room_members("lobby") == []
        assert await node.room_count("lobby") == 0
        assert await node.rooms() == []
    await cluster.nodes[0].leave("lobby", a)
    assert await cluster.nodes[1].rooms() == []


async def test_unregister_takes_the_member_out_of_its_rooms(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(2)
    a = await cluster.connect(0, "ana")
    b = await cluster.connect(1)
    for room in ("lobby", "a-only", "b-only"):
        if room != "b-only":
            await cluster.nodes[0].join(room, a)
        if room != "a-only":
            await cluster.nodes[1].join(room, b)
    await cluster.nodes[0].unregister(a, ["lobby", "a-only"])
    for node in cluster.nodes:
        assert await node.room_members("lobby") == [b]
        assert await node.room_members("a-only") == []
        assert await node.room_count("a-only") == 0
        assert sorted(await node.rooms()) == ["b-only", "lobby"]
    await cluster.nodes[1].unregister(b, ["lobby", "b-only"])
    for node in cluster.nodes:
        assert await node.rooms() == []
        assert await node.room_count("lobby") == 0


async def test_a_member_can_rejoin_after_leaving(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(2)
    a = await cluster.connect(0)
    await cluster.nodes[0].join("lobby", a)
    await cluster.nodes[0].leave("lobby", a)
    await cluster.nodes[0].join("lobby", a)
    assert await cluster.nodes[1].room_members("lobby") == [a]
    assert await cluster.nodes[1].rooms() == ["lobby"]


async def test_in_room_answers_for_members_of_any_node(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(2)
    a = await cluster.connect(0)
    b = await cluster.connect(1)
    await cluster.nodes[0].join("lobby", a)
    for node in cluster.nodes:
        assert await node.in_room("lobby", a.client_id)
        assert not await node.in_room("lobby", b.client_id)
        assert not await node.in_room("empty", a.client_id)
    await cluster.nodes[0].leave("lobby", a)
    for node in cluster.nodes:
        assert not await node.in_room("lobby", a.client_id)
