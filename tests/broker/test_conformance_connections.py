"""Conformance: connections across nodes (register, unregister, counts, lookups, cluster-wide limits)."""

from __future__ import annotations

import asyncio
from collections import Counter

from hubbub.broker.base import Registration
from tests.broker.conftest import ClusterOf


async def test_register_is_seen_by_every_node(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(3)
    a = await cluster.connect(0, "ana", name="Ana")
    b = await cluster.connect(1)
    c = await cluster.connect(2, "bea")
    for node in cluster.nodes:
        assert await node.connection_count() == 3
        assert sorted(await node.clients()) == sorted([a.client_id, b.client_id, c.client_id])
        assert await node.locate(a.client_id) == a
        assert await node.locate(b.client_id) == b
        assert await node.locate(c.client_id) == c
        assert await node.locate("no-such-client") is None
    located = await cluster.nodes[2].locate(a.client_id)
    assert located is not None
    assert (located.node_id, located.user_id, dict(located.info)) == (cluster.nodes[0].node_id, "ana", {"name": "Ana"})


async def test_unregister_is_seen_by_every_node(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(2)
    a = await cluster.connect(0)
    b = await cluster.connect(1)
    await cluster.nodes[0].unregister(a, [])
    for node in cluster.nodes:
        assert await node.connection_count() == 1
        assert await node.clients() == [b.client_id]
        assert await node.locate(a.client_id) is None
    await cluster.nodes[1].unregister(b, [])
    for node in cluster.nodes:
        assert await node.connection_count() == 0
        assert await node.clients() == []


async def test_unregister_twice_is_harmless(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(2)
    a = await cluster.connect(0, "ana")
    b = await cluster.connect(1)
    await cluster.nodes[0].unregister(a, [])
    await cluster.nodes[0].unregister(a, [])
    assert await cluster.nodes[1].connection_count() == 1
    assert await cluster.nodes[1].clients() == [b.client_id]
    await cluster.journal.until(lambda: bool(cluster.journal.presence("offline", "ana")), "ana to go offline")
    await cluster.nodes[0].unregister(a, [])
    await cluster.nodes[1].unregister(a, [])
    await cluster.presence_settled()
    assert len(cluster.journal.presence("offline", "ana")) == 1
    assert not await cluster.nodes[1].is_online("ana")
    assert await cluster.nodes[1].connection_count() == 1


async def test_global_limit_holds_across_nodes(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(2)
    first = [await cluster.nodes[i % 2].register(cluster.member(i % 2), max_connections=3) for i in range(3)]
    assert first == [Registration.OK] * 3
    for index in (0, 1):
        assert await cluster.nodes[index].register(cluster.member(index), max_connections=3) is (
            Registration.OVER_CAPACITY
        )
    assert await cluster.nodes[0].connection_count() == 3
    assert await cluster.nodes[1].register(cluster.member(1), max_connections=4) is Registration.OK
    assert await cluster.nodes[1].connection_count() == 4


async def test_global_limit_frees_a_place_on_unregister(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(2)
    members = [cluster.member(0), cluster.member(1)]
    for index, member in enumerate(members):
        assert await cluster.nodes[index].register(member, max_connections=2) is Registration.OK
    assert await cluster.nodes[0].register(cluster.member(0), max_connections=2) is Registration.OVER_CAPACITY
    await cluster.nodes[1].unregister(members[1], [])
    assert await cluster.nodes[0].register(cluster.member(0), max_connections=2) is Registration.OK
    assert await cluster.nodes[1].connection_count() == 2


async def test_per_user_limit_holds_across_nodes(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(3)
    for index in (0, 1):
        assert await cluster.nodes[index].register(cluster.member(index, "ana"), max_per_user=2) is Registration.OK
    for index in (0, 1, 2):
        refused = await cluster.nodes[index].register(cluster.member(index, "ana"), max_per_user=2)
        assert refused is Registration.TOO_MANY_FOR_USER
    assert await cluster.nodes[2].register(cluster.member(2, "bea"), max_per_user=2) is Registration.OK
    assert await cluster.nodes[2].register(cluster.member(2), max_per_user=2) is Registration.OK
    assert len(await cluster.nodes[2].user_clients("ana")) == 2
    assert await cluster.nodes[0].connection_count() == 4


async def test_global_limit_holds_when_registrations_race(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(2)
    attempts = [cluster.nodes[i % 2].register(cluster.member(i % 2), max_connections=7) for i in range(40)]
    results = Counter(await asyncio.gather(*attempts))
    assert results == Counter({Registration.OK: 7, Registration.OVER_CAPACITY: 33})
    for node in cluster.nodes:
        assert await node.connection_count() == 7
        assert len(await node.clients()) == 7


async def test_per_user_limit_holds_when_registrations_race(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(2)
    attempts = [
        cluster.nodes[i % 2].register(cluster.member(i % 2, "ana" if i % 3 else "bea"), max_per_user=3)
        for i in range(30)
    ]
    results = Counter(await asyncio.gather(*attempts))
    assert results == Counter({Registration.OK: 6, Registration.TOO_MANY_FOR_USER: 24})
    for node in cluster.nodes:
        assert len(await node.user_clients("ana")) == 3
        assert len(await node.user_clients("bea")) == 3
        assert await node.connection_count() == 6
    assert len(cluster.journal.presence("online", "ana")) == 1
    assert len(cluster.journal.presence("online", "bea")) == 1


async def test_users_clients_across_nodes(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(3)
    devices = [await cluster.connect(i, "ana") for i in range(3)]
    other = await cluster.connect(1, "bea")
    for node in cluster.nodes:
        assert sorted(await node.user_clients("ana")) == sorted(d.client_id for d in devices)
        assert await node.user_clients("bea") == [other.client_id]
        assert await node.user_clients("nobody") == []
    await cluster.nodes[1].unregister(devices[1], [])
    for node in cluster.nodes:
        assert sorted(await node.user_clients("ana")) == sorted([devices[0].client_id, devices[2].client_id])
