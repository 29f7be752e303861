"""Publishing from outside the server: `hubbub.Emitter` talks only to Redis and reaches the
clients of a 2-node cluster (two apps served in this process, each on its own RedisBroker,
sharing a private redis-server).

Clients are hubbub's client and aiohttp on the raw route, `websockets` on the JSON channel.
"Nothing else arrived" is proven with a fence: a broadcast sent afterwards must be the next
message of every client that was not a target (Redis keeps one publisher's order).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis

import hubbub
from hubbub.broker.redis import RedisBroker
from hubbub.errors import BrokerUnavailable, ConfigurationError
from hubbub.protocol.envelope import Envelope
from hubbub.runtime.emitter import Emitter
from hubbub.testing import RedisServer, TestServer, free_port, serve_app, wait_for
from tests.support.raw_and_channel import Lib, Peer, listeners, make_app, open_peer

FENCE = "fence"


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[RedisServer]:
    """One private redis-server for the module; each test has its own namespace."""
    with RedisServer() as server:
        yield server


@dataclass
class Cluster2:
    """Two nodes sharing a namespace, an emitter for it, and a plain Redis client."""

    a: TestServer
    b: TestServer
    namespace: str
    emitter: Emitter
    probe: aioredis.Redis
    stack: AsyncExitStack

    async def peer(self, node: TestServer, lib: Lib, user: str, room: str | None = None) -> Peer:
        """A connected client of `node`."""
        return await open_peer(self.stack, node, lib, user, room)

    async def subscribed(self, room: str, nodes: int) -> None:
        """Wait until `nodes` nodes listen to the room's channel."""
        await wait_for(lambda: listeners(self.probe, f"{self.namespace}:ch:room:{room}", nodes))

    async def fence(self, *peers: Peer) -> None:
        """Broadcast the fence and check it is the next message of each of `peers`."""
        await self.emitter.broadcast(FENCE)
        for peer in peers:
            assert await peer.recv() == FENCE


@pytest.fixture
async def cluster(shared_redis: RedisServer) -> AsyncIterator[Cluster2]:
    """Two in-process nodes on RedisBrokers in a fresh namespace, both subscribed."""
    namespace = f"emitter-{uuid.uuid4().hex[:8]}"
    async with AsyncExitStack() as stack:
        probe = aioredis.Redis.from_url(shared_redis.url)
        stack.push_async_callback(probe.aclose)
        nodes = [
            await stack.enter_async_context(serve_app(make_app(RedisBroker(shared_redis.url, namespace=namespace))))
            for _ in range(2)
        ]
        emitter = await stack.enter_async_context(Emitter(shared_redis.url, namespace=namespace))
        await wait_for(lambda: listeners(probe, f"{namespace}:ch:all", 2))
        # Clients close before the nodes shut down (the stack unwinds in reverse).
        async with AsyncExitStack() as clients:
            yield Cluster2(nodes[0], nodes[1], namespace, emitter, probe, clients)


def test_emitter_is_exported_at_top_level() -> None:
    assert hubbub.Emitter is Emitter
    assert "Emitter" in hubbub.__all__


async def test_send_to_user_reaches_every_device_on_both_nodes(cluster: Cluster2) -> None:
    phone = await cluster.peer(cluster.a, "hubbub", "alice")
    laptop = await cluster.peer(cluster.b, "aiohttp", "alice")
    tablet = await cluster.peer(cluster.b, "websockets", "alice")
    bob = await cluster.peer(cluster.a, "hubbub", "bob")
    await cluster.emitter.send_to_user("alice", "hello alice")
    for device in (phone, laptop, tablet):
        assert await device.recv() == "hello alice"
    await cluster.fence(bob)


async def test_send_to_users_reaches_each_users_devices(cluster: Cluster2) -> None:
    alice = await cluster.peer(cluster.a, "hubbub", "alice")
    bob = await cluster.peer(cluster.b, "aiohttp", "bob")
    carol = await cluster.peer(cluster.b, "hubbub", "carol")
    await cluster.emitter.send_to_users(["alice", "bob", "alice"], b"\x00bin\xff")
    assert await alice.recv() == b"\x00bin\xff"
    assert await bob.recv() == b"\x00bin\xff"
    await cluster.fence(carol)


async def test_envelope_reaches_channel_as_envelope_and_raw_route_as_json(cluster: Cluster2) -> None:
    raw = await cluster.peer(cluster.a, "hubbub", "dana")
    chan = await cluster.peer(cluster.b, "websockets", "dana")
    await cluster.emitter.send_to_user("dana", Envelope("notification", {"text": "done", "n": [1, 2]}))
    expected = {"type": "notification", "data": {"text": "done", "n": [1, 2]}}
    assert await chan.recv_json() == expected
    assert await raw.recv_json() == expected


async def test_room_broadcast_reaches_members_on_both_nodes_but_excluded(cluster: Cluster2) -> None:
    a_member = await cluster.peer(cluster.a, "hubbub", "u1", room="lobby")
    b_member = await cluster.peer(cluster.b, "websockets", "u2", room="lobby")
    b_excluded = await cluster.peer(cluster.b, "aiohttp", "u3", room="lobby")
    a_outsider = await cluster.peer(cluster.a, "aiohttp", "u4")
    b_outsider = await cluster.peer(cluster.b, "hubbub", "u5", room="other")
    await cluster.subscribed("lobby", nodes=2)
    await cluster.emitter.room_broadcast("lobby", "to the lobby", exclude=b_excluded.client_id)
    assert await a_member.recv() == "to the lobby"
    assert await b_member.recv() == "to the lobby"
    await cluster.fence(b_excluded, a_outsider, b_outsider)


async def test_room_broadcast_of_bytes_and_envelope(cluster: Cluster2) -> None:
    raw = await cluster.peer(cluster.a, "aiohttp", "u1", room="feed")
    chan = await cluster.peer(cluster.b, "websockets", "u2", room="feed")
    await cluster.subscribed("feed", nodes=2)
    await cluster.emitter.room_broadcast("feed", b"\x01\x02")
    await cluster.emitter.room_broadcast("feed", Envelope("tick", 7))
    assert await raw.recv() == b"\x01\x02"
    assert await raw.recv_json() == {"type": "tick", "data": 7}
    assert await chan.recv() == b"\x01\x02"
    assert await chan.recv_json() == {"type": "tick", "data": 7}


async def test_send_to_client_id_reaches_only_that_client(cluster: Cluster2) -> None:
    target = await cluster.peer(cluster.b, "hubbub", "erin")
    same_user = await cluster.peer(cluster.a, "hubbub", "erin")
    other = await cluster.peer(cluster.b, "websockets", "frank")
    await cluster.emitter.send(target.client_id, "just you")
    await cluster.emitter.send(other.client_id, Envelope("direct", {"to": other.client_id}))
    assert await target.recv() == "just you"
    assert await other.recv_json() == {"type": "direct", "data": {"to": other.client_id}}
    await cluster.fence(same_user, target, other)


async def test_empty_text_stays_text(cluster: Cluster2) -> None:
    """An empty str is an empty text message on every node, not an empty binary one."""
    peer = await cluster.peer(cluster.a, "aiohttp", "gina")
    await cluster.emitter.send(peer.client_id, "")
    await cluster.emitter.send(peer.client_id, b"")
    assert await peer.recv() == ""
    assert await peer.recv() == b""


async def test_broadcast_reaches_everyone_but_excluded(cluster: Cluster2) -> None:
    peers = [
        await cluster.peer(cluster.a, "hubbub", "u1"),
        await cluster.peer(cluster.a, "websockets", "u2"),
        await cluster.peer(cluster.b, "aiohttp", "u3"),
        await cluster.peer(cluster.b, "websockets", "u4"),
    ]
    excluded = peers[2]
    await cluster.emitter.broadcast("everyone", exclude=excluded.client_id)
    for peer in peers:
        if peer is not excluded:
            assert await peer.recv() == "everyone"
    await cluster.emitter.broadcast(Envelope("all", None))
    for peer in peers:
        assert await peer.recv_json() == {"type": "all", "data": None}


@pytest.mark.parametrize("lib", ["hubbub", "websockets", "aiohttp"])
async def test_close_reaches_the_client_with_code_and_reason(cluster: Cluster2, lib: Lib) -> None:
    victim = await cluster.peer(cluster.b, lib, "henry")
    bystander = await cluster.peer(cluster.a, "hubbub", "henry")
    await cluster.emitter.close(victim.client_id, 4000, "kicked by the backend")
    assert await victim.closed() == (4000, "kicked by the backend")
    await cluster.fence(bystander)


async def test_namespace_in_the_url_is_honoured(cluster: Cluster2, shared_redis: RedisServer) -> None:
    """The URL the nodes were given (with ?namespace=) works for an emitter too."""
    peer = await cluster.peer(cluster.b, "hubbub", "ivy")
    async with Emitter(f"{shared_redis.url}?namespace={cluster.namespace}") as emitter:
        await emitter.send_to_user("ivy", "via url")
    assert await peer.recv() == "via url"


async def test_other_namespace_reaches_nobody(cluster: Cluster2, shared_redis: RedisServer) -> None:
    peer = await cluster.peer(cluster.a, "hubbub", "jack")
    async with Emitter(shared_redis.url, namespace=f"{cluster.namespace}-other") as stranger:
        await stranger.broadcast("wrong namespace")
        await stranger.send_to_user("jack", "wrong namespace")
    await cluster.fence(peer)


async def test_unreachable_redis_raises_broker_unavailable() -> None:
    port = free_port()
    emitter = Emitter(f"redis://127.0.0.1:{port}/0")
    try:
        with pytest.raises(BrokerUnavailable) as caught:
            await emitter.send_to_user("u", "x")
    finally:
        await emitter.aclose()
    message = str(caught.value)
    assert "Redis" in message
    assert str(port) in message


async def test_redis_going_away_raises_broker_unavailable() -> None:
    with RedisServer() as server:
        async with Emitter(server.url) as emitter:
            await emitter.broadcast("while up")
            server.stop()
            with pytest.raises(BrokerUnavailable, match="Redis"):
                await emitter.broadcast("while down")


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:6390/0", "127.0.0.1:6390", "", "redis://127.0.0.1:notaport/0"],
)
def test_bad_url_raises_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match="Redis URL"):
        Emitter(url)
