"""hubbub.js in real headless Chromium through a relay that drops the network: the bounded
offline queue (what waits goes out after the reconnect; a full queue rejects visibly) and
requests that wait for the connection or fail at once, as the caller chooses."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from playwright.async_api import Browser

import hubbub
from hubbub import HTMLResponse
from hubbub.testing import TestServer, serve_app
from hubbub.web.request import Request
from tests.browser.test_client_js import PAGE, Tab
from tests.integration.client_support import build
from tests.support.relay import Relay

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module")
async def server() -> AsyncIterator[TestServer]:
    app = build()
    app.static("/hubbub", hubbub.STATIC_DIR)

    @app.get("/")
    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE)

    async with serve_app(app) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def relay(server: TestServer) -> AsyncIterator[Relay]:
    async with Relay(server.port) as running:
        yield running


FAST = {"backoff": {"initialMs": 20, "maxMs": 100}}


async def test_offline_queue_and_requests(browser: Browser, server: TestServer, relay: Relay) -> None:
    tab = await Tab.open(browser, server.http_url("/"))
    await tab.connect("a", relay.url("/rooms"), {**FAST, "maxBuffered": 3}, listen=("noted",))
    relay.take_down()
    await tab.wait_events("a", "close")
    outcome = await tab.js(
        """async () => {
            const client = clients.a;
            client.emit("note", 0);
            client.emit("note", 1);
            window.waiting = settle(client.request("add", { a: 1, b: 1 }));
            let full = null;
            try { client.emit("note", 99); } catch (error) { full = error.code; }
            const failed = await settle(client.request("add", { a: 1, b: 2 }, { offline: "fail" }));
            return { full, failed: failed.code, queued: client.queued, connected: client.connected };
        }"""
    )
    assert outcome == {"full": "buffer_full", "failed": "disconnected", "queued": 3, "connected": False}
    relay.bring_up()
    assert await tab.js("() => window.waiting") == {"ok": True, "value": 2}
    assert await tab.wait_events("a", "noted", 2) == [0, 1]
    await tab.js("() => clients.a.emit('note', 2)")
    assert (await tab.wait_events("a", "noted", 3))[2] == 2
    assert (await tab.events("a", "open"))[-1]["reconnected"] is True
    await tab.close()


async def test_after_1013_the_next_attempt_waits_for_the_server(browser: Browser) -> None:
    app = build(max_connections=1, over_capacity="close")
    app.static("/hubbub", hubbub.STATIC_DIR)

    @app.get("/")
    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE)

    async with serve_app(app) as full:
        tab = await Tab.open(browser, full.http_url("/"))
        await tab.connect("first", "/rooms")
        await tab.js(
            """() => { track("a", new Hubbub.Client("/rooms",
                { backoff: { initialMs: 20, maxMs: 100 }, overCapacityDelayMs: 1500 })); }"""
        )
        [closed] = await tab.wait_events("a", "close")
        assert closed["code"] == 1013 and closed["willReconnect"] is True
        [planned] = await tab.wait_events("a", "reconnecting")
        assert planned["delayMs"] >= 1500  # not the 20-100 ms of the backoff
        await tab.js("() => clients.first.close()")
        await tab.wait_events("a", "open")  # capacity freed: it gets in
        await tab.js("() => clients.a.close()")
        await tab.close()
