"""On a Redis Cluster the membership is sharded (`broker/redis_sharded.py`): the keys of many
users in many rooms spread over every master, a node's own keys sit in its slot, and the slot of
`{ns}` keeps only the nodes' leases, never a key per connection, room or user."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis

from hubbub.broker.base import Member, Publication
from hubbub.broker.redis import RedisBroker
from hubbub.broker.redis_target import RedisTarget
from hubbub.testing import RedisClusterServer, wait_for
from hubbub.testing.redis_cluster import command
from tests.broker.recording import Journal, RecordingListener

CONNECTIONS = 120
ROOMS = 30

NODES_SLOT_KEYS = {"nodes", "epochs", "counted", "orphans", "dropped"}
"""What the slot of `{ns}` may hold (besides `reaped:<node>` markers)."""


@pytest.fixture
async def two_nodes(redis_cluster_server: RedisClusterServer) -> AsyncIterator[tuple[RedisBroker, RedisBroker]]:
    """Two broker nodes on the session's Redis Cluster, in a namespace of their own."""
    url = f"{redis_cluster_server.url}?namespace=sh{uuid.uuid4().hex[:8]}"
    journal = Journal()
    nodes = (RedisBroker(url, presence_grace=0), RedisBroker(url, presence_grace=0))
    for index, node in enumerate(nodes):
        await node.start(RecordingListener(journal, index))
    yield nodes
    for node in nodes:
        await node.stop()


def keys_per_master(cluster: RedisClusterServer, pattern: str) -> dict[int, int]:
    """How many keys matching `pattern` each master holds."""
    counts = {}
    for master in cluster.masters():
        with redis.Redis(port=master.port) as raw:
            counts[master.port] = len(raw.keys(pattern))
    return counts


async def churn(nodes: tuple[RedisBroker, RedisBroker]) -> list[Member]:
    """CONNECTIONS users connect (alternating nodes), each joins two of ROOMS rooms and leaves one."""
    members = [Member(f"c{i}-{uuid.uuid4().hex[:6]}", nodes[i % 2].node_id, f"user-{i}") for i in range(CONNECTIONS)]
    await asyncio.gather(*(nodes[i % 2].register(member) for i, member in enumerate(members)))
    await asyncio.gather(
        *(nodes[i % 2].join(f"room-{(i + k) % ROOMS}", m) for i, m in enumerate(members) for k in (0, 1))
    )
    await asyncio.gather(*(nodes[i % 2].leave(f"room-{(i + 1) % ROOMS}", m) for i, m in enumerate(members)))
    return members


async def test_rooms_and_users_spread_over_every_master(
    redis_cluster_server: RedisClusterServer, two_nodes: tuple[RedisBroker, RedisBroker]
) -> None:
    await churn(two_nodes)
    namespace = two_nodes[0].ns
    for kind, expected in (("r", ROOMS), ("u", CONNECTIONS)):
        held = keys_per_master(redis_cluster_server, f"{{{namespace}:{kind}:*")
        assert sum(held.values()) >= expected, held
        assert min(held.values()) > 0.15 * sum(held.values()), f"a master holds almost none of them: {held}"
    for node in two_nodes:  # a node's own keys: in its slot, on one master
        own = keys_per_master(redis_cluster_server, f"{{{namespace}:n:{node.node_id}}}*")
        assert sorted(held for held in own.values() if held) == [sum(own.values())]


async def test_the_nodes_slot_holds_no_key_per_connection_room_or_user(
    redis_cluster_server: RedisClusterServer, two_nodes: tuple[RedisBroker, RedisBroker]
) -> None:
    members = await churn(two_nodes)
    node = two_nodes[0]
    assert await node.connection_count() == CONNECTIONS
    assert len(await node.rooms()) == ROOMS
    assert len(await node.online_users()) == CONNECTIONS
    assert await node.room_count("room-0") == 4  # users 0, 30, 60 and 90 (29, 59, 89 and 119 left it)
    assert await node.user_clients("user-7") == [members[7].client_id]
    master = redis_cluster_server.master_of(node.prefix + ":nodes")
    with redis.Redis(port=master.port) as raw:
        keys = [key.decode() for key in raw.keys(node.prefix + "*")]
    kinds = {key.removeprefix(node.prefix + ":") for key in keys}
    assert kinds, "the nodes' slot is empty"
    assert {kind for kind in kinds if not kind.startswith("reaped:")} <= NODES_SLOT_KEYS, kinds


async def test_a_burst_of_first_joins_subscribes_every_room_at_once(
    redis_cluster_server: RedisClusterServer,
) -> None:
    url = f"{redis_cluster_server.url}?namespace=sb{uuid.uuid4().hex[:8]}"
    journal = Journal()
    sender, receiver = RedisBroker(url), RedisBroker(url)
    await sender.start(RecordingListener(journal, 0))
    await receiver.start(RecordingListener(journal, 1))
    try:
        member = Member("listener", receiver.node_id)
        await receiver.register(member)
        rooms = [f"burst-{i}" for i in range(ROOMS)]
        await asyncio.gather(*(receiver.join(room, member) for room in rooms))  # fresh shard connections
        assert not receiver._subscription_stale, "a subscription was not confirmed"
        for room in rooms:
            await sender.publish(Publication(kind="room", target=room, data=room))
        await journal.until(lambda: len(journal.delivered(1)) == ROOMS, "every room's publication on node 1")
        assert sorted(str(p.data) for p in journal.delivered(1)) == sorted(rooms)
    finally:
        await sender.stop()
        await receiver.stop()


def bump_cluster_epoch(cluster: RedisClusterServer) -> None:
    """Make the cluster's epoch grow, as a replica's promotion does (CLUSTER BUMPEPOCH on a node that can)."""
    for node in cluster.masters():
        if str(command(node.port, "CLUSTER", "BUMPEPOCH")).startswith("BUMPED"):
            return
    raise AssertionError("no master bumped the cluster's epoch")


async def test_after_a_failover_each_node_writes_back_what_a_slot_lost(
    redis_cluster_server: RedisClusterServer, two_nodes: tuple[RedisBroker, RedisBroker]
) -> None:
    watcher, owner = two_nodes
    member = Member("kept", owner.node_id, "ana")
    await owner.register(member)
    await owner.join("kept-room", member)
    raw = RedisTarget.parse(redis_cluster_server.url)[0].client(max_connections=4, socket_timeout=5.0)
    try:  # what a promoted replica lacks when its master died before replicating these writes
        await raw.hdel(f"{owner.keys.room_slot('kept-room')}:members", member.client_id)
        await raw.hdel(f"{owner.keys.user_slot('ana')}:conns", member.client_id)
    finally:
        await raw.aclose()
    assert await watcher.room_count("kept-room") == 0
    assert await watcher.user_clients("ana") == []

    await asyncio.to_thread(bump_cluster_epoch, redis_cluster_server)

    async def written_back() -> bool:
        return await watcher.in_room("kept-room", member.client_id) and await watcher.user_clients("ana") == [
            member.client_id
        ]

    await wait_for(written_back, timeout=owner.node_timeout + 2.0)
