"""Conformance: users online and offline, decided once for the whole cluster, with a grace period."""

from __future__ import annotations

import asyncio

from tests.broker.conftest import ClusterOf


async def test_online_fires_once_for_the_first_device_on_any_node(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(3)
    assert not await cluster.nodes[2].is_online("ana")
    await cluster.connect(1, "ana")
    online = cluster.journal.presence("online", "ana")
    assert len(online) == 1
    assert online[0].node == 1, "the registering node hears it, before register returns"
    for node in cluster.nodes:
        assert await node.is_online("ana")
        assert await node.online_users() == ["ana"]
    await cluster.connect(0, "ana")
    await cluster.connect(2, "ana")
    await cluster.connect(1, "ana")
    assert len(cluster.journal.presence("online", "ana")) == 1
    assert cluster.journal.presence("offline", "ana") == []


async def test_online_fires_once_when_first_devices_race(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(3)
    await asyncio.gather(*(cluster.connect(i % 3, "ana") for i in range(12)))
    assert len(cluster.journal.presence("online", "ana")) == 1
    assert len(await cluster.nodes[0].user_clients("ana")) == 12


async def test_offline_fires_once_after_the_last_device_and_the_grace(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(3)
    devices = [await cluster.connect(i, "ana") for i in range(3)]
    bea = await cluster.connect(0, "bea")
    await cluster.nodes[0].unregister(devices[0], [])
    await cluster.nodes[1].unregister(devices[1], [])
    loop = asyncio.get_running_loop()
    last_left = loop.time()
    await cluster.nodes[2].unregister(devices[2], [])
    for node in cluster.nodes:
        assert await node.is_online("ana"), "within the grace period the user is still online"
        assert sorted(await node.online_users()) == ["ana", "bea"]
    assert cluster.journal.presence("offline", "ana") == []
    await cluster.journal.until(lambda: bool(cluster.journal.presence("offline", "ana")), "ana to go offline")
    offline = cluster.journal.presence("offline", "ana")
    assert offline[0].at - last_left >= cluster.presence_grace - 0.01, "offline came before the grace ended"
    for node in cluster.nodes:
        assert not await node.is_online("ana")
        assert await node.online_users() == ["bea"]
    await cluster.presence_settled()
    assert len(cluster.journal.presence("offline", "ana")) == 1
    assert len(cluster.journal.presence("online", "ana")) == 1
    assert cluster.journal.presence("offline", "bea") == []
    assert await cluster.nodes[1].is_online(str(bea.user_id))


async def test_offline_fires_once_when_last_devices_leave_together(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(3)
    devices = [await cluster.connect(i, "ana") for i in range(3)]
    await asyncio.gather(*(cluster.nodes[i].unregister(device, []) for i, device in enumerate(devices)))
    await cluster.journal.until(lambda: bool(cluster.journal.presence("offline", "ana")), "ana to go offline")
    await cluster.presence_settled()
    assert len(cluster.journal.presence("offline", "ana")) == 1


async def test_reconnecting_within_the_grace_on_another_node_is_not_offline(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(2)
    first = await cluster.connect(0, "ana")
    await cluster.nodes[0].unregister(first, [])
    assert await cluster.nodes[1].is_online("ana")
    again = await cluster.connect(1, "ana")
    await cluster.presence_settled()
    assert cluster.journal.presence("offline", "ana") == []
    assert len(cluster.journal.presence("online", "ana")) == 1
    for node in cluster.nodes:
        assert await node.is_online("ana")
        assert await node.online_users() == ["ana"]
    loop = asyncio.get_running_loop()
    left = loop.time()
    await cluster.nodes[1].unregister(again, [])
    await cluster.journal.until(lambda: bool(cluster.journal.presence("offline", "ana")), "ana to go offline")
    assert cluster.journal.presence("offline", "ana")[0].at - left >= cluster.presence_grace - 0.01
    await cluster.presence_settled()
    assert len(cluster.journal.presence("offline", "ana")) == 1


async def test_a_user_who_went_offline_comes_online_again(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(2)
    first = await cluster.connect(0, "ana")
    await cluster.nodes[0].unregister(first, [])
    await cluster.journal.until(lambda: bool(cluster.journal.presence("offline", "ana")), "ana to go offline")
    await cluster.connect(1, "ana")
    assert len(cluster.journal.presence("online", "ana")) == 2
    assert await cluster.nodes[0].is_online("ana")


async def test_without_a_grace_offline_is_immediate(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(2, presence_grace=0)
    ana = await cluster.connect(0, "ana")
    await cluster.connect(1, "ana")
    await cluster.nodes[1].unregister((await cluster.connect(1, "bea")), [])
    assert len(cluster.journal.presence("offline", "bea")) == 1
    await cluster.nodes[0].unregister(ana, [])
    assert cluster.journal.presence("offline", "ana") == []
    assert await cluster.nodes[0].online_users() == ["ana"]


async def test_anonymous_connections_have_no_presence(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(2)
    anonymous = await cluster.connect(0)
    await cluster.nodes[0].unregister(anonymous, [])
    await cluster.presence_settled()
    assert [c for c in cluster.journal.calls if not str(c.user_id).startswith("sentinel-")] == []
    assert await cluster.nodes[1].online_users() == []
