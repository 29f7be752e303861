"""Peer: aiohttp.web on uvloop, implementing /echo and /fanout (compress=False)."""

from __future__ import annotations

import asyncio

import uvloop
from aiohttp import WSMsgType, web

from bench.peers._common import BACKLOG, HOST, parse_port

SUBSCRIBERS: set[web.WebSocketResponse] = set()


async def echo(request: web.Request) -> web.WebSocketResponse:
    """Send every text or binary message back to its sender."""
    ws = web.WebSocketResponse(compress=False)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


async def _send(ws: web.WebSocketResponse, data: str | bytes) -> None:
    try:
        if isinstance(data, str):
            await ws.send_str(data)
        else:
            await ws.send_bytes(data)
    except ConnectionError:
        pass


async def fanout(request: web.Request) -> web.WebSocketResponse:
    """Send every message to every /fanout client, sender included."""
    ws = web.WebSocketResponse(compress=False)
    await ws.prepare(request)
    SUBSCRIBERS.add(ws)
    try:
        async for msg in ws:
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                for other in list(SUBSCRIBERS):
                    await _send(other, msg.data)
    finally:
        SUBSCRIBERS.discard(ws)
    return ws


async def main(port: int) -> None:
    """Serve until killed."""
    app = web.Application()
    app.router.add_get("/echo", echo)
    app.router.add_get("/fanout", fanout)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, HOST, port, backlog=BACKLOG).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main(parse_port(__doc__ or "")))
