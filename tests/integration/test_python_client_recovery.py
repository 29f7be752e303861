"""`hubbub.client.Client` recovers what its rooms published while it was away, over real
sockets, on the memory engine and on a real redis-server: every missed publication reaches
the listeners once, in order, before the live ones; a gap left by the server's "drop"
backpressure policy is recovered without the app doing anything; a history that no longer
covers the gap says so (`recovered: false`); and with the SQLite store the client recovers
after the server was SIGKILLed and restarted."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from hubbub.client import Client
from hubbub.testing import TestServer
from tests.integration.client_support import FAST, WAIT, Recorder, served
from tests.integration.test_history_durability import echo_server
from tests.support.processes import free_port, wait_accepting
from tests.support.relay import Relay


@pytest.fixture(params=["memory", "redis"])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture
async def server(engine: str, request: pytest.FixtureRequest) -> AsyncIterator[TestServer]:
    redis_url = request.getfixturevalue("redis_url") if engine == "redis" else None
    async with served(redis_url) as running:
        yield running


@pytest_asyncio.fixture
async def relay(server: TestServer) -> AsyncIterator[Relay]:
    async with Relay(server.port) as running:
        yield running


def numbers(seen: Recorder) -> list[Any]:
    return [item["data"]["n"] for item in seen.of("chat")]


async def publish(client: Client, room: str, start: int, count: int) -> None:
    for n in range(start, start + count):
        await client.publish(room, "chat", {"n": n})


@pytest.mark.timeout(120)
async def test_away_client_gets_every_missed_publication_once_in_order(server: TestServer, relay: Relay) -> None:
    away = Client(relay.url("/rooms"), backoff=FAST)
    seen = Recorder(away, "chat", "recovery", "close")
    async with away, Client(server.url("/rooms")) as publisher:
        await away.join("lobby")
        await publish(publisher, "lobby", 0, 5)
        await seen.wait("chat", 5)
        relay.take_down()
        await seen.wait("close")
        await publish(publisher, "lobby", 5, 1000)
        relay.bring_up()
        [recovery] = await seen.wait("recovery")
        assert recovery["recovered"] is True and recovery["missed"] == 1000
        await publish(publisher, "lobby", 1005, 5)
        await seen.wait("chat", 1010)
        assert numbers(seen) == list(range(1010))
        assert away.position("lobby") is not None and away.position("lobby")[0] == 1010  # type: ignore[index]


async def test_history_on_join_then_live(server: TestServer) -> None:
    async with Client(server.url("/rooms")) as publisher, Client(server.url("/rooms")) as late:
        await publish(publisher, "news", 0, 30)
        seen = Recorder(late, "chat", "recovery")
        reply = await late.join("news", history=5)
        assert reply["offset"] == 30 and len(reply["publications"]) == 5
        await publish(publisher, "news", 30, 2)
        await seen.wait("chat", 7)
        assert numbers(seen) == [25, 26, 27, 28, 29, 30, 31]
        assert seen.of("recovery") == []  # history asked on a first join is not a recovery


async def test_a_trimmed_history_is_reported_not_recovered(server: TestServer, relay: Relay) -> None:
    away = Client(relay.url("/rooms"), backoff=FAST)
    seen = Recorder(away, "chat", "recovery", "close", "rejoin")
    async with away, Client(server.url("/rooms")) as publisher:
        await away.join("short:a")
        await publish(publisher, "short:a", 0, 2)
        await seen.wait("chat", 2)
        relay.take_down()
        await seen.wait("close")
        await publish(publisher, "short:a", 2, 50)  # the room keeps only the last 10
        relay.bring_up()
        [recovery] = await seen.wait("recovery")
        assert recovery["recovered"] is False and recovery["missed"] == 0 and recovery["offset"] == 52
        [rejoin] = await seen.wait("rejoin")
        assert rejoin["rooms"] == ["short:a"] and rejoin["unrecovered"] == ["short:a"]
        await publish(publisher, "short:a", 52, 1)
        await seen.wait("chat", 3)
        assert numbers(seen) == [0, 1, 52]  # nothing partial: what could not be recovered is not half-delivered


@pytest.mark.timeout(120)
async def test_a_gap_left_by_dropped_publications_is_recovered(engine: str, request: pytest.FixtureRequest) -> None:
    redis_url = request.getfixturevalue("redis_url") if engine == "redis" else None
    async with (
        served(redis_url, backpressure_policy="drop", max_backpressure=64 * 1024) as server,
        Relay(server.port) as relay,
    ):
        slow = Client(relay.url("/rooms"), backoff=FAST)
        seen = Recorder(slow, "chat", "recovery")
        async with slow, Client(server.url("/rooms")) as publisher:
            await slow.join("busy")
            relay.stall()
            padding = "x" * 16_384
            for n in range(400):
                await publisher.publish("busy", "chat", {"n": n, "pad": padding})
            dropped = await server.app.hub.dropped_count()
            assert dropped > 0  # the server did drop publications for the stalled client
            relay.resume()
            # the drops were the tail of the burst: a later publication reveals the gap (one sent
            # before the server's queue for the client drained may be dropped too: send until one arrives)
            total = 400
            async with asyncio.timeout(60):
                while len(seen.of("chat")) < total:
                    await publisher.publish("busy", "chat", {"n": total})
                    total += 1
                    with contextlib.suppress(TimeoutError):
                        await seen.wait("chat", total, timeout=0.5)
            assert numbers(seen) == list(range(total))
            assert [r["recovered"] for r in seen.of("recovery")] and all(r["recovered"] for r in seen.of("recovery"))
            assert slow.connected  # recovered on the same connection, not by reconnecting


@pytest.mark.timeout(120)
async def test_recovers_after_the_server_was_killed_and_restarted(tmp_path: Path) -> None:
    port = free_port()
    store = ["--store", f"sqlite:///{tmp_path / 'rooms.db'}"]
    log = tmp_path / "server.log"
    async with Relay(port) as relay:
        away = Client(relay.url("/rooms"), backoff=FAST)
        seen = Recorder(away, "chat", "recovery", "close")
        with echo_server(port, *store, log=log) as first:
            await wait_accepting(first, port)
            await away.connect()
            await away.join("durable")
            async with Client(f"ws://127.0.0.1:{port}/rooms") as publisher:
                await publish(publisher, "durable", 0, 3)
                await seen.wait("chat", 3)
                relay.take_down()
                await seen.wait("close")
                await publish(publisher, "durable", 3, 200)  # acknowledged, then the server dies
            first.kill()
            first.wait(10)
        with echo_server(port, *store, log=log) as second:
            await wait_accepting(second, port)
            relay.bring_up()
            [recovery] = await seen.wait("recovery", timeout=WAIT * 2)
            assert recovery["recovered"] is True and recovery["missed"] == 200
            async with Client(f"ws://127.0.0.1:{port}/rooms") as publisher:
                await publish(publisher, "durable", 203, 2)
            await seen.wait("chat", 205)
            assert numbers(seen) == list(range(205))
            await away.close()
            second.kill()
            await asyncio.to_thread(second.wait, 10)


async def test_a_retried_publish_with_an_idempotency_key_is_applied_once(server: TestServer) -> None:
    async with Client(server.url("/rooms")) as member, Client(server.url("/rooms")) as publisher:
        seen = Recorder(member, "chat")
        await member.join("once")
        first = await publisher.publish("once", "chat", {"n": 0}, idempotency_key="k-1")
        again = await publisher.publish("once", "chat", {"n": 0}, idempotency_key="k-1")
        assert (first["duplicate"], again["duplicate"], again["offset"]) == (False, True, first["offset"])
        await publisher.publish("once", "chat", {"n": 1})
        await seen.wait("chat", 2)
        assert numbers(seen) == [0, 1]
