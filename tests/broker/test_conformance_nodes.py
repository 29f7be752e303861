"""Conformance: a node leaving the cluster. A graceful stop (both engines) and, for Redis, a node that
dies without a goodbye and is reaped by the others within node_timeout."""

from __future__ import annotations

import asyncio

from hubbub.broker.base import Member, Publication
from hubbub.broker.redis import RedisBroker
from hubbub.protocol import envelope as env
from hubbub.testing import wait_for
from tests.broker.cluster import BrokerCluster, Engine
from tests.broker.conftest import ClusterOf, redis_only
from tests.broker.recording import Kind


def count(cluster: BrokerCluster, kind: Kind, user: str) -> int:
    """How many online/offline calls about `user` the cluster made."""
    assert kind != "deliver"
    return len(cluster.journal.presence(kind, user))


async def populate(cluster: BrokerCluster) -> dict[str, Member]:
    """ana only on node 1, bea on nodes 0 and 1, an anonymous client on node 2; rooms lobby (all) and
    back (node 1 only)."""
    people = {
        "ana@1": await cluster.connect(1, "ana"),
        "bea@0": await cluster.connect(0, "bea"),
        "bea@1": await cluster.connect(1, "bea"),
        "anon@2": await cluster.connect(2),
    }
    for name, member in people.items():
        index = int(name.split("@")[1])
        await cluster.nodes[index].join("lobby", member)
        if index == 1:
            await cluster.nodes[index].join("back", member)
    return people


async def assert_node_1_is_gone(cluster: BrokerCluster, people: dict[str, Member], watcher: int) -> None:
    """What every remaining node sees once node 1 left the cluster."""
    node = cluster.nodes[watcher]
    assert await node.connection_count() == 2
    assert sorted(await node.clients()) == sorted([people["bea@0"].client_id, people["anon@2"].client_id])
    assert await node.locate(people["ana@1"].client_id) is None
    assert sorted(m.client_id for m in await node.room_members("lobby")) == sorted(
        [people["bea@0"].client_id, people["anon@2"].client_id]
    )
    assert await node.room_count("back") == 0
    assert await node.rooms() == ["lobby"]
    assert await node.user_clients("ana") == []
    assert await node.user_clients("bea") == [people["bea@0"].client_id]
    assert await node.is_online("bea")


async def test_a_stopped_node_leaves_no_state(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(3)
    people = await populate(cluster)
    stopped_at = asyncio.get_running_loop().time()
    await cluster.stop_node(1)
    for watcher in (0, 2):
        await assert_node_1_is_gone(cluster, people, watcher)
    await cluster.journal.until(lambda: count(cluster, "offline", "ana") > 0, "ana to go offline")
    assert cluster.journal.presence("offline", "ana")[0].at - stopped_at >= cluster.presence_grace - 0.01
    assert cluster.journal.presence("offline", "ana")[0].node != 1, "a stopped node's listener hears nothing"
    await cluster.presence_settled()
    assert count(cluster, "offline", "ana") == 1
    assert count(cluster, "offline", "bea") == 0
    assert await cluster.nodes[0].online_users() == ["bea"]


async def test_a_stopped_node_hears_nothing(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(3)
    await cluster.stop_node(1)
    publication = Publication(kind="all", data="after the stop")
    await cluster.nodes[0].publish(publication)
    await cluster.journal.until(lambda: publication in cluster.journal.delivered(2), "the publication on node 2")
    assert cluster.journal.delivered(1) == []


async def test_a_user_leaving_just_before_its_node_stops_still_goes_offline_once(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(2)
    ana = await cluster.connect(1, "ana")
    await cluster.nodes[1].unregister(ana, [])
    await cluster.stop_node(1)
    await cluster.journal.until(lambda: count(cluster, "offline", "ana") > 0, "ana to go offline")
    assert cluster.journal.presence("offline", "ana")[0].node == 0, "a stopped node's listener hears nothing"
    await cluster.presence_settled()
    assert count(cluster, "offline", "ana") == 1
    assert not await cluster.nodes[0].is_online("ana")
    assert await cluster.nodes[0].online_users() == []
    await cluster.connect(0, "ana")
    assert count(cluster, "online", "ana") == 2, "a user who went offline comes online again"


async def test_a_user_reconnecting_elsewhere_while_its_node_stops_stays_online(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(2)
    await cluster.connect(1, "ana")
    await cluster.stop_node(1)
    await cluster.connect(0, "ana")
    await cluster.presence_settled()
    assert count(cluster, "offline", "ana") == 0
    assert count(cluster, "online", "ana") == 1
    assert await cluster.nodes[0].is_online("ana")


async def test_a_dead_node_is_reaped_within_node_timeout(cluster_of: ClusterOf, engine: Engine) -> None:
    redis_only(engine, "memory nodes share one process; none can die while the others live")
    cluster = await cluster_of(3)
    people = await populate(cluster)
    await cluster.kill(1)
    await cluster.journal.until(
        lambda: count(cluster, "offline", "ana") > 0, "a live node to reap node 1", timeout=cluster.node_timeout + 1.0
    )
    assert {call.node for call in cluster.journal.presence("offline", "ana")} <= {0, 2}
    for watcher in (0, 2):
        await assert_node_1_is_gone(cluster, people, watcher)
    await cluster.journal.until(
        lambda: all(len(presence_leaves(cluster, watcher)) == 2 for watcher in (0, 2)), "leave events on nodes 0, 2"
    )
    for watcher in (0, 2):
        assert sorted(presence_leaves(cluster, watcher)) == sorted(
            [people["ana@1"].client_id, people["bea@1"].client_id]
        )
    await cluster.stop_node(1)
    await cluster.presence_settled()
    assert count(cluster, "offline", "ana") == 1
    assert count(cluster, "offline", "bea") == 0
    assert count(cluster, "online", "ana") == 1
    assert await cluster.nodes[0].is_online("bea")
    assert await cluster.nodes[0].connection_count() == 2


def presence_leaves(cluster: BrokerCluster, node: int) -> list[str]:
    """Client ids of the reaper's room-leave presence envelopes delivered to a node (lobby only)."""
    return [
        p.envelope["data"]["client_id"]
        for p in cluster.journal.delivered(node)
        if p.envelope is not None
        and p.channel_only
        and p.envelope.get("type") == env.PRESENCE
        and p.envelope["data"]["action"] == "leave"
        and p.envelope["data"]["room"] == "lobby"
    ]


async def test_a_node_hears_a_room_only_while_it_has_members_there(cluster_of: ClusterOf, engine: Engine) -> None:
    redis_only(engine, "the memory engine hands every room publication to every node; the hub filters locally")
    cluster = await cluster_of(3)
    member = await cluster.connect(1)
    await cluster.nodes[1].join("lobby", member)
    if engine == "redis-cluster":
        # Shard channels keep order per channel only (the lobby's and the all channel may live on
        # different masters): what Redis counts as the lobby's subscribers tells who hears it.
        assert await shard_subscribers(cluster, "lobby") == 1
        room = Publication(kind="room", target="lobby", data="to the lobby")
        await cluster.nodes[0].publish(room)
        await cluster.journal.until(lambda: room in cluster.journal.delivered(1), "the lobby publication on node 1")
        await cluster.nodes[1].leave("lobby", member)
        assert await shard_subscribers(cluster, "lobby") == 0
        return
    room = Publication(kind="room", target="lobby", data="to the lobby")
    everyone = Publication(kind="all", data="after the lobby")
    await cluster.nodes[0].publish(room)
    await cluster.nodes[0].publish(everyone)
    # Each node reads its own subscription socket in order: once a node has the later publication,
    # it has read everything published to it before.
    await cluster.journal.until(
        lambda: everyone in cluster.journal.delivered(1) and everyone in cluster.journal.delivered(2),
        "the later publication on nodes 1 and 2",
    )
    assert room in cluster.journal.delivered(1)
    assert room not in cluster.journal.delivered(2)
    await cluster.nodes[1].leave("lobby", member)
    again = Publication(kind="room", target="lobby", data="nobody hears this")
    last = Publication(kind="all", data="after the empty lobby")
    await cluster.nodes[0].publish(again)
    await cluster.nodes[0].publish(last)
    await cluster.journal.until(lambda: last in cluster.journal.delivered(1), "the later publication on node 1")
    assert again not in cluster.journal.delivered(1)


async def shard_subscribers(cluster: BrokerCluster, room: str) -> int:
    """How many connections the master of a room's shard channel counts as its subscribers."""
    node = cluster.nodes[0]
    assert isinstance(node, RedisBroker) and node._redis is not None
    channel = node._channels.room(room)
    master = node._redis.get_node_from_key(channel)  # type: ignore[attr-defined]
    reply = await node._redis.execute_command("PUBSUB", "SHARDNUMSUB", channel, target_nodes=master)
    return int(reply[1])


async def test_the_heartbeat_adds_a_node_s_local_drops_to_the_cluster_count(
    cluster_of: ClusterOf, engine: Engine
) -> None:
    redis_only(engine, "memory nodes have no heartbeat; the hub adds its drops when asked for the count")
    cluster = await cluster_of(2)
    cluster.listeners[1].dropped_to_report = 5
    await cluster.nodes[0].add_dropped(2)

    async def counted() -> bool:
        return await cluster.nodes[0].dropped_count() == 7

    await wait_for(counted, timeout=cluster.node_timeout + 1.0)
    assert cluster.listeners[1].dropped_to_report == 0
    assert await cluster.nodes[1].dropped_count() == 7


async def test_publications_made_just_before_a_stop_are_delivered(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(2)
    sent = [Publication(kind="all", data=f"last words #{i}") for i in range(5)]
    for publication in sent:
        await cluster.nodes[1].publish(publication)
    await cluster.stop_node(1)
    await cluster.journal.until(lambda: len(cluster.journal.delivered(0)) == 5, "the last words on node 0")
    assert cluster.journal.delivered(0) == sent


async def test_a_user_whose_node_dies_within_the_grace_still_goes_offline_once(
    cluster_of: ClusterOf, engine: Engine
) -> None:
    redis_only(engine, "memory nodes share one process; none can die while the others live")
    cluster = await cluster_of(2)
    ana = await cluster.connect(1, "ana")
    await cluster.nodes[1].unregister(ana, [])
    await cluster.kill(1)
    await cluster.journal.until(
        lambda: count(cluster, "offline", "ana") > 0,
        "a live node to decide that ana went offline",
        timeout=cluster.presence_grace + cluster.node_timeout + 1.0,
    )
    assert cluster.journal.presence("offline", "ana")[0].node == 0
    assert not await cluster.nodes[0].is_online("ana")
    await cluster.connect(0, "ana")
    assert count(cluster, "online", "ana") == 2, "a user who went offline comes online again"
    await cluster.stop_node(1)
    await cluster.presence_settled()
    assert count(cluster, "offline", "ana") == 1
