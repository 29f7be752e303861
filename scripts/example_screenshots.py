"""Screenshots of the three example pages (docs/screenshots/*.png), in headless Chromium.

    .venv/bin/python scripts/example_screenshots.py

Each example runs in-process on a free port; the chat page shows two people after one of them
came back from a network drop (what was said meanwhile recovered), the notifications page
shows what waited while the browser was away, the ticker page shows live prices after a network drop
(the ticks missed meanwhile recovered).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from playwright.async_api import Browser, Page, async_playwright, expect

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
API_KEY = "screenshot-api-key"


def app_of(name: str):  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(ROOT))
    from hubbub.serve.cli import load_app

    return load_app(f"examples/{name}.py:app")


async def page_of(browser: Browser, url: str) -> Page:
    context = await browser.new_context(viewport={"width": 1100, "height": 640})
    page = await context.new_page()
    await page.goto(url)
    return page


async def chat(browser: Browser) -> None:
    from tests.support.relay import Relay

    from hubbub.testing import serve_app

    async with serve_app(app_of("chat")) as server, Relay(server.port) as relay:
        people = {}
        for name, url in (("alice", relay.url("/", scheme="http")), ("bob", server.http_url("/"))):
            page = await page_of(browser, url)
            await page.fill("#nickname", name)
            await page.press("#nickname", "Enter")
            await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
            await page.fill("#room-input", "lobby")
            await page.press("#room-input", "Enter")
            people[name] = page
        alice, bob = people["alice"], people["bob"]

        async def say(page: Page, text: str) -> None:
            await page.fill("#say-input", text)
            await page.press("#say-input", "Enter")
            await expect(page.locator("#say-input")).to_have_value("")

        await say(bob, "hi alice, the train is entering the tunnel?")
        await say(alice, "yes, back in a minute")
        relay.take_down()
        await expect(alice.locator("#status")).not_to_have_attribute("data-state", "connected")
        for text in ("no problem", "we moved the meeting to 3 pm", "and the room is B12"):
            await say(bob, text)
        relay.bring_up()
        await expect(alice.locator("#status")).to_have_attribute("data-state", "connected")
        await expect(alice.locator('.log[data-room="lobby"] li.message')).to_have_count(5)
        await alice.screenshot(path=str(OUT / "chat.png"))


async def notifications(browser: Browser) -> None:
    os.environ["NOTIFY_API_KEY"] = API_KEY
    from hubbub.testing import serve_app

    async with serve_app(app_of("notifications")) as server:
        for title in ("Build #812 finished", "Deploy to staging done"):
            response = await server.request(
                "POST", "/api/notify/alice", json={"title": title, "body": "while you were away"},
                headers={"x-api-key": API_KEY},
            )  # fmt: skip
            assert response.status == 200, response.text
        page = await page_of(browser, server.http_url("/"))
        await page.fill("#user-id", "alice")
        await page.press("#user-id", "Enter")
        await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        await expect(page.locator("#notifications li.notification")).to_have_count(2)
        await page.screenshot(path=str(OUT / "notifications.png"))


async def ticker(browser: Browser) -> None:
    from tests.support.relay import Relay

    os.environ["TICKER_INTERVAL"] = "0.2"
    os.environ["TICKER_SEED"] = "7"
    from hubbub.testing import serve_app

    async with serve_app(app_of("ticker")) as server, Relay(server.port) as relay:
        page = await page_of(browser, relay.url("/", scheme="http"))
        await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        for symbol in ("AAPL", "MSFT", "NVDA"):
            await page.check(f"#symbol-{symbol}")
        await expect(page.locator("#quotes tbody tr")).to_have_count(3)
        relay.take_down()
        await expect(page.locator("#status")).not_to_have_attribute("data-state", "connected")
        await page.wait_for_timeout(1500)  # ticks go on while the page is away
        relay.bring_up()
        await expect(page.locator("#status")).to_have_attribute("data-state", "connected", timeout=20_000)
        await page.wait_for_timeout(600)  # the ticks missed are recovered, then live ones follow
        await page.screenshot(path=str(OUT / "ticker.png"))


async def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
        for shoot in (chat, notifications, ticker):
            await shoot(browser)
        await browser.close()


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    asyncio.run(main())
