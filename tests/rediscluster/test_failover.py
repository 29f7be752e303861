"""A Redis Cluster master dies mid-traffic (SIGKILL) under two real hubbub nodes.

First (examples/echo.py:app) the killed master serves the slot of a room with history and of the
/fanout room; the slot of the nodes' leases (`{ns}`) is on another master, so the nodes keep their
heartbeat and only the shard subscription and that shard's publications break. Then
(tests/cluster/apps/cluster_app.py) the killed master serves the slot of the nodes' leases: the nodes are
cut off from the cluster's state until the promotion, then write back what changed meanwhile.

Documented in docs/guide.md ("Redis Cluster"): local delivery goes on, /readyz answers 503 until
the node resubscribed on the promoted replica, cross-node publications made meanwhile are counted
lost (never delivered late), and the room's history is whole after the failover for what the
replica had received before the kill (the test waits for replication first; what a replica has not
received when its master dies is lost, as Redis replication is asynchronous).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from hubbub.broker.redis_target import Keys
from hubbub.testing import Cluster, Node, RedisClusterServer, wait_for
from hubbub.testing.redis_cluster import ClusterNodeProcess

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30.0
"""Generous bound for a failover (cluster-node-timeout 1 s) and a resubscription on a loaded machine."""


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[RedisClusterServer]:
    """A cluster of this module's own (its master gets killed): 3 masters, 3 replicas, node timeout 1 s."""
    with RedisClusterServer(masters=3, replicas=1, node_timeout_ms=1000) as cluster:
        yield cluster


def layout(cluster: RedisClusterServer) -> tuple[str, str, ClusterNodeProcess]:
    """A namespace whose nodes' slot is on another master than /fanout's room, a history room on
    the same master as /fanout's, and that master."""
    while True:
        namespace = f"fo{uuid.uuid4().hex[:6]}"
        keys = Keys(namespace, cluster=True)
        victim = cluster.master_of(keys.room_channel("fanout"))
        if cluster.master_of(keys.members + ":nodes").port != victim.port:
            break
    room = next(
        name
        for name in (f"history-{i}" for i in range(10_000))
        if cluster.master_of(keys.room_channel(name)).port == victim.port
    )
    return namespace, room, victim


def elsewhere(cluster: RedisClusterServer, namespace: str, victim: ClusterNodeProcess) -> str:
    """A room whose slot is on another master than `victim`."""
    keys = Keys(namespace, cluster=True)
    return next(
        name
        for name in (f"elsewhere-{i}" for i in range(10_000))
        if cluster.master_of(keys.room_channel(name)).port != victim.port
    )


async def answer(ws: ClientConnection, kind: str, data: Any, request_id: int) -> dict[str, Any]:
    """Send a request envelope and return its answer envelope (other envelopes are skipped)."""
    await ws.send(orjson.dumps({"type": kind, "data": data, "id": request_id}).decode())
    async with asyncio.timeout(TIMEOUT):
        while True:
            envelope: dict[str, Any] = orjson.loads(await ws.recv())
            if envelope.get("id") == request_id:
                return envelope


async def request(ws: ClientConnection, kind: str, data: Any, request_id: int) -> dict[str, Any]:
    """Send a request envelope and return the data of its answer, which must not be an error."""
    envelope = await answer(ws, kind, data, request_id)
    assert "error" not in envelope, envelope
    reply: dict[str, Any] = envelope["data"]
    return reply


async def receive(ws: ClientConnection, wanted: str) -> None:
    """Read until the text message `wanted` arrives."""
    async with asyncio.timeout(TIMEOUT):
        while await ws.recv() != wanted:
            pass


async def messages_until(ws: ClientConnection, offset: int, room: str | None = None) -> list[int]:
    """Offsets of the room messages (of `room`, if given) read until `offset` arrives."""
    seen: list[int] = []
    async with asyncio.timeout(TIMEOUT):
        while not seen or seen[-1] < offset:
            envelope = orjson.loads(await ws.recv())
            if envelope.get("type") == "hubbub.message" and room in (None, envelope.get("room")):
                seen.append(envelope["offset"])
    return seen


async def lost_publications(node: Node) -> float:
    """The node's hubbub_broker_lost_publications metric."""

    def read() -> float:
        import urllib.request

        with urllib.request.urlopen(node.http_url("/metrics"), timeout=5) as response:
            body = response.read().decode()
        match = re.search(r"^hubbub_broker_lost_publications(?:_total)? (\S+)$", body, re.MULTILINE)
        assert match is not None, "no lost publications metric"
        return float(match.group(1))

    return await asyncio.to_thread(read)


async def test_a_killed_master_s_rooms_fail_over_and_resume(redis_cluster: RedisClusterServer) -> None:
    namespace, room, victim = layout(redis_cluster)
    url = f"{redis_cluster.url}?namespace={namespace}&node_timeout=2"
    with Cluster("examples/echo.py:app", url, nodes=2, cwd=ROOT) as nodes:
        near, far = nodes.nodes
        proto: Any = ["hubbub.v1.json"]
        publisher = await ws_connect(near.url("/rooms"), subprotocols=proto)
        member = await ws_connect(far.url("/rooms"), subprotocols=proto)
        local_a = await ws_connect(near.url("/fanout"))
        local_b = await ws_connect(near.url("/fanout"))
        remote = await ws_connect(far.url("/fanout"))
        epoch = (await request(publisher, "hubbub.join", {"room": room}, 1))["epoch"]
        await request(member, "hubbub.join", {"room": room}, 1)
        other = elsewhere(redis_cluster, namespace, victim)
        await request(member, "hubbub.join", {"room": other}, 2)
        acked = [
            (await request(publisher, "hubbub.publish", {"room": room, "data": {"n": n}}, 10 + n))["offset"]
            for n in range(5)
        ]
        assert await messages_until(member, acked[-1]) == acked  # crossed nodes through the room's shard
        await wait_for(lambda: remote_hears(local_a, remote, "before"), timeout=TIMEOUT)
        lost_before = await lost_publications(near)
        await asyncio.to_thread(redis_cluster.wait_replicated, victim)

        redis_cluster.kill_master(victim, wait=False)
        await wait_for(lambda: not near.ready() and not far.ready(), timeout=TIMEOUT)
        await local_a.send("during the outage")  # local delivery goes on
        await receive(local_b, "during the outage")
        # so does cross-node delivery in a room whose master lives
        crossed = (await request(publisher, "hubbub.publish", {"room": other, "data": {"n": 0}}, 3))["offset"]
        assert await messages_until(member, crossed, room=other) == [crossed]
        await wait_for(lambda: lost_publications_above(near, lost_before), timeout=TIMEOUT)
        # The room's stream is on the dead master: its append waits while redis-py retries, and is either
        # refused (an error reply) or made on the promoted replica once it took over.
        during = await answer(publisher, "hubbub.publish", {"room": room, "data": {"n": 5}}, 30)
        kept = [] if "error" in during else [5]
        assert kept or during["error"]["code"] == "handler_error"

        await asyncio.to_thread(redis_cluster.wait_failover, TIMEOUT)
        await wait_for(lambda: near.ready() and far.ready(), timeout=TIMEOUT)
        await local_a.send("after the failover")
        await receive(remote, "after the failover")  # cross-node delivery resumed
        after = (await request(publisher, "hubbub.publish", {"room": room, "data": {"n": 6}}, 20))["offset"]
        assert after == acked[-1] + 1 + len(kept)  # the promoted replica had the room's offset counter

        back = await ws_connect(far.url("/rooms"), subprotocols=proto)
        recovery = await request(back, "hubbub.join", {"room": room, "since": {"offset": 0, "epoch": epoch}}, 1)
        assert recovery["recovered"] is True and recovery["epoch"] == epoch
        assert [p["offset"] for p in recovery["publications"]] == list(range(1, after + 1))
        assert [p["data"]["data"]["n"] for p in recovery["publications"]] == [0, 1, 2, 3, 4, *kept, 6]
        for ws in (publisher, member, local_a, local_b, remote, back):
            await ws.close()
    await asyncio.to_thread(redis_cluster.restart, victim)  # it rejoins as the promoted replica's replica
    assert victim.port not in {node.port for node in redis_cluster.masters()}


async def test_a_killed_membership_master_costs_no_state(redis_cluster: RedisClusterServer) -> None:
    namespace = f"fm{uuid.uuid4().hex[:6]}"
    victim = redis_cluster.master_of(Keys(namespace, cluster=True).members + ":nodes")
    url = f"{redis_cluster.url}?namespace={namespace}&node_timeout=2"
    env = {"CLUSTER_JWT_SECRET": "failover-tests-secret-of-at-least-32-bytes"}
    # The nodes log at info level: what they did around the failover shows if the test fails.
    with Cluster("tests/cluster/apps/cluster_app.py:app", url, 2, env=env, cwd=ROOT, log_level="info") as nodes:
        near, far = nodes.nodes
        a, a_id = await room_client(near, "r")
        b, _ = await room_client(near, "r")
        c, c_id = await room_client(far, "r")
        await wait_for(lambda: stats_show(far, 3), timeout=TIMEOUT)
        await wait_for(lambda: remote_hears(a, c, "before"), timeout=TIMEOUT)
        await asyncio.to_thread(redis_cluster.wait_replicated, victim)

        redis_cluster.kill_master(victim, wait=False)
        await wait_for(lambda: not near.ready() and not far.ready(), timeout=TIMEOUT)
        await a.send("during the outage")  # local delivery goes on
        await receive(b, "during the outage")
        await b.close()  # changes the cluster's state cannot record now
        d, d_id = await room_client(near, "r")

        await asyncio.to_thread(redis_cluster.wait_failover, TIMEOUT)
        await wait_for(lambda: near.ready() and far.ready(), timeout=TIMEOUT)
        try:
            await wait_for(lambda: stats_show(far, 3, {a_id, c_id, d_id}), timeout=TIMEOUT)
        except TimeoutError:
            raise AssertionError(f"wanted {sorted({a_id, c_id, d_id})}, /stats: {await read_stats(far)}") from None
        await wait_for(lambda: remote_hears(d, c, "after"), timeout=TIMEOUT)
        for ws in (a, c, d):
            await ws.close()
    await asyncio.to_thread(redis_cluster.restart, victim)


async def room_client(node: Node, room: str) -> tuple[ClientConnection, str]:
    """A raw client of cluster_app's /room/{room} and its client id."""
    ws = await ws_connect(node.url(f"/room/{room}"))
    hello = orjson.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    return ws, str(hello["client_id"])


async def read_stats(node: Node) -> Any:
    """cluster_app's /stats of a node (the error instead, if it fails)."""

    def read() -> Any:
        import urllib.request

        with urllib.request.urlopen(node.http_url("/stats"), timeout=5) as response:
            return orjson.loads(response.read())

    try:
        return await asyncio.to_thread(read)
    except OSError as exc:  # 500 while the node is cut off from the cluster's state
        return exc


async def stats_show(node: Node, connections: int, clients: set[str] | None = None) -> bool:
    """Whether the node's cluster-wide /stats count `connections` (and are exactly `clients`)."""
    stats = await read_stats(node)
    if isinstance(stats, OSError):
        return False
    return bool(stats["connections"] == connections and (clients is None or set(stats["clients"]) == clients))


async def remote_hears(sender: ClientConnection, receiver: ClientConnection, text: str) -> bool:
    """Send `text` to the fanout room and tell whether the other node's client gets it within a second."""
    await sender.send(text)
    try:
        async with asyncio.timeout(1.0):
            while await receiver.recv() != text:
                pass
    except TimeoutError:
        return False
    return True


async def lost_publications_above(node: Node, before: float) -> bool:
    """Whether the node counted lost publications since `before` (the fanout messages of the outage)."""
    return await lost_publications(node) > before
