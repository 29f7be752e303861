"""`app.publish_api(key)`: backends publish over HTTP to rooms, users, client ids or everyone.

Checked on the memory engine (one node) and across two nodes sharing a private redis-server
(two apps served in this process, each on its own RedisBroker): the API key in both header
styles, every malformed body answered 400, and text, binary and envelope payloads reaching
exactly the right clients (hubbub's client and aiohttp on the raw route, `websockets` on the
JSON channel). "Nothing else arrived" is proven with a fence published afterwards.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from hubbub import App, ConfigurationError
from hubbub.broker.base import Broker
from hubbub.broker.redis import RedisBroker
from hubbub.testing import RedisServer, TestServer, serve_app, wait_for
from tests.support.raw_and_channel import Lib, Peer, listeners, open_peer
from tests.support.raw_and_channel import make_app as make_raw_and_channel_app

KEY = "k3y"
AUTH = {"authorization": f"Bearer {KEY}"}
FENCE = "fence"


def make_app(broker: Broker | None = None) -> App:
    """The /raw + /chan app (tests.support.raw_and_channel) plus the publish API with key KEY."""
    app = make_raw_and_channel_app(broker)
    app.publish_api(KEY)
    return app


class Clients:
    """Opens clients on any node and closes them all at the end."""

    def __init__(self, stack: AsyncExitStack) -> None:
        self.stack = stack

    async def open(self, server: TestServer, lib: Lib, user: str, room: str | None = None) -> Peer:
        """Connect with `lib` and wait until the server has set the connection up."""
        return await open_peer(self.stack, server, lib, user, room)


async def publish(server: TestServer, body: Any, headers: dict[str, str] | None = None) -> Any:
    """POST a JSON body with the right key; it must succeed; return the answer."""
    result = await server.request("POST", "/api/publish", json=body, headers=AUTH if headers is None else headers)
    assert result.status == 200, result.text
    answer = result.json()
    assert answer["ok"] is True
    return answer


async def fence(server: TestServer, *peers: Peer) -> None:
    """Publish the fence to everyone; it must be the next message of each of `peers`."""
    await publish(server, {"all": True, "text": FENCE})
    for peer in peers:
        assert await peer.recv() == FENCE


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    """The app on the memory engine."""
    async with serve_app(make_app()) as running:
        yield running


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    """Clients closed at the end of the test (before the servers stop)."""
    async with AsyncExitStack() as stack:
        yield Clients(stack)


# ---- authorisation and validation (memory engine) ------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer nope"},
        {"x-api-key": "nope"},
        {"authorization": f"Basic {KEY}"},
        {"authorization": "Bearer"},
        {"x-api-key": KEY.upper()},
    ],
    ids=["none", "wrong-bearer", "wrong-x-api-key", "basic-scheme", "empty-bearer", "case-changed"],
)
async def test_missing_or_wrong_key_is_401(server: TestServer, clients: Clients, headers: dict[str, str]) -> None:
    peer = await clients.open(server, "hubbub", "alice")
    result = await server.request("POST", "/api/publish", json={"all": True, "text": "sneaky"}, headers=headers)
    assert result.status == 401
    assert result.json() == {"error": "missing or wrong API key"}
    assert result.headers["www-authenticate"] == "Bearer"
    await fence(server, peer)


@pytest.mark.parametrize(
    "headers",
    [{"authorization": f"Bearer {KEY}"}, {"Authorization": f"bearer {KEY}"}, {"x-api-key": KEY}],
    ids=["bearer", "bearer-lowercase", "x-api-key"],
)
async def test_right_key_in_either_header_is_accepted(
    server: TestServer, clients: Clients, headers: dict[str, str]
) -> None:
    peer = await clients.open(server, "hubbub", "alice")
    assert await publish(server, {"client": peer.client_id, "text": "hi"}, headers) == {"ok": True, "delivered": 1}
    assert await peer.recv() == "hi"


async def test_right_key_over_aiohttp(server: TestServer, clients: Clients) -> None:
    peer = await clients.open(server, "aiohttp", "alice")
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            server.http_url("/api/publish"), json={"user": "alice", "text": "over aiohttp"}, headers={"x-api-key": KEY}
        ) as response,
    ):
        assert response.status == 200
        assert await response.json() == {"ok": True, "delivered": 1}
    assert await peer.recv() == "over aiohttp"


BAD_BODIES: list[tuple[str, bytes, str]] = [
    ("not-json", b"room=lobby&text=hi", "not JSON"),
    ("empty", b"", "not JSON"),
    ("array", b'[{"room": "lobby", "text": "hi"}]', "JSON object"),
    ("string", b'"hello"', "JSON object"),
    ("no-target", b'{"text": "hi"}', "exactly one of room"),
    ("two-targets", b'{"room": "lobby", "user": "alice", "text": "hi"}', "exactly one of room"),
    ("no-payload", b'{"room": "lobby"}', "exactly one of text"),
    ("two-payloads", b'{"room": "lobby", "text": "hi", "binary": "aGk="}', "exactly one of text"),
    ("bad-base64", b'{"room": "lobby", "binary": "not base64!"}', "'binary' must be base64"),
    ("binary-not-string", b'{"room": "lobby", "binary": 12}', "'binary' must be base64"),
    ("text-not-string", b'{"room": "lobby", "text": 5}', "'text' must be a string"),
    ("envelope-no-type", b'{"room": "lobby", "envelope": {"data": 1}}', "'envelope' must be an object"),
    ("envelope-not-object", b'{"room": "lobby", "envelope": "chat"}', "'envelope' must be an object"),
    ("envelope-type-number", b'{"room": "lobby", "envelope": {"type": 3}}', "'envelope' must be an object"),
    ("users-not-list", b'{"users": "alice", "text": "hi"}', "'users' must be a list"),
    ("users-not-strings", b'{"users": ["alice", 7], "text": "hi"}', "'users' must be a list"),
    ("all-not-true", b'{"all": false, "text": "hi"}', "'all' must be true"),
    ("room-empty", b'{"room": "", "text": "hi"}', "'room' must be a non-empty string"),
    ("client-number", b'{"client": 12, "text": "hi"}', "'client' must be a non-empty string"),
    ("exclude-number", b'{"all": true, "text": "hi", "exclude": 3}', "'exclude' must be a client id"),
    ("exclude-with-user", b'{"user": "alice", "text": "hi", "exclude": "x"}', "'exclude' works with"),
]


@pytest.mark.parametrize(("body", "message"), [case[1:] for case in BAD_BODIES], ids=[case[0] for case in BAD_BODIES])
async def test_malformed_body_is_400(server: TestServer, clients: Clients, body: bytes, message: str) -> None:
    member = await clients.open(server, "hubbub", "alice", room="lobby")
    headers = {**AUTH, "content-type": "application/json"}
    result = await server.request("POST", "/api/publish", body=body, headers=headers)
    assert result.status == 400, result.text
    assert message in result.json()["error"]
    await fence(server, member)


async def test_only_post_is_allowed(server: TestServer) -> None:
    result = await server.request("GET", "/api/publish", headers=AUTH)
    assert result.status == 405
    assert result.headers["allow"] == "POST"


async def test_custom_path_and_empty_key() -> None:
    app = make_app()
    app.publish_api("other-key", path="/internal/push")
    async with serve_app(app) as running, await running.connect("/raw?user=zed") as ws:
        client_id = await ws.recv()
        result = await running.request(
            "POST", "/internal/push", json={"client": client_id, "text": "pushed"}, headers={"x-api-key": "other-key"}
        )
        assert (result.status, result.json()) == (200, {"ok": True, "delivered": 1})
        assert await ws.recv() == "pushed"
    with pytest.raises(ConfigurationError, match="api_key"):
        App().publish_api("")


# ---- every target kind (memory engine) -------------------------------------------------


async def test_room_with_text_and_exclude(server: TestServer, clients: Clients) -> None:
    members = [
        await clients.open(server, "hubbub", "u1", room="lobby"),
        await clients.open(server, "aiohttp", "u2", room="lobby"),
        await clients.open(server, "websockets", "u3", room="lobby"),
    ]
    outsider = await clients.open(server, "hubbub", "u4", room="kitchen")
    assert (await publish(server, {"room": "lobby", "text": "hello lobby"}))["delivered"] == 3
    for member in members:
        assert await member.recv() == "hello lobby"
    answer = await publish(server, {"room": "lobby", "text": "not u1", "exclude": members[0].client_id})
    assert answer["delivered"] == 2
    for member in members[1:]:
        assert await member.recv() == "not u1"
    assert (await publish(server, {"room": "empty-room", "text": "nobody"}))["delivered"] == 0
    await fence(server, outsider, *members)


async def test_user_with_binary(server: TestServer, clients: Clients) -> None:
    devices = [
        await clients.open(server, "hubbub", "alice"),
        await clients.open(server, "aiohttp", "alice"),
        await clients.open(server, "websockets", "alice"),
    ]
    bob = await clients.open(server, "hubbub", "bob")
    payload = bytes(range(256))
    answer = await publish(server, {"user": "alice", "binary": base64.b64encode(payload).decode()})
    assert answer["delivered"] == 3
    for device in devices:
        assert await device.recv() == payload
    assert (await publish(server, {"user": "nobody", "binary": ""}))["delivered"] == 0
    await fence(server, bob)


async def test_users_with_envelope(server: TestServer, clients: Clients) -> None:
    alice_chan = await clients.open(server, "websockets", "alice")
    alice_raw = await clients.open(server, "hubbub", "alice")
    bob = await clients.open(server, "aiohttp", "bob")
    carol = await clients.open(server, "hubbub", "carol")
    envelope = {"type": "notification", "data": {"text": "build done", "ok": True}}
    answer = await publish(server, {"users": ["alice", "bob", "alice", "ghost"], "envelope": envelope})
    assert answer["delivered"] == 3
    assert await alice_chan.recv_json() == envelope
    assert await alice_raw.recv_json() == envelope
    assert await bob.recv_json() == envelope
    await fence(server, carol)


async def test_client_with_text(server: TestServer, clients: Clients) -> None:
    target = await clients.open(server, "aiohttp", "alice")
    same_user = await clients.open(server, "hubbub", "alice")
    assert await publish(server, {"client": target.client_id, "text": "only you"}) == {"ok": True, "delivered": 1}
    assert await target.recv() == "only you"
    assert await publish(server, {"client": str(uuid.uuid4()), "text": "lost"}) == {"ok": True, "delivered": 0}
    await fence(server, same_user, target)


async def test_all_with_envelope_and_exclude(server: TestServer, clients: Clients) -> None:
    peers = [
        await clients.open(server, "hubbub", "u1"),
        await clients.open(server, "websockets", "u2"),
        await clients.open(server, "aiohttp", "u3"),
    ]
    excluded = peers[0]
    envelope = {"type": "maintenance", "data": None}
    answer = await publish(server, {"all": True, "envelope": envelope, "exclude": excluded.client_id})
    assert answer["delivered"] == 2
    for peer in peers[1:]:
        assert await peer.recv_json() == envelope
    assert (await publish(server, {"all": True, "text": "everyone"}))["delivered"] == 3
    for peer in peers:
        assert await peer.recv() == "everyone"


# ---- across two Redis nodes ------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[RedisServer]:
    """One private redis-server for the module; each test has its own namespace."""
    with RedisServer() as running:
        yield running


@pytest.fixture
async def nodes(shared_redis: RedisServer) -> AsyncIterator[tuple[TestServer, TestServer, aioredis.Redis, str]]:
    """Two in-process nodes on RedisBrokers in a fresh namespace, both subscribed; a plain
    Redis client; the namespace."""
    namespace = f"publish-api-{uuid.uuid4().hex[:8]}"
    async with AsyncExitStack() as stack:
        probe = aioredis.Redis.from_url(shared_redis.url)
        stack.push_async_callback(probe.aclose)
        a, b = [
            await stack.enter_async_context(serve_app(make_app(RedisBroker(shared_redis.url, namespace=namespace))))
            for _ in range(2)
        ]
        await wait_for(lambda: listeners(probe, f"{namespace}:ch:all", 2))
        yield a, b, probe, namespace


async def test_room_across_nodes(nodes: tuple[TestServer, TestServer, aioredis.Redis, str], clients: Clients) -> None:
    a, b, probe, namespace = nodes
    on_a = await clients.open(a, "hubbub", "u1", room="lobby")
    on_b_raw = await clients.open(b, "aiohttp", "u2", room="lobby")
    on_b_chan = await clients.open(b, "websockets", "u3", room="lobby")
    outsider = await clients.open(b, "hubbub", "u4")
    await wait_for(lambda: listeners(probe, f"{namespace}:ch:room:lobby", 2))
    answer = await publish(a, {"room": "lobby", "envelope": {"type": "chat", "data": {"text": "hi"}}})
    assert answer["delivered"] == 1  # this node's deliveries
    for member in (on_a, on_b_raw, on_b_chan):
        assert await member.recv_json() == {"type": "chat", "data": {"text": "hi"}}
    answer = await publish(b, {"room": "lobby", "text": "from b", "exclude": on_a.client_id})
    assert answer["delivered"] == 2
    for member in (on_b_raw, on_b_chan):
        assert await member.recv() == "from b"
    await fence(a, outsider, on_a, on_b_raw, on_b_chan)


async def test_user_and_users_across_nodes(
    nodes: tuple[TestServer, TestServer, aioredis.Redis, str], clients: Clients
) -> None:
    a, b, _, _ = nodes
    alice_b = await clients.open(b, "websockets", "alice")
    alice_b_raw = await clients.open(b, "hubbub", "alice")
    bob_b = await clients.open(b, "aiohttp", "bob")
    payload = b"\x00\x01binary\xff"
    await publish(a, {"user": "alice", "binary": base64.b64encode(payload).decode()})
    assert await alice_b.recv() == payload
    assert await alice_b_raw.recv() == payload
    answer = await publish(a, {"users": ["alice", "bob"], "text": "both"})
    assert answer["delivered"] == 0  # nobody on node a
    for peer in (alice_b, alice_b_raw, bob_b):
        assert await peer.recv() == "both"
    await fence(a, bob_b)


async def test_client_and_all_across_nodes(
    nodes: tuple[TestServer, TestServer, aioredis.Redis, str], clients: Clients
) -> None:
    a, b, _, _ = nodes
    on_a = await clients.open(a, "aiohttp", "u1")
    target = await clients.open(b, "hubbub", "u2")
    other = await clients.open(b, "websockets", "u3")
    assert (await publish(a, {"client": target.client_id, "text": "direct"}))["delivered"] == 1
    assert await target.recv() == "direct"
    answer = await publish(a, {"all": True, "envelope": {"type": "all", "data": [1]}, "exclude": other.client_id})
    assert answer["delivered"] == 1
    for peer in (on_a, target):
        assert await peer.recv_json() == {"type": "all", "data": [1]}
    await fence(b, on_a, target, other)
