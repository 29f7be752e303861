"""hubbub.js in real headless Chromium behind a proxy that refuses WebSocket upgrades: with
`transports: ["websocket", "sse"]` the page falls back to Server-Sent Events + POST and joins,
publishes, receives, asks and answers requests, sees presence, authenticates with a token
(`?token=`), and recovers what it missed after the stream dropped."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from playwright.async_api import Browser

import hubbub
from hubbub import HTMLResponse
from hubbub.client import Client
from hubbub.testing import TestServer, serve_app
from hubbub.web.request import Request
from tests.browser.test_client_js import PAGE, Tab
from tests.integration.client_support import build, token
from tests.support.relay import Relay

pytestmark = pytest.mark.asyncio(loop_scope="module")

FALLBACK = {"transports": ["websocket", "sse"], "backoff": {"initialMs": 20, "maxMs": 200}}


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
async def proxy(server: TestServer) -> AsyncIterator[Relay]:
    async with Relay(server.port, refuse_upgrades=True) as running:
        yield running


@pytest.mark.timeout(60)
async def test_page_falls_back_and_does_rooms_requests_and_presence(
    browser: Browser, server: TestServer, proxy: Relay
) -> None:
    tab = await Tab.open(browser, proxy.url("/", scheme="http"))
    await tab.connect("a", "/rooms", FALLBACK, listen=("chat", "noted"))
    assert await tab.js("() => clients.a.transport") == "sse"
    assert proxy.refused_upgrades >= 1
    async with Client(server.url("/rooms")) as direct:
        await tab.js("() => clients.a.handle('confirm', (data) => ({ seen: data }))")
        await tab.js("() => clients.a.join('lobby')")
        await direct.join("lobby")
        [joined] = await tab.wait_events("a", "hubbub.presence")
        assert joined["action"] == "join" and joined["client_id"] == direct.client_id
        await direct.publish("lobby", "chat", {"text": "to the page"})
        await tab.js("() => clients.a.publish('lobby', 'chat', { text: 'from the page' })")
        chat = await tab.wait_events("a", "chat", 2)
        assert [c["data"]["text"] for c in chat] == ["to the page", "from the page"]
        assert await tab.js("() => clients.a.request('add', { a: 20, b: 22 })") == 42
        assert await tab.js("() => clients.a.request('ask', 'ok?')") == {"seen": "ok?"}
    await tab.close()


@pytest.mark.timeout(60)
async def test_page_authenticates_with_a_token_over_the_fallback(browser: Browser, proxy: Relay) -> None:
    tab = await Tab.open(browser, proxy.url("/", scheme="http"))
    welcome = await tab.connect("a", "/secure", {**FALLBACK, "token": token("erin")})
    assert welcome["user"] == "erin"
    assert await tab.js("() => clients.a.request('whoami')") == "erin"
    await tab.close()


@pytest.mark.timeout(60)
async def test_page_recovers_after_the_stream_drops(browser: Browser, server: TestServer, proxy: Relay) -> None:
    tab = await Tab.open(browser, proxy.url("/", scheme="http"))
    await tab.connect("a", "/rooms", FALLBACK, listen=("chat", "recovery"))
    await tab.js("() => clients.a.join('durable')")
    async with Client(server.url("/rooms")) as publisher:
        for n in range(3):
            await publisher.publish("durable", "chat", {"n": n})
        await tab.wait_events("a", "chat", 3)
        proxy.take_down()
        await tab.wait_events("a", "close")
        for n in range(3, 40):
            await publisher.publish("durable", "chat", {"n": n})
        proxy.bring_up()
        [recovery] = await tab.wait_events("a", "recovery")
        assert recovery["recovered"] is True and recovery["missed"] == 37
        await publisher.publish("durable", "chat", {"n": 40})
        chat = await tab.wait_events("a", "chat", 41)
        assert [c["data"]["n"] for c in chat] == list(range(41))
    assert await tab.js("() => clients.a.transport") == "sse"
    await tab.close()


@pytest.mark.timeout(60)
async def test_page_falls_back_when_the_upgrade_is_never_answered(browser: Browser, server: TestServer) -> None:
    """A network that takes the upgrade request and says nothing: no close, no error, so only
    `fallbackAfterMs` ends the attempt; the page then works over SSE + POST."""
    async with Relay(server.port, hold_upgrades=True) as silent:
        tab = await Tab.open(browser, silent.url("/", scheme="http"))
        options = {**FALLBACK, "fallbackAfterMs": 1500}
        started = await tab.js("() => performance.now()")
        await tab.connect("a", "/rooms", options, listen=("chat",))
        waited = await tab.js("() => performance.now()") - started
        assert await tab.js("() => clients.a.transport") == "sse"
        assert silent.held_upgrades == 1
        assert waited >= 1500  # not before the bound: a slow upgrade is given its time
        await tab.js("() => clients.a.join('quiet')")
        async with Client(server.url("/rooms")) as direct:
            await direct.publish("quiet", "chat", {"text": "over sse"})
            [chat] = await tab.wait_events("a", "chat")
            assert chat["data"] == {"text": "over sse"}
        assert await tab.js("() => clients.a.request('add', { a: 1, b: 2 })") == 3
        await tab.close()


@pytest.mark.timeout(60)
async def test_an_upgrade_answered_within_fallback_after_ms_stays_a_websocket(
    browser: Browser, server: TestServer
) -> None:
    """The other side of the bound: the same page and options through a relay that passes the
    upgrade keep the WebSocket."""
    async with Relay(server.port) as passing:
        tab = await Tab.open(browser, passing.url("/", scheme="http"))
        started = await tab.js("() => performance.now()")
        welcome = await tab.connect("a", "/rooms", {**FALLBACK, "fallbackAfterMs": 1500})
        await tab.page.wait_for_function("(started) => performance.now() - started > 2000", arg=started)
        assert await tab.js("() => clients.a.transport") == "websocket"  # the bound passed without effect
        assert await tab.js("() => clients.a.clientId") == welcome["clientId"]
        assert await tab.events("a", "close") == []
        assert await tab.js("() => clients.a.request('add', { a: 1, b: 2 })") == 3
        await tab.close()
