"""hubbub.js's inbox device in real headless Chromium: a stable device id kept in localStorage
(the same after a reload, another in another browser profile, overridable), and durable
messages sent while the page was away delivered once and acknowledged, so the next visit of
the device does not get them again."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from playwright.async_api import Browser

import hubbub
from hubbub import HTMLResponse
from hubbub.testing import TestServer, serve_app
from hubbub.web.request import Request
from tests.browser.conftest import WAIT_MS
from tests.browser.test_client_js import PAGE, Tab
from tests.inbox.inbox_app import make_app

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module")
async def server() -> AsyncIterator[TestServer]:
    app = make_app()
    app.static("/hubbub", hubbub.STATIC_DIR)

    @app.get("/")
    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE)

    async with serve_app(app) as running:
        yield running


async def visit(tab: Tab, user: str, options: dict[str, object]) -> dict[str, object]:
    welcome: dict[str, object] = await tab.connect("a", f"/inbox?user={user}", options, listen=("notification",))
    return welcome


async def test_a_stable_device_id_and_acknowledged_inbox(browser: Browser, server: TestServer) -> None:
    tab = await Tab.open(browser, server.http_url("/"))
    first = await visit(tab, "ann", {"device": True})
    device = await tab.js("() => localStorage.getItem('hubbub.device')")
    assert isinstance(device, str) and device.startswith("d-") and first["device"] == device
    await tab.js("() => clients.a.close()")
    for n in range(3):
        assert (await server.request("POST", "/send/ann", json={"n": n})).status == 200

    await tab.page.reload()
    await tab.page.wait_for_function("() => typeof window.Hubbub === 'object'", timeout=WAIT_MS)
    again = await visit(tab, "ann", {"device": True})
    assert again["device"] == device  # the same browser is the same device
    assert [e["n"] for e in await tab.wait_events("a", "notification", 3)] == [0, 1, 2]
    # acknowledged once the listeners ran: the device's cursor reached 3
    await tab.page.wait_for_function("async () => (await clients.a.ack(1)).inbox === 3", timeout=WAIT_MS, polling=100)
    await tab.js("() => clients.a.close()")

    await tab.page.reload()
    await tab.page.wait_for_function("() => typeof window.Hubbub === 'object'", timeout=WAIT_MS)
    await visit(tab, "ann", {"device": True})
    await server.request("POST", "/send/ann", json={"n": 3})
    assert [e["n"] for e in await tab.wait_events("a", "notification", 1)] == [3]  # 0-2 are not sent again

    other = await Tab.open(browser, server.http_url("/"))  # another profile: another device
    welcome = await visit(other, "ann", {"device": True})
    assert welcome["device"] != device
    await other.js("() => clients.a.close()")
    named = await Tab.open(browser, server.http_url("/"))
    assert (await visit(named, "ann", {"device": "kiosk-1"}))["device"] == "kiosk-1"
    await named.close()
    await other.close()
    await tab.close()
