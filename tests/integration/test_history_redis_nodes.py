"""Room history on the Redis engine across two nodes: every member sees a room's publications in offset
order, and a client recovering on one node while another node publishes gets no gap and no duplicate."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack

import pytest

from hubbub import App
from hubbub.broker.redis import RedisBroker
from hubbub.testing import RedisServer, TestServer, serve_app
from tests.integration.test_history_recovery import live_until, publish, rooms_client


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
async def nodes(redis_server: RedisServer) -> AsyncIterator[tuple[TestServer, TestServer]]:
    """Two nodes of one app on one Redis (a namespace of their own)."""
    namespace = f"h{uuid.uuid4().hex[:8]}"
    async with AsyncExitStack() as stack:
        servers = []
        for _ in range(2):
            app = App(broker=RedisBroker(redis_server.url, namespace=namespace))
            app.history("*", size=10_000, ttl=600)
            app.channel("/rooms").authorize(lambda event, action, room: True)
            servers.append(await stack.enter_async_context(serve_app(app)))
        yield servers[0], servers[1]


async def test_members_on_both_nodes_see_offsets_in_order_from_concurrent_publishers(
    nodes: tuple[TestServer, TestServer],
) -> None:
    a, b = nodes
    async with rooms_client(a) as on_a, rooms_client(b) as on_b, rooms_client(a) as pa, rooms_client(b) as pb:
        await on_a.call("hubbub.join", {"room": "o"})
        await on_b.call("hubbub.join", {"room": "o"})

        async def burst(client: object, start: int) -> None:
            for n in range(start, start + 100):
                await publish(client, "o", n)  # type: ignore[arg-type]

        await asyncio.gather(burst(pa, 1), burst(pb, 1001))
        for member in (on_a, on_b):
            offsets = [p["offset"] for p in await live_until(member, 200)]
            assert offsets == list(range(1, 201))


async def test_recovery_on_one_node_while_the_other_publishes_has_no_gap_and_no_duplicate(
    nodes: tuple[TestServer, TestServer],
) -> None:
    a, b = nodes
    async with rooms_client(b) as away:
        joined = await away.call("hubbub.join", {"room": "lobby"})
    async with rooms_client(a) as publisher, rooms_client(b) as watcher:
        await watcher.call("hubbub.join", {"room": "lobby"})  # node b stays subscribed to the room
        for n in range(1, 501):
            await publish(publisher, "lobby", n)

        async def keep_publishing() -> None:
            for n in range(501, 701):
                await publish(publisher, "lobby", n)

        racing = asyncio.create_task(keep_publishing())
        async with rooms_client(b) as back:
            reply = await back.call("hubbub.join", {"room": "lobby", "since": {"offset": 0, "epoch": joined["epoch"]}})
            await racing
            assert reply["recovered"] is True
            live = await live_until(back, 700) if reply["offset"] < 700 else []
            await publish(publisher, "lobby", 701)
            live += await live_until(back, 701)
    everything = reply["publications"] + live
    assert [p["offset"] for p in everything] == list(range(1, 702))
    assert [p["data"]["data"]["n"] for p in everything] == list(range(1, 702))
