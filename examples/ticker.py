"""A live price ticker: each symbol is a room with history; clients join the symbols they want.

Run: hubbub run examples/ticker.py:app --port 8002, then open http://127.0.0.1:8002/
(add --store sqlite:///ticker.db to keep the ticks, and the prices, across restarts)

Channel /ticker (JSON envelopes, no authentication)
  symbols                      -> reply {"symbols": ["AAPL", ...]}: what can be joined
  hubbub.join {room: "ticker:SYM", history: 1}
                               -> the room's latest tick at once (in the reply's "publications"), then
                                  "tick" {symbol, price, ts} on each move, each with the room's "offset";
                                  after a reconnect, join with {"since": {"offset", "epoch"}} to get every
                                  tick missed, once, in order (hubbub.js does it), or "recovered": false
  hubbub.leave {room}          -> no more ticks of that symbol
  quotes {symbols: [...]}      -> reply {"ticks": [{symbol, price, ts}...]}: the current value of each (for a
                                  client whose recovery answered "recovered": false, to reload its state)
  Only the rooms of known symbols may be joined (others: "forbidden"); clients never publish. An unknown
  symbol in "quotes" is a validation_error naming it.

A background task moves every price by a random walk each TICKER_INTERVAL seconds (default 1) and
publishes each tick to its symbol's room, which keeps the last TICKER_HISTORY ticks (default 600) for
TICKER_HISTORY_TTL seconds (default 3600). On start the prices continue from the last kept ticks, if any.

Environment: TICKER_INTERVAL (seconds, default 1), TICKER_SYMBOLS (comma-separated, default
AAPL,AMZN,GOOG,MSFT,NVDA,TSLA), TICKER_SEED (for repeatable prices), TICKER_HISTORY, TICKER_HISTORY_TTL.
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
HISTORY_SIZE = int(os.environ.get("TICKER_HISTORY", "600"))
HISTORY_TTL = float(os.environ.get("TICKER_HISTORY_TTL", "3600"))

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
    """The symbols of a quotes request (duplicates are ignored)."""

    model_config = ConfigDict(extra="forbid")
    symbols: Annotated[list[Symbol], Field(min_length=1, max_length=64)]


app = App(max_message_size=4 * 1024, message_rate=10, message_burst=20)
ticker = app.channel("/ticker", auth=False)
app.history(ROOM_PREFIX + "*", size=HISTORY_SIZE, ttl=HISTORY_TTL)


def room_of(symbol: str) -> str:
    """The room whose members get a symbol's ticks."""
    return ROOM_PREFIX + symbol


@ticker.authorize
def may(event: Event, action: str, room: str) -> bool:
    """The room of a known symbol may be joined and left; only the app publishes ticks."""
    return action in ("join", "leave") and room.startswith(ROOM_PREFIX) and room[len(ROOM_PREFIX) :] in prices


@ticker.on("symbols")
async def list_symbols(event: Event) -> dict[str, Any]:
    """What can be joined."""
    return {"symbols": list(prices)}


@ticker.on("quotes", model=Symbols)
async def quotes(event: Event) -> dict[str, Any]:
    """The current value of each symbol asked for."""
    return {"ticks": [prices[symbol] for symbol in dict.fromkeys(event.data.symbols)]}


def step(price: float) -> float:
    """One random-walk step (log-normal, so a price stays positive)."""
    return max(0.01, round(price * math.exp(_random.gauss(0.0, VOLATILITY)), 2))


@app.on_startup
async def open_prices() -> None:
    """Continue from each symbol's last kept tick; a symbol without one publishes its opening price,
    so a client joining with {"history": 1} always gets a price at once."""
    for symbol in prices:
        kept = (await app.hub.room_history(room_of(symbol), last=1)).publications()
        if kept and isinstance(kept[-1].get("data"), dict):
            prices[symbol] = kept[-1]["data"]
        else:
            await app.hub.room_broadcast(room_of(symbol), Envelope("tick", prices[symbol]))


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
