"""The dashboard page in real headless Chromium, watching an app with real traffic.

Set HUBBUB_DASHBOARD_SCREENSHOT=PATH to keep the screenshot (docs/dashboard.png is made so).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from pathlib import Path

import pytest

from hubbub import App, Event, Request
from hubbub.client import WebSocketClient
from hubbub.testing import TestServer, serve_app
from tests.support.stalled import stalled_client

with contextlib.suppress(ImportError):  # then the shared `browser` fixture skips (or fails under CI)
    from playwright.async_api import Browser, expect

pytestmark = pytest.mark.asyncio(loop_scope="module")

KEY = "watch-it"
BURST = 12
SIZE = 64 * 1024
STALLED = ("/room/lobby?user=user0", "/room/games?user=user1")
"""Two clients that stop reading after their handshake: the bursts fill their sockets, then drops begin."""


def busy_app() -> App:
    """Rooms to join and talk in; "burst" sends the room more than a client that stopped reading can take."""
    app = App(dashboard_key=KEY, backpressure_policy="drop", max_backpressure=2 * SIZE + 64)
    room = app.websocket("/room/{room}")

    @app.authenticate
    def by_name(request: Request) -> str | None:
        return request.query.get("user")

    @room.on_connect
    async def join(event: Event) -> None:
        await event.hub.join(event.params["room"], event.client_id)

    @room.on_message
    async def say(event: Event) -> None:
        if event.data == "burst":
            for _ in range(BURST):
                await event.hub.room_broadcast(event.params["room"], "x" * SIZE)
        else:
            await event.hub.room_broadcast(event.params["room"], event.data)

    return app


async def traffic(server: TestServer, clients: list[WebSocketClient], stop: asyncio.Event) -> None:
    """Clients (five users, some on several devices) arrive over a few seconds in three rooms and talk;
    some ask for bursts. Bounded: at most 12 clients and 400 steps; stops when `stop` is set."""
    rooms = ["lobby", "games", "ops"]
    step = 0
    while not stop.is_set() and step < 400:
        if len(clients) < 12 and step % 4 == 0:
            n = len(clients)
            clients.append(await server.connect(f"/room/{rooms[n % 3]}?user=user{n % 5}"))
        for i, client in enumerate(clients):
            await client.send("burst" if (step + i) % 9 == 0 else f"message {step}")
        step += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)


async def test_the_dashboard_shows_live_charts_of_real_traffic(browser: Browser, tmp_path: Path) -> None:
    async with serve_app(busy_app()) as server, contextlib.AsyncExitStack() as stalled:
        for path in STALLED:
            await stalled.enter_async_context(stalled_client(server, path))
        clients: list[WebSocketClient] = []
        stop = asyncio.Event()
        load = asyncio.create_task(traffic(server, clients, stop))
        context = await browser.new_context(viewport={"width": 1200, "height": 760})
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            denied = await page.goto(server.http_url("/_hubbub"))
            assert denied is not None and denied.status == 401

            await page.goto(server.http_url(f"/_hubbub?key={KEY}"))
            await expect(page.locator("#status")).to_have_text("live")
            await expect(page.locator("#v-connections")).to_have_text(str(12 + len(STALLED)), timeout=15_000)
            await expect(page.locator("#v-rooms")).to_have_text("3")
            await expect(page.locator("#v-users")).to_have_text("5")
            await page.wait_for_function("Number(document.body.dataset.points) >= 8", timeout=15_000)
            await expect(page.locator("#v-received")).to_have_text(re.compile(r"^[1-9]"))
            for chart, series in [
                ("Connections", "connections"),
                ("Messages per second", "sent"),
                ("Drops per second", "dropped"),
            ]:
                line = page.locator(f'svg[data-chart="{chart}"] polyline[data-series="{series}"]')
                await expect(line).to_have_count(1)
                coords = (await line.get_attribute("points") or "").split()
                assert len(coords) >= 8
                assert len({c.split(",")[1] for c in coords}) > 1, f"{chart} is flat"
            shot = Path(os.environ.get("HUBBUB_DASHBOARD_SCREENSHOT") or tmp_path / "dashboard.png")
            await page.screenshot(path=str(shot), full_page=True)
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

            # The page follows the app live: clients leave, the tile follows.
            stop.set()
            await load
            for client in clients[:5]:
                await client.close()
            await expect(page.locator("#v-connections")).to_have_text(str(7 + len(STALLED)), timeout=10_000)
            assert errors == []
        finally:
            stop.set()
            await load
            for client in clients:
                client.abort()
            await context.close()
