"""examples/ticker.py over real sockets: rooms of known symbols joined with history (the latest tick at once),
ticks only for one's symbols, each with its room's offset, recovery with `since`, quotes to reload."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from hubbub.testing import TestServer, serve_app
from tests.integration.example_support import EnvelopeClient, Library, load_example, of_type, open_client

SYMBOLS = ["AAPL", "MSFT", "NVDA"]


@pytest.fixture
async def ticker(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[ModuleType, TestServer]]:
    monkeypatch.setenv("TICKER_INTERVAL", "0.05")
    monkeypatch.setenv("TICKER_SYMBOLS", ",".join(SYMBOLS))
    monkeypatch.setenv("TICKER_SEED", "7")
    monkeypatch.setenv("TICKER_HISTORY", "50")
    module = load_example("ticker")
    async with serve_app(module.app) as server:
        yield module, server


def connect(server: TestServer, library: Library = "websockets") -> Any:
    """An anonymous channel connection (the ticker needs no token)."""
    return open_client(server.url("/ticker"), library)


async def join(client: EnvelopeClient, symbol: str, **asks: Any) -> dict[str, Any]:
    """hubbub.join of a symbol's room; the reply's data."""
    reply: dict[str, Any] = await client.call("hubbub.join", {"room": f"ticker:{symbol}", **asks})
    return reply


async def rounds(client: EnvelopeClient, count: int) -> list[dict[str, Any]]:
    """The tick envelopes of `count` whole price moves (ticks of one move share a timestamp); the move
    in progress when the wait began and the one that ends it are left out."""
    ticks: list[dict[str, Any]] = []
    while len({tick["data"]["ts"] for tick in ticks}) < count + 2:
        ticks.append(await client.next(of_type("tick")))
    ends = (ticks[0]["data"]["ts"], ticks[-1]["data"]["ts"])
    return [tick for tick in ticks if tick["data"]["ts"] not in ends]


async def test_symbols_are_listed_and_no_token_is_needed(ticker: tuple[ModuleType, TestServer]) -> None:
    _, server = ticker
    async with connect(server, "aiohttp") as client:
        assert client.welcome["user"] is None
        assert await client.call("symbols") == {"symbols": SYMBOLS}


async def test_join_with_history_gives_the_latest_tick_then_streams_ticks_in_offset_order(
    ticker: tuple[ModuleType, TestServer],
) -> None:
    module, server = ticker
    async with connect(server) as client:
        reply = await join(client, "NVDA", history=1)
        assert reply["recovered"] is True and reply["epoch"] and reply["offset"] >= 1
        [latest] = reply["publications"]  # there is always one: the opening price is published at start
        assert latest["type"] == "tick" and latest["room"] == "ticker:NVDA" and latest["offset"] == reply["offset"]
        assert set(latest["data"]) == {"symbol", "price", "ts"} and latest["data"]["symbol"] == "NVDA"
        await join(client, "AAPL")
        ticks = await rounds(client, 3)
        assert {tick["data"]["symbol"] for tick in ticks} == {"AAPL", "NVDA"}  # never MSFT
        for symbol in ("AAPL", "NVDA"):
            mine = [tick for tick in ticks if tick["data"]["symbol"] == symbol]
            assert len(mine) == len({tick["data"]["ts"] for tick in ticks})  # one tick per move
            offsets = [tick["offset"] for tick in mine]
            assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))  # the room's stream, no gap
            assert all(tick["room"] == f"ticker:{symbol}" for tick in mine)
        assert len({tick["data"]["price"] for tick in ticks}) > 2  # the walk moves
        last = await client.next_of("tick", symbol="AAPL")
        assert module.prices["AAPL"]["price"] == last["price"] or module.prices["AAPL"]["ts"] > last["ts"]


async def test_rejoining_since_a_position_recovers_every_tick_missed(ticker: tuple[ModuleType, TestServer]) -> None:
    _, server = ticker
    async with connect(server) as first:
        await join(first, "MSFT")
        seen = [(await first.next(of_type("tick", symbol="MSFT")))["offset"] for _ in range(2)]
        epoch = (await join(first, "MSFT"))["epoch"]
    async with connect(server, "hubbub") as watcher:  # ticks go on while nobody is in the room
        await join(watcher, "MSFT")
        while (await watcher.next(of_type("tick", symbol="MSFT")))["offset"] < seen[-1] + 5:
            pass
    async with connect(server, "aiohttp") as back:
        reply = await join(back, "MSFT", since={"offset": seen[-1], "epoch": epoch})
        assert reply["recovered"] is True
        offsets = [publication["offset"] for publication in reply["publications"]]
        assert offsets == list(range(seen[-1] + 1, reply["offset"] + 1)) and len(offsets) >= 5
        assert {publication["data"]["symbol"] for publication in reply["publications"]} == {"MSFT"}
        live = await back.next(of_type("tick", symbol="MSFT"))
        assert live["offset"] == reply["offset"] + 1  # no gap and no repeat between recovered and live


async def test_a_position_older_than_the_history_is_not_recovered(ticker: tuple[ModuleType, TestServer]) -> None:
    _, server = ticker
    async with connect(server) as client:
        reply = await join(client, "AAPL")
        while (await client.next(of_type("tick", symbol="AAPL")))["offset"] <= reply["offset"] + 50:
            pass  # more than the 50 ticks the room keeps
        late = await join(client, "AAPL", since={"offset": reply["offset"], "epoch": reply["epoch"]})
        assert late["recovered"] is False  # the page then reloads its state with "quotes"
        quote = await client.call("quotes", {"symbols": ["aapl"]})
        assert [tick["symbol"] for tick in quote["ticks"]] == ["AAPL"]


async def test_each_client_gets_only_its_symbols(ticker: tuple[ModuleType, TestServer]) -> None:
    _, server = ticker
    async with connect(server, "hubbub") as apple, connect(server, "aiohttp") as both:
        await join(apple, "AAPL")
        await join(both, "AAPL")
        await join(both, "MSFT")
        assert {tick["data"]["symbol"] for tick in await rounds(apple, 2)} == {"AAPL"}
        assert {tick["data"]["symbol"] for tick in await rounds(both, 2)} == {"AAPL", "MSFT"}


async def test_leaving_stops_that_symbol_only(ticker: tuple[ModuleType, TestServer]) -> None:
    module, server = ticker
    async with connect(server) as client:
        await join(client, "AAPL")
        await join(client, "MSFT")
        await client.next_of("tick", symbol="AAPL")
        await client.call("hubbub.leave", {"room": "ticker:AAPL"})
        client.taken(of_type("tick"))  # sent before the reply
        assert {tick["data"]["symbol"] for tick in await rounds(client, 2)} == {"MSFT"}
        assert await module.app.hub.room_count("ticker:AAPL") == 0


@pytest.mark.parametrize("room", ["ticker:DOGE", "ticker:aapl", "ticker:", "AAPL", "lobby"])
async def test_only_rooms_of_known_symbols_may_be_joined(ticker: tuple[ModuleType, TestServer], room: str) -> None:
    module, server = ticker
    async with connect(server) as client:
        assert (await client.error("hubbub.join", {"room": room}))["code"] == "forbidden"
        assert await module.app.hub.room_count(room) == 0
        assert (await join(client, "AAPL"))["room"] == "ticker:AAPL"  # the known one is joined


async def test_clients_cannot_publish_ticks(ticker: tuple[ModuleType, TestServer]) -> None:
    _, server = ticker
    async with connect(server) as client:
        await join(client, "AAPL")
        refused = await client.error("hubbub.publish", {"room": "ticker:AAPL", "type": "tick", "data": {"price": 1}})
        assert refused["code"] == "forbidden"
        assert (await client.error("buy", {"symbol": "AAPL"}))["code"] == "unknown_type"


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({"symbols": ["AAPL", "ZZZZ"]}, ["symbols", 1]),
        ({"symbols": []}, ["symbols"]),
        ({"symbols": "AAPL"}, ["symbols"]),
        ({"symbols": [7]}, ["symbols", 0]),
        ({"symbols": ["A" * 17]}, ["symbols", 0]),
        ({}, ["symbols"]),
        (None, []),
    ],
)
async def test_bad_quotes_are_validation_errors(
    ticker: tuple[ModuleType, TestServer], data: Any, loc: list[Any]
) -> None:
    _, server = ticker
    async with connect(server, "hubbub") as client:
        error = await client.error("quotes", data)
        assert error["code"] == "validation_error"
        assert [field["loc"] for field in error["fields"]] == [loc]


async def test_quotes_are_current_and_an_unknown_symbol_is_named(ticker: tuple[ModuleType, TestServer]) -> None:
    _, server = ticker
    async with connect(server) as client:
        reply = await client.call("quotes", {"symbols": ["nvda", "AAPL", "NVDA"]})  # case and repeats do not matter
        assert [tick["symbol"] for tick in reply["ticks"]] == ["NVDA", "AAPL"]
        assert all(tick["price"] > 0 for tick in reply["ticks"])
        error = await client.error("quotes", {"symbols": ["doge"]})
        assert "unknown symbol 'DOGE'" in error["fields"][0]["message"]
        await client.emit("quotes", {"symbols": ["doge"]})  # an event without id: a hubbub.error
        event = await client.next(of_type("hubbub.error"))
        assert event["error"]["code"] == "validation_error" and event["error"]["type"] == "quotes"


async def test_prices_continue_from_the_kept_ticks_after_a_restart(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TICKER_INTERVAL", "0.05")
    monkeypatch.setenv("TICKER_SYMBOLS", "AAPL")
    store = f"sqlite:///{tmp_path / 'ticks.db'}"
    first = load_example("ticker")
    first.app.use_store(store)
    async with serve_app(first.app) as server, connect(server) as client:
        await join(client, "AAPL")
        last = await client.next(of_type("tick"))
    stopped_at = time.time() * 1000
    monkeypatch.setenv("TICKER_INTERVAL", "3600")  # no move: what the second server holds is what it opened with
    second = load_example("ticker")
    second.app.use_store(store)
    async with serve_app(second.app) as server, connect(server) as client:
        reply = await join(client, "AAPL", history=1)
        [kept] = reply["publications"]
        assert kept["offset"] == reply["offset"] >= last["offset"]
        assert kept["data"]["ts"] <= stopped_at  # the first server's last tick, not a new opening price
        assert second.prices["AAPL"] == kept["data"]


async def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TICKER_INTERVAL", "TICKER_SYMBOLS", "TICKER_SEED", "TICKER_HISTORY", "TICKER_HISTORY_TTL"):
        monkeypatch.delenv(name, raising=False)
    module = load_example("ticker")
    assert module.INTERVAL == 1.0 and (module.HISTORY_SIZE, module.HISTORY_TTL) == (600, 3600.0)
    assert list(module.prices) == ["AAPL", "AMZN", "GOOG", "MSFT", "NVDA", "TSLA"]


async def test_page_and_browser_client_are_served(ticker: tuple[ModuleType, TestServer]) -> None:
    _, server = ticker
    page = await server.request("GET", "/")
    assert page.status == 200 and "/hubbub/hubbub.js" in page.text
    assert (await server.request("GET", "/hubbub/hubbub.js")).status == 200
