"""Rate limits: a token bucket per connection (rate_limited errors, then a 1008 close) and
handshakes per client address (429 with retry-after)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import aiohttp
import orjson
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from hubbub import App, ConnectionClosed, Event
from hubbub.client import WebSocketClient
from hubbub.errors import HandshakeError
from hubbub.testing import serve_app, wait_for
from tests.integration.channel_peers import JSON, Peer

# A bucket that cannot refill noticeably during a test: `BURST` messages pass, the rest are refused.
RATE = 0.01
BURST = 3


def make_app(calls: Counter[str], **options: Any) -> App:
    """A channel counting its "count" events per client, and a raw echo route."""
    app = App(message_rate=RATE, message_burst=BURST, **options)
    chat = app.channel("/chat")

    @chat.on("count")
    async def count(event: Event) -> int:
        calls[event.client_id] += 1
        return calls[event.client_id]

    @app.websocket("/raw")
    async def echo(event: Event) -> None:
        calls[event.client_id] += 1
        await event.send(event.data)

    return app


async def test_over_the_rate_messages_are_refused_and_not_handled() -> None:
    """After the burst every message gets a rate_limited error and never reaches its handler."""
    calls: Counter[str] = Counter()
    async with (
        serve_app(make_app(calls, rate_limit_strikes=None)) as server,
        aiohttp.ClientSession() as session,
        session.ws_connect(server.url("/chat"), protocols=(JSON,)) as ws,
    ):
        peer = Peer.of_aiohttp(ws)
        client_id = (await peer.welcome())["client_id"]
        for id in range(1, 8):
            await peer.send({"type": "count", "id": id})
        replies = [await peer.recv() for _ in range(7)]
        assert replies[:BURST] == [{"id": id, "data": id} for id in range(1, BURST + 1)]
        for refused in replies[BURST:]:
            assert refused["type"] == "hubbub.error" and refused["error"]["code"] == "rate_limited"
            assert refused["error"]["message"]
        assert not ws.closed
    assert calls == Counter({client_id: BURST})


async def test_repeat_offender_is_closed_with_1008_and_others_are_unaffected() -> None:
    """After rate_limit_strikes refusals the connection is closed with 1008; another client keeps working."""
    calls: Counter[str] = Counter()
    async with (
        serve_app(make_app(calls, rate_limit_strikes=2)) as server,
        ws_connect(server.url("/chat"), subprotocols=[JSON]) as ws_calm,
    ):
        calm = Peer.of_websockets(ws_calm)
        calm_id = (await calm.welcome())["client_id"]
        noisy_ws = await server.connect("/chat", subprotocols=[JSON])
        noisy = Peer.of_hubbub(noisy_ws)
        noisy_id = (await noisy.welcome())["client_id"]
        for id in range(1, BURST + 3):
            await noisy.send({"type": "count", "id": id})
        assert await noisy_ws.wait_closed(timeout=5) == 1008
        assert "rate" in noisy_ws.close_reason
        codes = [orjson.loads(frame).get("error", {}).get("code") for frame in await drain(noisy_ws)]
        assert codes == [None] * BURST + ["rate_limited"] * 2
        assert await calm.request("count", id=1) == {"id": 1, "data": 1}
        await wait_for(lambda: server.app.hub.get(noisy_id) is None, timeout=5)
        assert server.app.hub.get(calm_id) is not None
    assert calls == Counter({noisy_id: BURST, calm_id: 1})


async def drain(ws: WebSocketClient) -> list[str | bytes]:
    """Every message left in a closed hubbub.client connection."""
    frames: list[str | bytes] = []
    while True:
        try:
            frames.append(await ws.recv(timeout=1))
        except (ConnectionClosed, TimeoutError):
            return frames


async def test_raw_routes_are_limited_too() -> None:
    """A raw route has no error envelope: over-rate messages are dropped, and strikes close with 1008."""
    calls: Counter[str] = Counter()
    async with (
        serve_app(make_app(calls, rate_limit_strikes=2)) as server,
        aiohttp.ClientSession() as session,
        session.ws_connect(server.url("/raw")) as ws,
    ):
        for n in range(BURST + 2):
            await ws.send_str(f"m{n}")
        echoed = [(await ws.receive(timeout=5)).data for _ in range(BURST)]
        assert echoed == [f"m{n}" for n in range(BURST)]
        closing = await ws.receive(timeout=5)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 1008
    assert sum(calls.values()) == BURST


async def test_handshakes_per_ip_are_limited_with_429() -> None:
    """More handshakes from one address than handshakes_per_ip in the window: 429 with retry-after."""
    calls: Counter[str] = Counter()
    async with serve_app(make_app(calls, handshakes_per_ip=2, handshake_window=60)) as server:
        first = await server.connect("/chat", subprotocols=[JSON])
        async with ws_connect(server.url("/raw")) as second:
            with pytest.raises(HandshakeError) as refused:
                await server.connect("/chat", subprotocols=[JSON])
            assert refused.value.status == 429
            assert 1 <= int(refused.value.headers["retry-after"]) <= 60
            assert "error" in orjson.loads(refused.value.body)
            with pytest.raises(InvalidStatus) as invalid:
                async with ws_connect(server.url("/raw")):
                    pass
            assert invalid.value.response.status_code == 429
            assert 1 <= int(invalid.value.response.headers["retry-after"]) <= 60
            await second.send("still here")
            assert await asyncio.wait_for(second.recv(), 5) == "still here"
        await first.close()
