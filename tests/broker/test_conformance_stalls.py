"""Conformance: the cluster's state survives a stalled engine and paused nodes.

A Redis that stops answering for longer than a node's lease (SIGSTOP of the real redis-server)
and nodes that do not run for longer than `node_timeout` (the event loop blocked: every node of
the process paused together) cost no state: no node is reaped, no user goes offline. A node whose
registration Redis lost (reaped while cut off, a failover) rewrites it at its next heartbeat, and
the writes it made with its old epoch are refused. Every publication is delivered in time or
counted lost, never both. The memory engine is held to the cases that apply to it (it has no
engine to stall and its nodes share one process).
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from hubbub.broker import redis_scripts as lua
from hubbub.broker import redis_sharded_scripts as sharded
from hubbub.broker.base import Member, Publication
from hubbub.broker.redis import RedisBroker
from hubbub.broker.redis_target import RedisTarget
from hubbub.broker.redis_values import member_blob
from hubbub.testing import RedisServer, wait_for
from tests.broker.cluster import BrokerCluster, Engine
from tests.broker.conftest import ClusterOf, one_server_only, redis_only
from tests.broker.recording import Journal, RecordingListener
from tests.broker.test_conformance_nodes import count, populate, presence_leaves


@pytest.fixture
async def raw(engine: Engine, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A plain client of the test's Redis (server or cluster), to change its data behind the nodes' backs."""
    if engine == "redis-cluster":
        url = request.getfixturevalue("redis_cluster_server").url
        client: Any = RedisTarget.parse(url)[0].client(max_connections=8, socket_timeout=5.0)
    else:
        client = aioredis.Redis.from_url(request.getfixturevalue("broker_redis").url)
    yield client
    await client.aclose()


def script_args(engine: Engine, script: str, *args: Any) -> tuple[Any, ...]:
    """EVAL's arguments for a membership script: on a cluster, routed by its key prefix (args[0])."""
    return (script, 1, args[0], *args) if engine == "redis-cluster" else (script, 0, *args)


def redis_node(cluster: BrokerCluster, index: int) -> RedisBroker:
    """A node of a Redis cluster, with its engine's attributes."""
    node = cluster.nodes[index]
    assert isinstance(node, RedisBroker)
    return node


async def assert_whole(cluster: BrokerCluster, people: dict[str, Member], watcher: int) -> None:
    """What a node sees of the state `populate` made, when nothing of it was lost."""
    node = cluster.nodes[watcher]
    everyone = sorted(member.client_id for member in people.values())
    assert await node.connection_count() == 4
    assert sorted(await node.clients()) == everyone
    assert await node.locate(people["ana@1"].client_id) == people["ana@1"]
    assert sorted(m.client_id for m in await node.room_members("lobby")) == everyone
    assert sorted(m.client_id for m in await node.room_members("back")) == sorted(
        [people["ana@1"].client_id, people["bea@1"].client_id]
    )
    assert sorted(await node.rooms()) == ["back", "lobby"]
    assert await node.user_clients("ana") == [people["ana@1"].client_id]
    assert sorted(await node.online_users()) == ["ana", "bea"]


async def reaped_marker(cluster: BrokerCluster, dead: int, watchers: tuple[int, ...]) -> None:
    """Kill node `dead` (its only member, anon@2, is in the lobby) and wait until the others reaped it.
    Nodes that reap nobody for a while after a stall or a pause reap it only after that while: once
    it is gone, a wrongful reaping of a live node would have happened too."""
    await cluster.kill(dead)
    await cluster.journal.until(
        lambda: all(len(presence_leaves(cluster, watcher)) == 1 for watcher in watchers),
        "the killed node to be reaped",
        timeout=3 * cluster.node_timeout + 2.0,
    )


async def test_a_redis_stall_longer_than_the_lease_costs_no_state(
    cluster_of: ClusterOf, engine: Engine, broker_redis: RedisServer
) -> None:
    one_server_only(engine, "a stalled server (a cluster whose every node is stopped would start failovers)")
    cluster = await cluster_of(3)
    people = await populate(cluster)
    lease = redis_node(cluster, 0).lease
    assert lease < lease + 0.5 < redis_node(cluster, 0).socket_timeout, "the stall must fall between the two"
    broker_redis.pause()
    try:
        await asyncio.sleep(lease + 0.5)  # the fault itself: Redis answers nothing for this long
    finally:
        broker_redis.resume()
    await wait_for(lambda: all(node.ready for node in cluster.nodes), timeout=cluster.node_timeout + 2.0)
    await reaped_marker(cluster, 2, (0, 1))
    for watcher in (0, 1):
        await assert_whole_but(cluster, people, watcher, gone="anon@2")
    assert count(cluster, "offline", "ana") == 0
    assert count(cluster, "offline", "bea") == 0
    assert count(cluster, "online", "ana") == 1, "ana's presence flapped"


async def assert_whole_but(cluster: BrokerCluster, people: dict[str, Member], watcher: int, gone: str) -> None:
    """What a node sees once the node of `gone` was reaped and nothing else was lost."""
    node = cluster.nodes[watcher]
    left = sorted(member.client_id for name, member in people.items() if name != gone)
    assert await node.connection_count() == len(left)
    assert sorted(await node.clients()) == left
    assert sorted(m.client_id for m in await node.room_members("lobby")) == left
    assert await node.room_count("back") == 2
    assert await node.user_clients("ana") == [people["ana@1"].client_id]
    assert sorted(await node.online_users()) == ["ana", "bea"]


async def test_nodes_paused_together_longer_than_node_timeout_keep_their_state(
    cluster_of: ClusterOf, engine: Engine
) -> None:
    cluster = await cluster_of(3)
    people = await populate(cluster)
    time.sleep(cluster.node_timeout + 0.5)  # the fault itself: every node of this process stops running
    if engine != "memory":
        await reaped_marker(cluster, 2, (0, 1))
        for watcher in (0, 1):
            await assert_whole_but(cluster, people, watcher, gone="anon@2")
    else:
        for watcher in (0, 1, 2):
            await assert_whole(cluster, people, watcher)
    assert count(cluster, "offline", "ana") == 0
    assert count(cluster, "offline", "bea") == 0


async def test_a_node_reaped_while_cut_off_rewrites_its_state_and_its_old_writes_are_refused(
    cluster_of: ClusterOf, engine: Engine, raw: aioredis.Redis
) -> None:
    redis_only(engine, "memory nodes cannot be cut off from their engine")
    cluster = await cluster_of(3)
    people = await populate(cluster)
    reaper, cut_off = redis_node(cluster, 0), redis_node(cluster, 1)
    if engine == "redis-cluster":
        await reaped_on_a_cluster(cluster, people, raw, reaper, cut_off)
        return
    old_epoch = cut_off._epoch
    async with raw.pipeline(transaction=True) as pipe:  # node 0 finds node 1's lease expired and reaps it
        pipe.zadd(f"{reaper.prefix}:nodes", {cut_off.node_id: 0})
        pipe.eval(*script_args(engine, lua.REAP, reaper.prefix, reaper.node_id, reaper._epoch))
        _, reaped = await pipe.execute()
    assert reaped[:2] == [b"node", cut_off.node_id.encode()]

    ana = people["ana@1"]
    late_join = await raw.eval(
        *script_args(engine, lua.JOIN, reaper.prefix, "late", ana.client_id, member_blob(ana), ana.node_id, old_epoch)
    )
    assert late_join == lua.FENCED, "a write made with the reaped epoch went through"
    assert await raw.exists(f"{reaper.prefix}:room:late") == 0

    await cluster.journal.until(lambda: count(cluster, "online", "ana") == 2, "node 1 to write ana back")
    assert cut_off._epoch != old_epoch
    for watcher in (0, 2):
        await assert_whole(cluster, people, watcher)
    back = sorted([people["ana@1"].client_id, people["bea@1"].client_id])
    await cluster.journal.until(
        lambda: all(sorted(presence_joins(cluster, watcher, "lobby")) == back for watcher in (0, 2)),
        "nodes 0 and 2 to hear that node 1's members are back in the lobby",
    )


async def reaped_on_a_cluster(
    cluster: BrokerCluster, people: dict[str, Member], raw: Any, reaper: RedisBroker, cut_off: RedisBroker
) -> None:
    """The same on a Redis Cluster: the reaper makes an orphan of the node and cleans up its slot, then writes
    the node sent with its old epoch are refused in its own slot and in a room's slot. The cut-off node's
    rewrite may run before the cleanup (then its members never leave) or after (they leave and come back)."""
    assert reaper._sharded is not None
    old_epoch = cut_off._epoch
    async with raw.pipeline(transaction=True) as pipe:  # one slot, {ns}: the test's ZADD and the REAP in one step
        pipe.zadd(f"{reaper.prefix}:nodes", {cut_off.node_id: 0})
        pipe.eval(*script_args("redis-cluster", sharded.REAP, reaper.prefix, reaper.node_id, reaper._epoch))
        _, reaped = await pipe.execute()
    assert reaped == [cut_off.node_id.encode()]
    await reaper._clean_orphans(reaper._sharded)  # what its next heartbeat does

    ana = people["ana@1"]
    own = reaper.keys.node_slot(cut_off.node_id)
    late_own = await raw.eval(
        *script_args("redis-cluster", sharded.OWN_APPLY, own, old_epoch, "join", 2, ana.client_id, "late")
    )
    assert late_own == lua.FENCED, "a write made with the reaped epoch went through in the node's slot"
    lobby = reaper.keys.room_slot("lobby")
    blob = member_blob(ana, int(old_epoch))
    late = await raw.eval(
        *script_args("redis-cluster", sharded.ROOM_JOIN, lobby, cut_off.node_id, old_epoch, ana.client_id, blob)
    )
    assert late == lua.FENCED, "a write made with the reaped epoch went through in a room's slot"

    await wait_for(lambda: cut_off._epoch != old_epoch and cut_off.ready, timeout=cluster.node_timeout + 2.0)
    for watcher in (0, 2):
        await wait_for(functools.partial(whole, cluster, people, watcher), timeout=cluster.node_timeout + 2.0)
        await assert_whole(cluster, people, watcher)
    back = sorted([people["ana@1"].client_id, people["bea@1"].client_id])
    await cluster.journal.until(
        lambda: all(sorted(presence_joins(cluster, watcher, "lobby")) == back for watcher in (0, 2)),
        "nodes 0 and 2 to hear that node 1's members are back in the lobby",
    )
    await cluster.presence_settled()
    assert count(cluster, "online", "ana") - count(cluster, "offline", "ana") == 1


async def whole(cluster: BrokerCluster, people: dict[str, Member], watcher: int) -> bool:
    """Whether `assert_whole` holds now."""
    try:
        await assert_whole(cluster, people, watcher)
    except AssertionError:
        return False
    return True


def presence_joins(cluster: BrokerCluster, node: int, room: str) -> list[str]:
    """Client ids of the presence join envelopes about `room` delivered to a node."""
    return [
        p.envelope["data"]["client_id"]
        for p in cluster.journal.delivered(node)
        if p.envelope is not None
        and p.channel_only
        and p.envelope["data"]["action"] == "join"
        and p.envelope["data"]["room"] == room
    ]


async def test_a_node_whose_connections_redis_lost_writes_them_back(
    cluster_of: ClusterOf, engine: Engine, raw: aioredis.Redis
) -> None:
    redis_only(engine, "the memory engine cannot lose part of its state")
    cluster = await cluster_of(3)
    people = await populate(cluster)
    node = redis_node(cluster, 1)
    ana = people["ana@1"]
    held = (
        f"{node.keys.node_slot(node.node_id)}:conns"
        if engine == "redis-cluster"
        else f"{node.prefix}:conns:{node.node_id}"
    )
    await raw.hdel(held, ana.client_id)  # a failover to a replica that lagged
    assert await cluster.nodes[0].connection_count() == 3

    async def whole_again() -> bool:
        return await cluster.nodes[0].connection_count() == 4

    await wait_for(whole_again, timeout=cluster.node_timeout + 2.0)
    for watcher in (0, 2):
        await assert_whole(cluster, people, watcher)


async def test_publications_held_up_by_a_redis_stall_are_counted_lost_and_never_delivered(
    cluster_of: ClusterOf, engine: Engine, broker_redis: RedisServer
) -> None:
    one_server_only(engine, "a stalled server (a cluster whose every node is stopped would start failovers)")
    cluster = await cluster_of(2)
    sender = redis_node(cluster, 0)
    held = [Publication(kind="all", data=f"held up #{i}") for i in range(5)]
    broker_redis.pause()
    try:
        for publication in held:
            await sender.publish(publication)
        await wait_for(lambda: sender.lost_publications == len(held), timeout=sender.publish_timeout + 2.0)
    finally:
        broker_redis.resume()
    await wait_for(lambda: sender.ready, timeout=cluster.node_timeout + 2.0)
    after = Publication(kind="all", data="after the stall")
    await sender.publish(after)
    await cluster.journal.until(lambda: after in cluster.journal.delivered(1), "the later publication on node 1")
    assert not [p for p in cluster.journal.delivered(1) if p.data in {h.data for h in held}]
    assert sender.lost_publications == len(held)


async def test_publications_made_before_every_node_pauses_are_delivered_in_time_or_counted_lost(
    cluster_of: ClusterOf, engine: Engine
) -> None:
    cluster = await cluster_of(2)
    sender, loop = cluster.nodes[0], asyncio.get_running_loop()
    made = [Publication(kind="all", data=f"before the pause #{i}") for i in range(5)]
    made_at = loop.time()
    for publication in made:
        await sender.publish(publication)
    pause = 1.5  # longer than the Redis engine's publish_timeout (1 s)
    time.sleep(pause)  # the fault itself: the process stops running
    after = Publication(kind="all", data="after the pause")
    await sender.publish(after)
    await cluster.journal.until(lambda: after in cluster.journal.delivered(1), "the later publication on node 1")
    delivered = [call for call in cluster.journal.calls if call.node == 1 and call.publication in made]
    assert len(delivered) + sender.lost_publications == len(made)
    assert all(call.at - made_at < pause for call in delivered), "a publication was delivered late"
    if engine != "memory":
        assert sender.lost_publications == len(made)


async def test_a_node_whose_loop_is_held_past_its_lease_is_not_reaped_by_a_node_that_runs(
    cluster_of: ClusterOf, engine: Engine, raw: aioredis.Redis
) -> None:
    """A burst (thousands of closes at once) can hold a node's event loop past its lease while the other
    nodes, elsewhere, run: the lease keeper's thread renews the lease meanwhile, so they do not reap it."""
    redis_only(engine, "memory nodes have no lease")
    cluster = await cluster_of(1)
    held = redis_node(cluster, 0)
    await held.register(cluster.member(0))
    epoch = held._epoch
    url = f"{held.target.url}?namespace={held.ns}&node_timeout={cluster.node_timeout}"
    started, finish = threading.Event(), threading.Event()

    async def watch() -> None:  # another node, on a loop of its own that the hold does not stop
        other = RedisBroker(url, presence_grace=cluster.presence_grace)
        await other.start(RecordingListener(Journal(), 1))
        started.set()
        await asyncio.to_thread(finish.wait)
        await other.stop()

    watcher = threading.Thread(target=asyncio.run, args=(watch(),))
    watcher.start()
    try:
        assert await asyncio.to_thread(started.wait, 10.0), "the other node did not start"
        time.sleep(3 * held.lease)  # the burst: this loop runs nothing for three leases
        assert not await raw.exists(f"{held.prefix}:reaped:{held.node_id}"), "a node that only ran late was reaped"
        assert held._epoch == epoch
        assert await held.connection_count() == 1
        assert held._keeper is not None and held._keeper.renewals > 0
    finally:
        finish.set()
        await asyncio.to_thread(watcher.join, 30.0)
