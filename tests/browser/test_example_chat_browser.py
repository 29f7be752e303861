"""examples/chat.py's page in real headless Chromium, on the browser client hubbub.js.

Uses the shared `browser` fixture of tests/browser/conftest.py (system Chromium, skipped
without it unless CI is set).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Locator, Page, expect

from hubbub.testing import TestServer, serve_app, wait_for
from tests.integration.example_support import load_example

pytestmark = pytest.mark.asyncio(loop_scope="module")


class Person:
    """One user in their own browser context."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    @classmethod
    async def log_in(cls, browser: Browser, server: TestServer, nickname: str) -> Person:
        """Open the page and log in with a nickname."""
        context = await browser.new_context(viewport={"width": 1200, "height": 700})
        person = cls(await context.new_page())
        await person.page.goto(server.http_url("/"))
        await person.page.fill("#nickname", nickname)
        await person.page.press("#nickname", "Enter")
        await expect(person.page.locator("#status")).to_have_attribute("data-state", "connected")
        await expect(person.page.locator("#me")).to_have_text(nickname)
        return person

    async def join(self, room: str) -> None:
        """Join a room with the join box; it becomes the room shown."""
        await self.page.fill("#room-input", room)
        await self.page.press("#room-input", "Enter")
        await expect(self.page.locator("#room-title")).to_have_text(f"#{room}")

    async def say(self, text: str) -> None:
        """Type into the shown room and press Enter."""
        await self.page.fill("#say-input", text)
        await self.page.press("#say-input", "Enter")
        await expect(self.page.locator("#say-input")).to_have_value("")

    def messages(self, room: str) -> Locator:
        """The message lines of a room's log."""
        return self.page.locator(f'.log[data-room="{room}"] li.message')

    async def leave(self) -> None:
        """Close the browser context (the connection goes with it); the page must not have thrown."""
        assert self.errors == [], self.errors
        await self.page.context.close()


@pytest_asyncio.fixture(loop_scope="module")
async def chat(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TestServer]:
    monkeypatch.setenv("CHAT_PRESENCE_GRACE", "0.1")
    monkeypatch.delenv("CHAT_TOKEN_TTL", raising=False)
    async with serve_app(load_example("chat").app) as server:
        yield server


async def test_two_people_talk_in_a_room(browser: Browser, chat: TestServer) -> None:
    alice = await Person.log_in(browser, chat, "alice")
    bob = await Person.log_in(browser, chat, "bob")
    await expect(alice.page.locator("#online-list li")).to_have_text(["alice (you)", "bob"])

    await alice.join("lobby")
    await expect(alice.page.locator("#presence-list li")).to_have_text(["alice"])
    await bob.join("lobby")
    await expect(bob.page.locator("#presence-list li")).to_have_text(["alice", "bob"])
    await expect(alice.page.locator("#presence-list li")).to_have_text(["alice", "bob"])  # a presence event

    await bob.page.fill("#say-input", "typing")
    await bob.page.dispatch_event("#say-input", "input")
    await expect(alice.page.locator("#typing")).to_have_text("bob is typing…")

    await alice.say("hello from alice")
    line = bob.messages("lobby")
    await expect(line).to_have_count(1)
    await expect(line.locator(".nick")).to_have_text("alice")
    await expect(line.locator(".text")).to_have_text("hello from alice")
    await expect(alice.messages("lobby")).to_have_class("message mine")

    attack = '<img src=x onerror="window.pwned=1"><b>bold</b>'
    await bob.say(attack)
    await expect(alice.messages("lobby").last.locator(".text")).to_have_text(attack)
    await expect(alice.page.locator("#typing")).to_have_text("")  # bob's message ends his typing
    assert await alice.page.locator("#logs img, #logs b").count() == 0
    assert await alice.page.evaluate("window.pwned") is None

    carol = await Person.log_in(browser, chat, "carol")
    await carol.join("lobby")
    await expect(carol.messages("lobby").locator(".text")).to_have_text(["hello from alice", attack])  # history
    await expect(alice.page.locator("#presence-list li")).to_have_text(["alice", "bob", "carol"])
    await carol.page.locator("#whisper-to").select_option(label="alice")
    await carol.page.fill("#whisper-input", "just for you")
    await carol.page.press("#whisper-input", "Enter")
    await expect(alice.page.locator("#whispers li .text")).to_have_text(["just for you"])
    await expect(alice.page.locator("#whispers li .nick")).to_have_text(["carol → alice"])
    await expect(bob.page.locator("#whispers li")).to_have_count(0)

    await bob.leave()
    await expect(alice.page.locator("#presence-list li")).to_have_text(["alice", "carol"])
    await expect(alice.page.locator("#online-list li")).to_have_text(["alice (you)", "carol"])
    await alice.page.click("#leave-button")
    await expect(alice.page.locator("#room-title")).to_have_text("No room")
    await expect(carol.page.locator("#presence-list li")).to_have_text(["carol"])
    for person in (alice, carol):
        await person.leave()


async def test_bad_nickname_and_room_are_explained(browser: Browser, chat: TestServer) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(chat.http_url("/"))
    await page.locator("#nickname").evaluate("input => { input.value = 'y'.repeat(30); }")  # past maxlength
    await page.press("#nickname", "Enter")
    await expect(page.locator("#login-error")).to_contain_text("at most 24 characters")
    person = await Person.log_in(browser, chat, "dave")
    await person.page.fill("#room-input", "no spaces allowed")
    await person.page.press("#room-input", "Enter")
    await expect(person.page.locator("#error")).to_contain_text("cannot join no spaces allowed")
    await expect(person.page.locator("#room-title")).to_have_text("No room")
    await person.leave()
    await context.close()


async def test_the_page_renews_its_token_before_it_expires(browser: Browser, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAT_TOKEN_TTL", "4")
    module = load_example("chat")
    async with serve_app(module.app) as server:
        erin = await Person.log_in(browser, server, "erin")
        me = erin.page.locator("#me")
        first_expiry = int(await me.get_attribute("data-expires-at") or 0)
        await erin.join("lobby")
        (client_id,) = await module.app.hub.room_members("lobby")
        await expect(me).to_have_attribute("data-refreshes", "1")
        assert int(await me.get_attribute("data-expires-at") or 0) > first_expiry
        await wait_for(lambda: time.time() > first_expiry + 0.2, timeout=5)  # the server's expiry timer has run
        assert await module.app.hub.room_members("lobby") == [client_id]  # the same connection, not a new one
        await erin.say("still here")  # answered: the connection was extended, not closed with 4002
        await expect(erin.messages("lobby").locator(".text")).to_have_text(["still here"])
        await expect(erin.page.locator("#status")).to_have_attribute("data-state", "connected")
        await erin.leave()


async def test_the_page_recovers_what_was_said_while_it_was_offline(browser: Browser, chat: TestServer) -> None:
    from tests.support.relay import Relay

    async with Relay(chat.port) as relay:
        context = await browser.new_context(viewport={"width": 1200, "height": 700})
        alice = Person(await context.new_page())
        await alice.page.goto(relay.url("/", scheme="http"))  # the page and its WebSocket go through the relay
        await alice.page.fill("#nickname", "alice")
        await alice.page.press("#nickname", "Enter")
        await expect(alice.page.locator("#status")).to_have_attribute("data-state", "connected")
        bob = await Person.log_in(browser, chat, "bob")
        await alice.join("away")
        await bob.join("away")
        await bob.say("before")
        await expect(alice.messages("away")).to_have_count(1)
        await alice.messages("away").first.evaluate("(li) => { li.dataset.seen = 'kept'; }")

        relay.take_down()  # alice's network drops
        await expect(alice.page.locator("#status")).not_to_have_attribute("data-state", "connected")
        for n in range(5):
            await bob.say(f"while away {n}")
        relay.bring_up()
        await expect(alice.page.locator("#status")).to_have_attribute("data-state", "connected")
        expected = ["before", *[f"while away {n}" for n in range(5)]]
        await expect(alice.messages("away").locator(".text")).to_have_text(expected)
        await bob.say("after")
        await expect(alice.messages("away").locator(".text")).to_have_text([*expected, "after"])
        # recovered, not reloaded: the line shown before the drop is the same element (no snapshot replaced the log)
        await expect(alice.messages("away").first).to_have_attribute("data-seen", "kept")
        await alice.leave()
        await bob.leave()
