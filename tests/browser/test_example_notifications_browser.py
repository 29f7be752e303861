"""examples/notifications.py's page in real headless Chromium: notifications sent while the browser
was away appear when it comes back, are acknowledged by hubbub.js, and are not shown again.

Uses the shared `browser` fixture of tests/browser/conftest.py (system Chromium, skipped
without it unless CI is set).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect

from hubbub.testing import TestServer, serve_app, wait_for
from tests.integration.example_support import load_example

pytestmark = pytest.mark.asyncio(loop_scope="module")

API_KEY = "browser-notify-key"


@pytest_asyncio.fixture(loop_scope="module")
async def site(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TestServer]:
    monkeypatch.setenv("NOTIFY_API_KEY", API_KEY)
    monkeypatch.setenv("NOTIFY_INTERVAL", "3600")
    async with serve_app(load_example("notifications").app) as server:
        yield server


async def notify(server: TestServer, user: str, title: str) -> None:
    response = await server.request(
        "POST", f"/api/notify/{user}", json={"title": title, "body": "b"}, headers={"x-api-key": API_KEY}
    )
    assert response.status == 200, response.text


async def log_in(page: Page, server: TestServer, user: str) -> None:
    await page.goto(server.http_url("/"))
    await page.fill("#user-id", user)
    await page.press("#user-id", "Enter")
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")


async def test_notifications_wait_for_the_browser_and_are_shown_once(browser: Browser, site: TestServer) -> None:
    await notify(site, "alice", "sent while away")
    context = await browser.new_context()
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await log_in(page, site, "alice")
    titles = page.locator("#notifications li.notification .title")
    await expect(titles).to_have_text(["sent while away"])
    await expect(page.locator("#notifications li.notice .body")).to_have_text(["1 notification while you were away"])
    device = await page.evaluate("localStorage.getItem('notifications.device')")
    assert device and device.startswith("d-")  # made by hubbub.js (device: true)
    store = site.app.hub.inbox.store
    assert store is not None

    async def acknowledged(offset: int) -> bool:
        return await store.cursor("alice", device) == offset

    await wait_for(lambda: acknowledged(1), timeout=10)  # hubbub.js acknowledged it

    await notify(site, "alice", "live")
    await expect(titles).to_have_text(["live", "sent while away"])
    await wait_for(lambda: acknowledged(2), timeout=10)

    await log_in(page, site, "alice")  # a reload: the same browser, so the same device
    await notify(site, "alice", "after the reload")
    await expect(titles).to_have_text(["after the reload"])  # the acknowledged two are not sent again
    await expect(page.locator("#notifications li.notice")).to_have_count(0)
    assert errors == []
    await context.close()


async def test_notifications_sent_while_the_network_was_down_arrive_once_in_order(
    browser: Browser, site: TestServer
) -> None:
    from tests.support.relay import Relay

    async with Relay(site.port) as relay:
        context = await browser.new_context()
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(relay.url("/", scheme="http"))  # the page and its connection go through the relay
        await page.fill("#user-id", "bob")
        await page.press("#user-id", "Enter")
        await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        titles = page.locator("#notifications li.notification .title")
        await notify(site, "bob", "before")
        await expect(titles).to_have_text(["before"])
        await titles.first.evaluate("(title) => { title.dataset.seen = 'kept'; }")

        relay.take_down()  # the same page, not a reload: hubbub.js reconnects with the same device
        await expect(page.locator("#status")).not_to_have_attribute("data-state", "connected")
        for n in range(3):
            await notify(site, "bob", f"while down {n}")
        relay.bring_up()
        await expect(page.locator("#status")).to_have_attribute("data-state", "connected", timeout=30_000)
        await expect(titles).to_have_text(["while down 2", "while down 1", "while down 0", "before"])
        await expect(page.locator("#notifications li.notice .body")).to_have_text(
            ["3 notifications while you were away"]
        )
        await notify(site, "bob", "after")
        await expect(titles).to_have_text(["after", "while down 2", "while down 1", "while down 0", "before"])
        await expect(titles.last).to_have_attribute("data-seen", "kept")  # nothing was reloaded
        assert errors == []
        await context.close()
