"""examples/ticker.py's page in real headless Chromium, on hubbub.js's recovery: the server is SIGKILLed
and restarted (SQLite store) while the page is cut off and ticks go on; after the reconnect the page has
every tick it missed, once, in order. When the room's history no longer covers what was missed
(recovered: false), the page reloads the symbol's state with a "quotes" request.

Uses the shared `browser` fixture of tests/browser/conftest.py (system Chromium, skipped
without it unless CI is set).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect

from hubbub.client import Client
from hubbub.testing import TestServer, serve_app, wait_for
from tests.integration.example_support import load_example
from tests.support.processes import free_port, wait_accepting
from tests.support.relay import Relay

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = ["AAPL", "MSFT"]
TICKER_ENV = {"TICKER_INTERVAL": "0.1", "TICKER_SYMBOLS": ",".join(SYMBOLS), "TICKER_SEED": "11"}


@contextlib.contextmanager
def ticker_server(port: int, store: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`hubbub run examples/ticker.py:app` as a child process; killed (by PID) when the block ends."""
    command = [sys.executable, "-m", "hubbub", "run", "examples/ticker.py:app", "--port", str(port), "--store", store]
    with log.open("ab") as err:
        proc = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **TICKER_ENV}, stdout=subprocess.DEVNULL, stderr=err
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


async def page_ticks(page: Page, symbol: str) -> list[dict[str, Any]]:
    """The ticks of `symbol` the page handed to its row, in order ({symbol, price, ts, offset})."""
    ticks: list[dict[str, Any]] = await page.evaluate(
        "(symbol) => window.tickerPage.ticks.filter((tick) => tick.symbol === symbol)", symbol
    )
    return ticks


async def latest_offset(port: int, symbol: str) -> int:
    """The offset of the last tick the server kept for `symbol`."""
    async with Client(f"ws://127.0.0.1:{port}/ticker") as client:
        reply = await client.request("hubbub.join", {"room": f"ticker:{symbol}"})
    return int(reply["offset"])


async def kept(port: int, symbol: str) -> list[dict[str, Any]]:
    """Every tick the server keeps for `symbol`, oldest first."""
    async with Client(f"ws://127.0.0.1:{port}/ticker") as client:
        reply = await client.request("hubbub.join", {"room": f"ticker:{symbol}", "history": 600})
    assert reply["recovered"] is True
    return [{**publication["data"], "offset": publication["offset"]} for publication in reply["publications"]]


async def open_page(browser: Browser, url: str) -> tuple[Page, list[str]]:
    """The ticker page with every symbol watched; the errors it throws are collected."""
    context = await browser.new_context(viewport={"width": 1000, "height": 600})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(url)
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    for symbol in SYMBOLS:
        await page.check(f"#symbol-{symbol}")
    await expect(page.locator("#quotes tbody tr")).to_have_count(len(SYMBOLS))
    return page, errors


@pytest.mark.timeout(120)
async def test_page_shows_every_tick_missed_while_the_server_was_killed_and_restarted(
    browser: Browser, tmp_path: Path
) -> None:
    port = free_port()
    store = f"sqlite:///{tmp_path / 'ticks.db'}"
    log = tmp_path / "server.log"
    async with Relay(port) as relay:
        with ticker_server(port, store, log) as first:
            await wait_accepting(first, port)
            page, errors = await open_page(browser, relay.url("/", scheme="http"))
            for symbol in SYMBOLS:
                await wait_for(lambda symbol=symbol: _count_at_least(page, symbol, 3), timeout=20)
            relay.take_down()  # the page's network drops
            await expect(page.locator("#status")).not_to_have_attribute("data-state", "connected")
            shown = {symbol: (await page_ticks(page, symbol))[-1]["offset"] for symbol in SYMBOLS}
            await wait_for(lambda: _advanced(port, shown, 10), timeout=20)  # ticks go on without the page
            first.kill()
            await asyncio.to_thread(first.wait, 10)
        with ticker_server(port, store, log) as second:
            await wait_accepting(second, port)
            await wait_for(lambda: _advanced(port, shown, 20), timeout=20)  # and go on after the restart
            relay.bring_up()
            await expect(page.locator("#status")).to_have_attribute("data-state", "connected", timeout=30_000)
            for symbol in SYMBOLS:
                history = await kept(port, symbol)
                last = history[-1]["offset"]
                await wait_for(lambda symbol=symbol, last=last: _offset_at_least(page, symbol, last), timeout=20)
                ticks = await page_ticks(page, symbol)
                offsets = [tick["offset"] for tick in ticks]
                assert offsets == list(range(offsets[0], offsets[-1] + 1)), offsets  # once each, in order
                by_offset = {tick["offset"]: tick for tick in history}
                assert all(tick == by_offset[tick["offset"]] for tick in ticks if tick["offset"] in by_offset)
                assert offsets[0] <= shown[symbol] - 2 and last - shown[symbol] >= 20
                row = page.locator(f'#quotes tr[data-symbol="{symbol}"]')
                await expect(row).not_to_have_attribute("data-reloaded", "true")  # recovered, not reloaded
            assert await page.evaluate("window.tickerPage.reloads") == []
            note = await page.locator("#note").text_content() or ""
            recovered = re.fullmatch(r"Back online: (\d+) missed ticks recovered\.", note)
            assert recovered and int(recovered[1]) >= 40, note  # 20 or more per symbol
            assert errors == []
            second.kill()
            await asyncio.to_thread(second.wait, 10)
            await page.context.close()


async def _count_at_least(page: Page, symbol: str, count: int) -> bool:
    return len(await page_ticks(page, symbol)) >= count


async def _offset_at_least(page: Page, symbol: str, offset: int) -> bool:
    ticks = await page_ticks(page, symbol)
    return bool(ticks) and ticks[-1]["offset"] >= offset


async def _advanced(port: int, shown: dict[str, int], by: int) -> bool:
    offsets = [await latest_offset(port, symbol) for symbol in shown]
    return all(offset >= shown[symbol] + by for offset, symbol in zip(offsets, shown, strict=True))


@pytest_asyncio.fixture(loop_scope="module")
async def short_history(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TestServer]:
    """The ticker in this process, its rooms keeping only their last 5 ticks."""
    for name, value in {**TICKER_ENV, "TICKER_HISTORY": "5"}.items():
        monkeypatch.setenv(name, value)
    async with serve_app(load_example("ticker").app) as server:
        yield server


async def test_page_reloads_a_symbol_whose_missed_ticks_are_no_longer_kept(
    browser: Browser, short_history: TestServer
) -> None:
    async with Relay(short_history.port) as relay:
        page, errors = await open_page(browser, relay.url("/", scheme="http"))
        for symbol in SYMBOLS:
            await wait_for(lambda symbol=symbol: _count_at_least(page, symbol, 2), timeout=20)
        shown = {symbol: (await page_ticks(page, symbol))[-1]["offset"] for symbol in SYMBOLS}
        relay.take_down()
        await expect(page.locator("#status")).not_to_have_attribute("data-state", "connected")
        await wait_for(lambda: _advanced(short_history.port, shown, 10), timeout=20)  # twice what is kept
        relay.bring_up()
        await expect(page.locator("#status")).to_have_attribute("data-state", "connected", timeout=30_000)
        for symbol in SYMBOLS:
            row = page.locator(f'#quotes tr[data-symbol="{symbol}"]')
            await expect(row).to_have_attribute("data-reloaded", "true")
            await wait_for(lambda symbol=symbol: _offset_at_least(page, symbol, shown[symbol] + 12), timeout=20)
            offsets = [tick["offset"] for tick in await page_ticks(page, symbol)]
            resumed = offsets.index(next(offset for offset in offsets if offset > shown[symbol]))
            assert offsets[:resumed] == list(range(offsets[0], shown[symbol] + 1))
            assert offsets[resumed] > shown[symbol] + 10  # what was not kept is not pretended
            assert offsets[resumed:] == list(range(offsets[resumed], offsets[-1] + 1))  # then live, in order
        assert sorted(await page.evaluate("window.tickerPage.reloads")) == SYMBOLS
        await expect(page.locator("#note")).to_have_text("Back online: 0 missed ticks recovered; reloaded AAPL, MSFT.")
        assert errors == []
        await page.context.close()
