"""hubbub.js recovers in real headless Chromium: the server SIGKILLed and restarted mid-session
(SQLite store), after which the page has every publication it missed, once, in order; a gap
left by the server's "drop" backpressure policy, recovered on the same connection; and a
history that no longer covers the gap, surfaced as a `recovery` event with `recovered: false`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser

import hubbub
from hubbub import HTMLResponse
from hubbub.client import Client
from hubbub.testing import TestServer, serve_app
from hubbub.web.request import Request
from tests.browser.test_client_js import PAGE, Tab
from tests.integration.client_support import build
from tests.integration.test_history_durability import echo_server
from tests.support.processes import free_port, wait_accepting
from tests.support.relay import Relay

pytestmark = pytest.mark.asyncio(loop_scope="module")

FAST = {"backoff": {"initialMs": 20, "maxMs": 200}}


@pytest_asyncio.fixture(loop_scope="module")
async def server() -> AsyncIterator[TestServer]:
    """The page, hubbub.js and the test app (its "drop" policy lets a stalled client lose publications)."""
    app = build(backpressure_policy="drop", max_backpressure=64 * 1024)
    app.static("/hubbub", hubbub.STATIC_DIR)

    @app.get("/")
    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE)

    async with serve_app(app) as running:
        yield running


async def publish(client: Client, room: str, start: int, count: int, **extra: object) -> None:
    for n in range(start, start + count):
        await client.publish(room, "chat", {"n": n, **extra})


async def numbers(tab: Tab, count: int) -> list[int]:
    return [event["data"]["n"] for event in await tab.wait_events("a", "chat", count)]


@pytest.mark.timeout(120)
async def test_page_recovers_after_the_server_was_killed_and_restarted(
    browser: Browser, server: TestServer, tmp_path: Path
) -> None:
    port = free_port()
    store = ["--store", f"sqlite:///{tmp_path / 'rooms.db'}"]
    log = tmp_path / "server.log"
    tab = await Tab.open(browser, server.http_url("/"))
    async with Relay(port) as relay:
        with echo_server(port, *store, log=log) as first:
            await wait_accepting(first, port)
            await tab.connect("a", relay.url("/rooms"), FAST, listen=("chat", "recovery"))
            await tab.js("() => clients.a.join('durable')")
            async with Client(f"ws://127.0.0.1:{port}/rooms") as publisher:
                await publish(publisher, "durable", 0, 3)
                assert await numbers(tab, 3) == [0, 1, 2]
                relay.take_down()
                await tab.wait_events("a", "close")
                await publish(publisher, "durable", 3, 200)  # acknowledged while the page is away
            first.kill()
            await asyncio.to_thread(first.wait, 10)
        with echo_server(port, *store, log=log) as second:
            await wait_accepting(second, port)
            relay.bring_up()
            [recovery] = await tab.wait_events("a", "recovery")
            assert recovery["recovered"] is True and recovery["missed"] == 200
            async with Client(f"ws://127.0.0.1:{port}/rooms") as publisher:
                await publish(publisher, "durable", 203, 2)
            assert await numbers(tab, 205) == list(range(205))
            await tab.js("() => clients.a.close()")
            second.kill()
            await asyncio.to_thread(second.wait, 10)
    await tab.close()


@pytest.mark.timeout(120)
async def test_page_recovers_a_gap_left_by_dropped_publications(browser: Browser, server: TestServer) -> None:
    tab = await Tab.open(browser, server.http_url("/"))
    async with Relay(server.port) as relay, Client(server.url("/rooms")) as publisher:
        await tab.connect("a", relay.url("/rooms"), FAST, listen=("chat", "recovery"))
        await tab.js("() => clients.a.join('busy')")
        relay.stall()
        await publish(publisher, "busy", 0, 300, pad="x" * 16_384)
        assert await server.app.hub.dropped_count() > 0
        relay.resume()
        total = 300  # a later publication reveals a dropped tail: send until one gets through
        async with asyncio.timeout(60):
            while len(await tab.events("a", "chat")) < total:
                await publish(publisher, "busy", total, 1)
                total += 1
                with contextlib.suppress(TimeoutError, AssertionError):
                    await asyncio.wait_for(numbers(tab, total), 1.0)
        assert await numbers(tab, total) == list(range(total))
        recoveries = await tab.events("a", "recovery")
        assert recoveries and all(r["recovered"] for r in recoveries)
        assert len(await tab.events("a", "open")) == 1  # recovered on the same connection
    await tab.close()


async def test_page_is_told_when_the_history_no_longer_covers_the_gap(browser: Browser, server: TestServer) -> None:
    tab = await Tab.open(browser, server.http_url("/"))
    async with Relay(server.port) as relay, Client(server.url("/rooms")) as publisher:
        await tab.connect("a", relay.url("/rooms"), FAST, listen=("chat", "recovery"))
        await tab.js("() => clients.a.join('short:b')")
        await publish(publisher, "short:b", 0, 1)
        await numbers(tab, 1)
        relay.take_down()
        await tab.wait_events("a", "close")
        await publish(publisher, "short:b", 1, 30)  # the room keeps only its last 10
        relay.bring_up()
        [recovery] = await tab.wait_events("a", "recovery")
        assert recovery == {
            "room": "short:b",
            "recovered": False,
            "missed": 0,
            "offset": 31,
            "epoch": recovery["epoch"],
        }
        [rejoin] = await tab.wait_events("a", "rejoin")
        assert rejoin["unrecovered"] == ["short:b"]
        await publish(publisher, "short:b", 31, 1)
        assert await numbers(tab, 2) == [0, 31]
    await tab.close()
