"""The offline inbox over real sockets, on each engine: durable sends reach every device once, in
order; acks move a device's cursor; bad acks and device ids get clear answers.

"Nothing else arrived" is proven with a fence: a durable message sent afterwards must be the next
durable message a device receives (a device gets its messages in offset order).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from hubbub import App
from hubbub.broker.redis import RedisBroker
from hubbub.client import connect
from hubbub.errors import ConfigurationError, HandshakeError
from hubbub.inbox import Inbox, InboxLimits, MemoryInboxStore
from hubbub.protocol.envelope import Envelope
from hubbub.testing import TestServer, serve_app
from tests.inbox.conftest import ENGINES, Clock
from tests.inbox.devices import device, durable, notice, offsets
from tests.inbox.inbox_app import make_app


@pytest.fixture(params=ENGINES)
async def server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TestServer]:
    """The inbox app on the engine under test."""
    engine: str = request.param
    if engine == "memory":
        app = make_app()
    elif engine == "sqlite":
        app = make_app(f"sqlite:///{tmp_path / 'inbox.db'}")
    else:
        url = request.getfixturevalue("inbox_redis").url
        app = make_app(broker=RedisBroker(f"{url}?namespace=e2e-{uuid.uuid4().hex[:12]}"))
    async with serve_app(app) as served:
        yield served


def base(server: TestServer) -> str:
    return server.url("").rstrip("/")


async def send(server: TestServer, user: str, data: Any) -> int:
    """A durable notification through the app's HTTP route; the user's connection count."""
    delivered: int = await server.app.hub.send_to_user(user, Envelope("notification", data), durable=True)
    return delivered


async def test_an_offline_users_messages_reach_every_device_once_in_order(server: TestServer) -> None:
    for n in range(5):
        assert await send(server, "alice", {"n": n}) == 0
    await send(server, "bob", "for bob")
    async with device(base(server), "alice", "phone") as phone, device(base(server), "alice", "laptop") as laptop:
        for client in (phone, laptop):
            assert client.welcome["device"] in ("phone", "laptop")
            assert await notice(client) == {"device": client.welcome["device"], "pending": 5, "missed": 0}
            got = await durable(client, 5)
            assert got == [{"type": "notification", "inbox": n + 1, "data": {"n": n}} for n in range(5)]
            assert await client.call("hubbub.ack", {"inbox": 5}) == {"inbox": 5}
    async with device(base(server), "alice", "phone") as phone, device(base(server), "alice", "laptop") as laptop:
        for client in (phone, laptop):
            assert (await notice(client))["pending"] == 0
        await send(server, "alice", "fence")
        for client in (phone, laptop):
            assert await durable(client, 1) == [{"type": "notification", "inbox": 6, "data": "fence"}]


async def test_online_devices_get_it_live_and_offline_ones_on_connect(server: TestServer) -> None:
    async with device(base(server), "alice", "phone") as phone:
        await notice(phone)
        assert await send(server, "alice", "while the laptop sleeps") == 1
        assert offsets(await durable(phone, 1)) == [1]
        await phone.call("hubbub.ack", {"inbox": 1})
    async with device(base(server), "alice", "laptop") as laptop:
        assert await notice(laptop) == {"device": "laptop", "pending": 1, "missed": 0}
        assert (await durable(laptop, 1))[0]["data"] == "while the laptop sleeps"
    async with device(base(server), "alice", "phone") as phone:
        assert (await notice(phone))["pending"] == 0


async def test_an_unacknowledged_message_is_sent_again_and_an_acknowledged_one_is_not(server: TestServer) -> None:
    for n in range(3):
        await send(server, "alice", n)
    async with device(base(server), "alice", "phone") as phone:
        assert offsets(await durable(phone, 3)) == [1, 2, 3]
        assert await phone.call("hubbub.ack", {"inbox": 2}) == {"inbox": 2}
    async with device(base(server), "alice", "phone") as phone:
        assert (await notice(phone))["pending"] == 1
        assert await durable(phone, 1) == [{"type": "notification", "inbox": 3, "data": 2}]
        await phone.emit("hubbub.ack", {"inbox": 3})  # as an event: no reply on success
        await send(server, "alice", "fence")
        assert offsets(await durable(phone, 1)) == [4]
        assert phone.taken(lambda envelope: envelope.get("type") == "hubbub.error") == []
    async with device(base(server), "alice", "phone") as phone:
        assert (await notice(phone))["pending"] == 1  # only the fence, never acknowledged
        assert offsets(await durable(phone, 1)) == [4]


async def test_messages_sent_while_devices_connect_arrive_once_each_in_order(server: TestServer) -> None:
    total = 200

    async def sender() -> None:
        for n in range(total):
            await send(server, "alice", n)
            if n % 20 == 0:
                await asyncio.sleep(0)

    task = asyncio.create_task(sender())
    async with device(base(server), "alice", "phone") as phone, device(base(server), "alice", "laptop") as laptop:
        await task
        for client in (phone, laptop):
            got = await durable(client, total)
            assert offsets(got) == list(range(1, total + 1))
            assert [envelope["data"] for envelope in got] == list(range(total))
        await send(server, "alice", "fence")
        for client in (phone, laptop):
            assert offsets(await durable(client, 1)) == [total + 1]


async def test_a_connection_without_a_device_gets_live_messages_only(server: TestServer) -> None:
    await send(server, "alice", "stored")
    async with device(base(server), "alice", None) as anywhere:
        assert "device" not in anywhere.welcome
        assert await send(server, "alice", "live") == 1
        assert await durable(anywhere, 1) == [{"type": "notification", "inbox": 2, "data": "live"}]
        assert anywhere.taken(lambda envelope: envelope.get("type") == "hubbub.inbox") == []
        error = await anywhere.error("hubbub.ack", {"inbox": 2})
        assert error == {"code": "bad_request", "message": "this connection has no inbox: connect with ?device=<id>"}


async def test_forged_and_malformed_acks_get_clear_errors(server: TestServer) -> None:
    for n in range(2):
        await send(server, "alice", n)
    for n in range(5):
        await send(server, "bob", n)
    async with device(base(server), "alice", "phone") as phone:
        assert offsets(await durable(phone, 2)) == [1, 2]
        beyond = await phone.error("hubbub.ack", {"inbox": 5})  # bob's last offset, past alice's end
        assert beyond == {
            "code": "bad_request",
            "message": "ack of inbox offset 5 beyond what this connection was sent",
            "sent": 2,
        }
        for data in ({"inbox": 0}, {"inbox": -1}, {"inbox": "2"}, {"inbox": True}, {"inbox": 1.0}, {}, [2], None):
            error = await phone.error("hubbub.ack", data)
            assert error == {"code": "bad_request", "message": "'inbox' must be a positive integer"}, data
        await phone.emit("hubbub.ack", {"inbox": 99})
        event = await phone.next(lambda envelope: envelope.get("type") == "hubbub.error")
        assert event["error"]["code"] == "bad_request" and event["error"]["type"] == "hubbub.ack"
        assert await phone.call("hubbub.ack", {"inbox": 1}) == {"inbox": 1}  # the connection still works
    async with device(base(server), "alice", "phone") as phone:
        assert (await notice(phone))["pending"] == 1  # the refused acks moved nothing
    async with device(base(server), "bob", "phone") as bob:
        assert (await notice(bob))["pending"] == 5  # alice's acks never touch bob's inbox


@pytest.mark.parametrize("name", ["", "has space", "x" * 65, "ünï", "a/b"])
async def test_an_invalid_device_id_is_refused_at_the_handshake(server: TestServer, name: str) -> None:
    with pytest.raises(HandshakeError) as refused:
        await connect(server.url(f"/inbox?user=alice&device={quote(name, safe='')}"))
    assert refused.value.status == 400
    assert b"invalid device id: 1-64 characters of A-Z a-z 0-9 _ . : -" in refused.value.body


async def test_the_longest_device_id_is_accepted(server: TestServer) -> None:
    name = "d." + "x" * 60 + ":-"
    await send(server, "alice", "hi")
    async with device(base(server), "alice", name) as client:
        assert client.welcome["device"] == name
        assert (await notice(client))["pending"] == 1


async def test_a_durable_message_must_be_an_envelope(server: TestServer) -> None:
    for data in ("text", b"bytes", Envelope(None, {"no": "type"})):
        with pytest.raises(TypeError, match="a durable message must be an Envelope with a type"):
            await server.app.hub.send_to_user("alice", data, durable=True)


async def test_send_to_users_durable_keeps_one_message_per_user(server: TestServer) -> None:
    assert await server.app.hub.send_to_users(["alice", "bob", "alice"], Envelope("news", 1), durable=True) == 0
    for user in ("alice", "bob"):
        async with device(base(server), user, "phone") as client:
            assert await durable(client, 1) == [{"type": "news", "inbox": 1, "data": 1}]


# ---- bounds and TTL (memory engine on a clock the test moves) ---------------------------


def bounded(size: int = 1000, ttl: float = 3600.0) -> tuple[Callable[[], Any], Clock]:
    clock = Clock()
    return (lambda: make_app(MemoryInboxStore(InboxLimits(size=size, ttl=ttl), clock=clock))), clock


async def test_past_the_size_bound_the_oldest_are_dropped_and_reported() -> None:
    factory, _ = bounded(size=3)
    async with serve_app(factory()) as server:
        async with device(base(server), "alice", "phone") as phone:
            assert (await notice(phone))["pending"] == 0
        for n in range(4):
            await send(server, "alice", n)
        async with device(base(server), "alice", "phone") as phone:
            assert await notice(phone) == {"device": "phone", "pending": 3, "missed": 1}
            assert [e["data"] for e in await durable(phone, 3)] == [1, 2, 3]


async def test_at_the_size_bound_nothing_is_dropped() -> None:
    factory, _ = bounded(size=3)
    async with serve_app(factory()) as server:
        async with device(base(server), "alice", "phone") as phone:
            await notice(phone)
        for n in range(3):
            await send(server, "alice", n)
        async with device(base(server), "alice", "phone") as phone:
            assert await notice(phone) == {"device": "phone", "pending": 3, "missed": 0}
            assert offsets(await durable(phone, 3)) == [1, 2, 3]


async def test_messages_older_than_the_ttl_are_not_delivered() -> None:
    factory, clock = bounded(ttl=60)
    async with serve_app(factory()) as server:
        await send(server, "alice", "stale")
        clock.advance(30)
        async with device(base(server), "alice", "phone") as phone:
            assert offsets(await durable(phone, 1)) == [1]  # received, never acknowledged
        await send(server, "alice", "fresh")
        clock.advance(29)
        async with device(base(server), "alice", "phone") as phone:
            assert await notice(phone) == {"device": "phone", "pending": 2, "missed": 0}  # 59 s old: kept
        clock.advance(2)
        async with device(base(server), "alice", "phone") as phone:
            assert await notice(phone) == {"device": "phone", "pending": 1, "missed": 1}  # 61 s old: gone
            assert await durable(phone, 1) == [{"type": "notification", "inbox": 2, "data": "fresh"}]


class FailingReads(MemoryInboxStore):
    """A memory engine whose backlog reads fail, as a store that lost its disk or its Redis would."""

    async def backlog(self, user_id: str, device: str) -> Any:
        raise OSError("disk I/O error")


async def test_a_store_that_cannot_be_read_gets_a_clear_error_and_live_messages_still_flow() -> None:
    unavailable = {"code": "inbox_unavailable", "message": "the inbox could not be read; reconnect later"}
    async with serve_app(make_app(FailingReads())) as server, device(base(server), "alice", "phone") as phone:
        error = await phone.next(lambda envelope: envelope.get("type") == "hubbub.error")
        assert error["error"] == unavailable
        assert await send(server, "alice", "live") == 1
        assert offsets(await durable(phone, 1)) == [1]
        refused = await phone.error("hubbub.ack", {"inbox": 1})
        assert refused["message"] == "ack of inbox offset 1 beyond what this connection was sent"


def test_limits_go_to_the_engine_when_an_engine_is_given() -> None:
    with pytest.raises(ConfigurationError, match="give the limits to the engine itself"):
        Inbox(MemoryInboxStore(), limits=InboxLimits(size=5))
    assert Inbox("sqlite:///x.db", limits=InboxLimits(size=5)) is not None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///", "a SQLite store URL is sqlite:///relative.db or sqlite:////absolute.db"),
        ("sqlite://x.db", "a SQLite store URL is sqlite:///relative.db or sqlite:////absolute.db"),
        ("postgres://db/app", "unknown store URL"),
    ],
)
async def test_a_bad_store_url_is_a_configuration_error(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        await Inbox(url).start(App().hub)


async def test_a_handler_sends_durably_to_a_user_who_is_away(server: TestServer) -> None:
    async with device(base(server), "alice", "phone") as alice:
        assert await alice.call("dm", {"to": "bob", "text": "lunch?"}) == {"online": 0}
    async with device(base(server), "bob", "phone") as bob:
        assert await durable(bob, 1) == [{"type": "dm", "inbox": 1, "data": {"from": "alice", "text": "lunch?"}}]
