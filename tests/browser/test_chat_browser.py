"""The chat demo page in real headless Chromium: several users, rooms, escaping, reconnecting.

Needs Debian's chromium (/usr/bin/chromium, or CHROMIUM_PATH) and the `playwright`
package (no `playwright install`: the system browser is used). Without them the
tests are skipped, unless CI is set: then they fail, so CI cannot skip silently.
Uses the shared `browser` fixture of tests/browser/conftest.py.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from hubbub import start
from hubbub.demos.chat import create_app
from hubbub.testing import TestServer, serve_app, wait_for
from tests.browser.conftest import WAIT_MS

with contextlib.suppress(ImportError):  # then the shared `browser` fixture skips (or fails under CI)
    from playwright.async_api import Browser, Page, expect

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module")
async def server() -> AsyncIterator[TestServer]:
    async with serve_app(create_app()) as running:
        yield running


class User:
    """One person in their own browser context (own tab, own storage)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.frames: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))

    def _frame(self, payload: str | bytes) -> None:
        self.frames.append(payload if isinstance(payload, str) else payload.decode("utf-8", "replace"))

    @classmethod
    async def open(cls, browser: Browser, url: str, nick: str) -> User:
        """Open the page and pick a nickname."""
        context = await browser.new_context(viewport={"width": 1000, "height": 640})
        user = cls(await context.new_page())
        await user.page.goto(url)
        await expect(user.page.locator("#status")).to_have_attribute("data-state", "connected")
        await user.page.fill("#nick-input", nick)
        await user.page.press("#nick-input", "Enter")
        await expect(user.page.locator("#chat")).to_be_visible()
        await expect(user.page.locator("#me")).to_have_text(f"you are {nick}")
        return user

    async def join(self, room: str) -> None:
        """Join a room with the join box; it becomes the shown room."""
        await self.page.fill("#room-input", room)
        await self.page.press("#room-input", "Enter")
        await expect(self.page.locator("#room-title")).to_have_text(f"#{room}")

    async def say(self, text: str) -> None:
        """Type a message into the shown room and press Enter."""
        await self.page.fill("#say-input", text)
        await self.page.press("#say-input", "Enter")
        await expect(self.page.locator("#say-input")).to_have_value("")

    def log(self, room: str, kind: str = "message") -> object:
        """The lines of one kind in a room's log."""
        return self.page.locator(f'.log[data-room="{room}"] li.{kind}')

    async def close(self) -> None:
        assert self.errors == [], self.errors
        await self.page.context.close()


async def test_two_users_chat_and_another_room_hears_nothing(browser: Browser, server: TestServer) -> None:
    alice = await User.open(browser, server.http_url("/"), "alice")
    bob = await User.open(browser, server.http_url("/"), "bob")
    carol = await User.open(browser, server.http_url("/"), "carol")
    await alice.join("lobby")
    await bob.join("lobby")
    await carol.join("games")
    await expect(alice.page.locator("#member-list li")).to_have_text(["alice", "bob"])
    await expect(alice.log("lobby", "system").last).to_contain_text("bob joined")
    await expect(carol.page.locator("#all-rooms .room")).to_have_text(["#games1", "#lobby2"])

    await alice.say("hello from alice")
    line = bob.log("lobby")
    await expect(line).to_have_count(1)
    await expect(line.locator(".nick")).to_have_text("alice")
    await expect(line.locator(".text")).to_have_text("hello from alice")
    await expect(line.locator(".time")).to_have_text(re.compile(r"^\d{2}:\d{2}$"))
    await expect(alice.log("lobby")).to_have_class("message mine")

    # alice's next request reaches carol after the message would have, had it been misrouted
    await alice.join("games")
    await expect(carol.log("games", "system").last).to_contain_text("alice joined")
    await expect(carol.page.locator("#member-list li")).to_have_text(["alice", "carol"])
    await expect(carol.page.locator("#messages")).not_to_contain_text("hello from alice")
    assert not [frame for frame in carol.frames if "hello from alice" in frame]
    assert [frame for frame in bob.frames if "hello from alice" in frame]

    # bob does not see games; alice's lobby tab counts what she missed while in games
    await bob.say("are you there?")
    await expect(alice.page.locator("#joined-rooms .badge")).to_have_text("1")
    await alice.page.click("#joined-rooms .room >> text=#lobby")
    await expect(alice.log("lobby").last.locator(".text")).to_have_text("are you there?")
    await expect(alice.page.locator("#joined-rooms .badge")).to_have_count(0)

    await bob.page.click("#leave-button")
    await expect(bob.page.locator("#room-title")).to_have_text("No room")
    await expect(bob.page.locator("#joined-rooms li")).to_have_count(0)
    await expect(alice.log("lobby", "system").last).to_contain_text("bob left")
    await expect(alice.page.locator("#member-list li")).to_have_text(["alice"])
    await alice.page.click("#leave-button")  # leaving the shown room shows the next one
    await expect(alice.page.locator("#room-title")).to_have_text("#games")
    await expect(alice.page.locator("#member-list li")).to_have_text(["alice", "carol"])
    for user in (alice, bob, carol):
        await user.close()


async def test_user_text_is_shown_as_text(browser: Browser, server: TestServer) -> None:
    mallory = await User.open(browser, server.http_url("/"), "<i>mallory</i>")
    bob = await User.open(browser, server.http_url("/"), "bob")
    await mallory.join("lobby")
    await bob.join("lobby")
    attack = '<img src=x onerror="window.pwned=1"><b>bold</b>'
    await mallory.say(attack)
    line = bob.log("lobby")
    await expect(line.locator(".text")).to_have_text(attack)
    await expect(line.locator(".nick")).to_have_text("<i>mallory</i>")
    await expect(bob.page.locator("#member-list li")).to_have_text(["<i>mallory</i>", "bob"])
    assert await bob.page.locator("#messages img, #messages b, #messages i, #member-list i").count() == 0
    assert await bob.page.evaluate("window.pwned") is None
    for user in (mallory, bob):
        await user.close()


async def test_page_reconnects_to_a_restarted_server_and_rejoins(browser: Browser) -> None:
    first = await start(create_app(), "127.0.0.1", 0)
    port = first.port
    alice = await User.open(browser, f"http://127.0.0.1:{port}/", "alice")
    await alice.join("lobby")
    await first.shutdown(timeout=5)
    await expect(alice.log("lobby", "system").last).to_have_text(re.compile("connection lost$"))
    await expect(alice.page.locator("#say-input")).to_be_disabled()
    # retries find nobody listening; each waits twice as long as the one before (500 ms, 1 s, 2 s... +-20 %)
    status = alice.page.locator("#status")
    await expect(status).to_have_attribute("data-attempts", re.compile("^[2-9]$"))
    attempts, retry_ms = await status.evaluate("s => [Number(s.dataset.attempts), Number(s.dataset.retryMs)]")
    assert 0.8 * 500 * 2 ** (attempts - 1) <= retry_ms <= 1.2 * 500 * 2 ** (attempts - 1)

    restarted = create_app()
    second = await start(restarted, "127.0.0.1", port)
    try:
        await expect(status).to_have_attribute("data-state", "connected")
        await expect(status).to_have_attribute("data-attempts", "0")

        async def back_in_lobby() -> bool:
            return await restarted.hub.room_count("lobby") == 1

        await wait_for(back_in_lobby, timeout=WAIT_MS / 1000)
        await expect(alice.page.locator("#member-list li")).to_have_text(["alice"])
        await alice.say("back again")
        await expect(alice.log("lobby").last.locator(".text")).to_have_text("back again")
        await expect(alice.log("lobby").last.locator(".nick")).to_have_text("alice")
        await alice.close()
    finally:
        await second.shutdown(timeout=5)
