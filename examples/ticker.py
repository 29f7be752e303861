"""A live price ticker: each symbol is a room; clients subscribe to the symbols they want.

Run: hubbub run examples/ticker.py:app --port 8002, then open http://127.0.0.1:8002/

Channel /ticker (JSON envelopes, no authentication)
  symbols                      -> reply {"symbols": ["AAPL", ...]}: what can be subscribed to
  subscribe {symbols: [...]}   -> joins room "ticker:SYM" for each; reply {"ticks": [{symbol, price, ts}...]}:
                                  the current value of each at once; then "tick" {symbol, price, ts} on each move
  unsubscribe {symbols: [...]} -> leaves those rooms; reply {"symbols": [what is still subscribed]}
  An unknown symbol is a validation_error naming it.

A background task moves every price by a random walk each TICKER_INTERVAL seconds (default 1) and
sends each tick only to its symbol's room.

Environment: TICKER_INTERVAL (seconds, default 1), TICKER_SYMBOLS (comma-separated, default
AAPL,AMZN,GOOG,MSFT,NVDA,TSLA), TICKER_SEED (for repeatable prices).
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

import hubbub
from hubbub import App, Event
from hubbub.protocol.envelope import Envelope

HERE = Path(__file__).resolve().parent
ROOM_PREFIX = "ticker:"
VOLATILITY = 0.002
"""Standard deviation of one step's relative price change."""

INTERVAL = float(os.environ.get("TICKER_INTERVAL", "1"))
SYMBOLS = [s.strip().upper() for s in os.environ.get("TICKER_SYMBOLS", "AAPL,AMZN,GOOG,MSFT,NVDA,TSLA").split(",")]
SEED = os.environ.get("TICKER_SEED")

_random = random.Random(SEED)
prices: dict[str, dict[str, Any]] = {
    symbol: {"symbol": symbol, "price": round(_random.uniform(50, 500), 2), "ts": int(time.time() * 1000)}
    for symbol in SYMBOLS
    if symbol
}
"""The current tick of every symbol."""


def _known(symbol: str) -> str:
    symbol = symbol.strip().upper()
    if symbol not in prices:
        raise ValueError(f"unknown symbol {symbol!r}")
    return symbol


Symbol = Annotated[str, Field(max_length=16), AfterValidator(_known)]


class Symbols(BaseModel):
    """The symbols of a subscribe or unsubscribe (duplicates are ignored)."""

    model_config = ConfigDict(extra="forbid")
    symbols: Annotated[list[Symbol], Field(min_length=1, max_length=64)]


app = App(max_message_size=4 * 1024, message_rate=10, message_burst=20)
ticker = app.channel("/ticker", auth=False)


def room_of(symbol: str) -> str:
    """The room whose members get a symbol's ticks."""
    return ROOM_PREFIX + symbol


def subscribed(event: Event) -> list[str]:
    """The symbols this client is subscribed to, sorted."""
    return sorted(room[len(ROOM_PREFIX) :] for room in event.connection.rooms if room.startswith(ROOM_PREFIX))


@ticker.on("symbols")
async def list_symbols(event: Event) -> dict[str, Any]:
    """What can be subscribed to."""
    return {"symbols": list(prices)}


@ticker.on("subscribe", model=Symbols)
async def subscribe(event: Event) -> dict[str, Any]:
    """Join each symbol's room; the reply is their current values."""
    symbols = list(dict.fromkeys(event.data.symbols))
    for symbol in symbols:
        await event.hub.join(room_of(symbol), event.client_id)
    return {"ticks": [prices[symbol] for symbol in symbols]}


@ticker.on("unsubscribe", model=Symbols)
async def unsubscribe(event: Event) -> dict[str, Any]:
    """Leave each symbol's room."""
    for symbol in set(event.data.symbols):
        await event.hub.leave(room_of(symbol), event.client_id)
    return {"symbols": subscribed(event)}


def step(price: float) -> float:
    """One random-walk step (log-normal, so a price stays positive)."""
    return max(0.01, round(price * math.exp(_random.gauss(0.0, VOLATILITY)), 2))


@app.background
async def move_prices() -> None:
    """Every INTERVAL seconds, move every price and tell its room."""
    while True:
        await asyncio.sleep(INTERVAL)
        now = int(time.time() * 1000)
        for symbol, current in prices.items():
            tick = prices[symbol] = {"symbol": symbol, "price": step(current["price"]), "ts": now}
            await app.hub.room_broadcast(room_of(symbol), Envelope("tick", tick))


app.static("/hubbub", hubbub.STATIC_DIR)
app.static("/", HERE / "ticker_static")
