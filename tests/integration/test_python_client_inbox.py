"""`hubbub.client.Client` with a device id: durable messages sent while the device was away
arrive after the welcome, in order, and are acknowledged once their listeners ran, so a
later connection of the device does not get them again; without auto_ack they come back
until `ack()`. Memory engine and a real redis-server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from hubbub.broker.redis import RedisBroker
from hubbub.client import Client, ClientError
from hubbub.testing import TestServer, serve_app
from tests.inbox.inbox_app import make_app
from tests.integration.client_support import Recorder


@pytest.fixture(params=["memory", "redis"])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture
async def server(engine: str, request: pytest.FixtureRequest) -> AsyncIterator[TestServer]:
    options: dict[str, Any] = {}
    if engine == "redis":
        options["broker"] = RedisBroker(request.getfixturevalue("redis_url"), namespace=uuid.uuid4().hex[:8])
    async with serve_app(make_app(**options)) as running:
        yield running


async def send(server: TestServer, user: str, n: int) -> None:
    result = await server.request("POST", f"/send/{user}", json={"n": n})
    assert result.status == 200


async def visit(server: TestServer, user: str, device: str, count: int, **options: Any) -> tuple[Client, Recorder]:
    """Connect `device` of `user`, wait for its inbox notice and `count` notifications."""
    client = Client(server.url(f"/inbox?user={user}"), device=device, **options)
    seen = Recorder(client, "notification", "hubbub.inbox")
    await client.connect()
    assert client.device == device
    await seen.wait("hubbub.inbox")
    await seen.wait("notification", count)
    return client, seen


async def test_durable_messages_reach_each_device_once(server: TestServer) -> None:
    phone, _ = await visit(server, "bob", "phone", 0)
    await phone.close()  # bob's devices are away
    for n in range(3):
        await send(server, "bob", n)
    phone, seen = await visit(server, "bob", "phone", 3)
    assert seen.of("hubbub.inbox")[0]["pending"] == 3
    assert [item["n"] for item in seen.of("notification")] == [0, 1, 2]
    await phone.close()  # the listeners ran: auto_ack acknowledged up to 3
    laptop, seen = await visit(server, "bob", "laptop", 3)  # another device gets them too
    assert [item["n"] for item in seen.of("notification")] == [0, 1, 2]
    await laptop.close()
    phone, seen = await visit(server, "bob", "phone", 0)
    assert seen.of("hubbub.inbox")[0]["pending"] == 0  # acknowledged: not sent again to this device
    await send(server, "bob", 3)  # live, while connected
    assert [item["n"] for item in await seen.wait("notification")] == [3]
    await phone.close()


async def test_without_auto_ack_messages_come_back_until_acknowledged(server: TestServer) -> None:
    tablet, _ = await visit(server, "eve", "tablet", 0, auto_ack=False)
    await tablet.close()
    for n in range(2):
        await send(server, "eve", n)
    for _ in range(2):
        tablet, seen = await visit(server, "eve", "tablet", 2, auto_ack=False)
        assert seen.of("hubbub.inbox")[0]["pending"] == 2
        await tablet.close()
    tablet, seen = await visit(server, "eve", "tablet", 2, auto_ack=False)
    with pytest.raises(ClientError) as beyond:
        await tablet.ack(9)
    assert beyond.value.code == "bad_request" and beyond.value.extra["sent"] == 2
    assert await tablet.ack(2) == {"inbox": 2}
    await tablet.close()
    tablet, seen = await visit(server, "eve", "tablet", 0, auto_ack=False)
    assert seen.of("hubbub.inbox")[0]["pending"] == 0
    await tablet.close()


async def test_no_device_no_inbox(server: TestServer) -> None:
    async with Client(server.url("/inbox?user=zed")) as client:
        assert client.device is None
        with pytest.raises(ClientError) as refused:
            await client.ack(1)
        assert refused.value.code == "bad_request"
