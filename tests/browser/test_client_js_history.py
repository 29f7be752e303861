"""hubbub.js in real headless Chromium: positions in rooms with history, and recovery of what was
missed while the connection was down (every missed publication once, in order, before live ones)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from playwright.async_api import Browser

from hubbub.protocol.envelope import Envelope
from hubbub.testing import TestServer, serve_app, wait_for
from tests.browser.test_client_js import Harness, Tab, build

pytestmark = pytest.mark.asyncio(loop_scope="module")

BACKOFF = {"backoff": {"initialMs": 300, "maxMs": 600, "factor": 2, "jitter": 0}}
"""The first retry comes 300 ms after the connection is lost: the test publishes meanwhile."""


@pytest_asyncio.fixture(loop_scope="module")
async def harness() -> Harness:
    made = build()
    made.app.history("hist*", size=100, ttl=60)
    return made


@pytest_asyncio.fixture(loop_scope="module")
async def server(harness: Harness) -> AsyncIterator[TestServer]:
    async with serve_app(harness.app) as running:
        yield running


async def note(harness: Harness, room: str, n: int) -> None:
    await harness.app.hub.room_broadcast(room, Envelope("note", {"n": n}))


async def notes(tab: Tab, count: int) -> list[dict[str, int]]:
    """The "note" events the client logged, once there are `count`."""
    found: list[dict[str, int]] = await tab.wait_events("a", "note", count)
    return found


async def test_a_reconnecting_client_recovers_what_it_missed_in_order_once(
    browser: Browser, harness: Harness, server: TestServer
) -> None:
    tab = await Tab.open(browser, server.http_url("/"))
    first = await tab.connect("a", "/open", BACKOFF, listen=("note",))
    for n in (1, 2):
        await note(harness, "hist-a", n)
    joined = await tab.js("() => clients.a.join('hist-a', { history: 10 })")
    assert joined["offset"] == 2 and joined["recovered"] is True
    await note(harness, "hist-a", 3)
    assert [e["n"] for e in await notes(tab, 3)] == [1, 2, 3]  # the history asked for, then live
    assert await tab.js("() => clients.a.positions.get('hist-a')") == {"offset": 3, "epoch": joined["epoch"]}

    conn = harness.app.hub.get(first["clientId"])
    assert conn is not None and conn._ws is not None
    conn._ws.abort()  # the connection is lost; the client reconnects on its own
    await wait_for(lambda: harness.app.hub.get(first["clientId"]) is None)
    for n in range(4, 9):  # published while it is away
        await note(harness, "hist-a", n)
    [rejoin] = await tab.wait_events("a", "rejoin")
    assert rejoin["rooms"] == ["hist-a"] and rejoin["unrecovered"] == []
    await note(harness, "hist-a", 9)
    assert [e["n"] for e in await notes(tab, 9)] == list(range(1, 10))
    await tab.close()


async def test_a_lost_stream_is_reported_unrecovered(browser: Browser, harness: Harness, server: TestServer) -> None:
    tab = await Tab.open(browser, server.http_url("/"))
    first = await tab.connect("a", "/open", BACKOFF, listen=("note",))
    await tab.js("() => Promise.all([clients.a.join('hist-b'), clients.a.join('hist-c'), clients.a.join('plain')])")
    await note(harness, "hist-b", 1)
    await note(harness, "hist-c", 1)
    await notes(tab, 2)
    assert harness.app.hub.store is not None
    await harness.app.hub.store.history.remove("hist-b")  # its past is lost: a new epoch
    conn = harness.app.hub.get(first["clientId"])
    assert conn is not None and conn._ws is not None
    conn._ws.abort()
    [rejoin] = await tab.wait_events("a", "rejoin")
    assert sorted(rejoin["rooms"]) == ["hist-b", "hist-c", "plain"] and rejoin["unrecovered"] == ["hist-b"]
    assert await tab.js("() => clients.a.positions.has('plain')") is False
    await tab.close()


async def test_publish_with_an_idempotency_key_is_applied_once(
    browser: Browser, harness: Harness, server: TestServer
) -> None:
    tab = await Tab.open(browser, server.http_url("/"))
    await tab.connect("a", "/open", BACKOFF, listen=("note",))
    await tab.js("() => clients.a.join('hist-d')")
    replies = await tab.js(
        """async () => [
            await clients.a.publish('hist-d', 'note', { n: 1 }, { idempotencyKey: 'k-1' }),
            await clients.a.publish('hist-d', 'note', { n: 1 }, { idempotencyKey: 'k-1' }),
        ]"""
    )
    assert [(r["offset"], r["duplicate"]) for r in replies] == [(1, False), (1, True)]
    assert [e["data"] for e in await notes(tab, 1)] == [{"n": 1}]
    page = await harness.app.hub.room_history("hist-d", last=10)
    assert [p["offset"] for p in page.publications()] == [1]
    await tab.close()
