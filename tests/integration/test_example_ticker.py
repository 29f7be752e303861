"""examples/ticker.py over real sockets: subscribe, current values at once, ticks only for one's symbols."""

from __future__ import annotations

from collections.abc import AsyncIterator
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
    module = load_example("ticker")
    async with serve_app(module.app) as server:
        yield module, server


def connect(server: TestServer, library: Library = "websockets") -> Any:
    """An anonymous channel connection (the ticker needs no token)."""
    return open_client(server.url("/ticker"), library)


async def rounds(client: EnvelopeClient, count: int) -> list[dict[str, Any]]:
    """The ticks of `count` whole price moves (ticks of one move share a timestamp); the move in
    progress when the wait began and the one that ends it are left out."""
    ticks: list[dict[str, Any]] = []
    while len({tick["ts"] for tick in ticks}) < count + 2:
        ticks.append(await client.next_of("tick"))
    return [tick for tick in ticks if tick["ts"] not in (ticks[0]["ts"], ticks[-1]["ts"])]


async def test_symbols_are_listed_and_no_token_is_needed(ticker: tuple[ModuleType, TestServer]) -> None:
    _, server = ticker
    async with connect(server, "aiohttp") as client:
        assert client.welcome["user"] is None
        assert await client.call("symbols") == {"symbols": SYMBOLS}


async def test_subscribe_answers_current_values_then_streams_ticks(ticker: tuple[ModuleType, TestServer]) -> None:
    module, server = ticker
    async with connect(server) as client:
        reply = await client.call("subscribe", {"symbols": ["nvda", "AAPL", "NVDA"]})  # case and repeats do not matter
        assert [tick["symbol"] for tick in reply["ticks"]] == ["NVDA", "AAPL"]
        for tick in reply["ticks"]:
            assert set(tick) == {"symbol", "price", "ts"} and tick["price"] > 0
        ticks = await rounds(client, 3)
        assert {tick["symbol"] for tick in ticks} == {"AAPL", "NVDA"}  # never MSFT
        for symbol in ("AAPL", "NVDA"):
            mine = [tick for tick in ticks if tick["symbol"] == symbol]
            assert len(mine) == len({tick["ts"] for tick in ticks})  # one tick per move
            assert [tick["ts"] for tick in mine] == sorted(tick["ts"] for tick in mine)
        prices = [tick["price"] for tick in ticks]
        assert len(set(prices)) > 2  # the walk moves
        last = await client.next_of("tick", symbol="AAPL")
        assert module.prices["AAPL"]["price"] == last["price"] or module.prices["AAPL"]["ts"] > last["ts"]


async def test_each_client_gets_only_its_symbols(ticker: tuple[ModuleType, TestServer]) -> None:
    _, server = ticker
    async with connect(server, "hubbub") as apple, connect(server, "aiohttp") as both:
        await apple.call("subscribe", {"symbols": ["AAPL"]})
        await both.call("subscribe", {"symbols": ["AAPL", "MSFT"]})
        assert {tick["symbol"] for tick in await rounds(apple, 2)} == {"AAPL"}
        assert {tick["symbol"] for tick in await rounds(both, 2)} == {"AAPL", "MSFT"}


async def test_unsubscribe_stops_that_symbol_only(ticker: tuple[ModuleType, TestServer]) -> None:
    module, server = ticker
    async with connect(server) as client:
        await client.call("subscribe", {"symbols": ["AAPL", "MSFT"]})
        await client.next_of("tick", symbol="AAPL")
        assert await client.call("unsubscribe", {"symbols": ["AAPL"]}) == {"symbols": ["MSFT"]}
        client.taken(of_type("tick"))  # sent before the reply
        assert {tick["symbol"] for tick in await rounds(client, 2)} == {"MSFT"}
        assert await module.app.hub.room_count("ticker:AAPL") == 0
        assert await client.call("unsubscribe", {"symbols": ["MSFT", "NVDA"]}) == {"symbols": []}


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
async def test_bad_subscriptions_are_validation_errors(
    ticker: tuple[ModuleType, TestServer], data: Any, loc: list[Any]
) -> None:
    module, server = ticker
    async with connect(server, "hubbub") as client:
        error = await client.error("subscribe", data)
        assert error["code"] == "validation_error"
        assert [field["loc"] for field in error["fields"]] == [loc]
        assert await module.app.hub.room_count("ticker:AAPL") == 0  # nothing half-subscribed
        assert (await client.error("unsubscribe", data))["code"] == "validation_error"


async def test_unknown_symbol_is_named(ticker: tuple[ModuleType, TestServer]) -> None:
    _, server = ticker
    async with connect(server) as client:
        error = await client.error("subscribe", {"symbols": ["doge"]})
        assert "unknown symbol 'DOGE'" in error["fields"][0]["message"]
        await client.emit("subscribe", {"symbols": ["doge"]})  # an event without id: a hubbub.error
        event = await client.next(of_type("hubbub.error"))
        assert event["error"]["code"] == "validation_error" and event["error"]["type"] == "subscribe"


async def test_rooms_cannot_be_joined_directly(ticker: tuple[ModuleType, TestServer]) -> None:
    _, server = ticker
    async with connect(server) as client:
        assert (await client.error("hubbub.join", {"room": "ticker:AAPL"}))["code"] == "forbidden"
        assert (await client.error("buy", {"symbol": "AAPL"}))["code"] == "unknown_type"


async def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TICKER_INTERVAL", "TICKER_SYMBOLS", "TICKER_SEED"):
        monkeypatch.delenv(name, raising=False)
    module = load_example("ticker")
    assert module.INTERVAL == 1.0
    assert list(module.prices) == ["AAPL", "AMZN", "GOOG", "MSFT", "NVDA", "TSLA"]


async def test_page_and_browser_client_are_served(ticker: tuple[ModuleType, TestServer]) -> None:
    _, server = ticker
    page = await server.request("GET", "/")
    assert page.status == 200 and "/hubbub/hubbub.js" in page.text
    assert (await server.request("GET", "/hubbub/hubbub.js")).status == 200
