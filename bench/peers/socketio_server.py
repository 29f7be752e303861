"""Peer: python-socketio (Socket.IO 5 / Engine.IO 4) in aiohttp mode on uvloop.

The Socket.IO version of the bench contract, spoken by the load generator over
``/socket.io/?EIO=4&transport=websocket`` (see :mod:`bench.wire`):

- event ``echo``: emitted back to its sender only;
- event ``fanout``: emitted to the room ``fanout``, which a client joins by
  connecting with the auth payload ``{"join": "fanout"}``.

aiohttp mode: a little faster on echo than ASGI mode on uvicorn
(websockets-sansio) on this bench, the same on fan-out. No compression: the
load generator offers no permessage-deflate and HTTP compression is off.
"""

from __future__ import annotations

import asyncio
from typing import Any

import socketio  # type: ignore[import-untyped]
import uvloop
from aiohttp import web

from bench.peers._common import BACKLOG, HOST, parse_port

sio = socketio.AsyncServer(async_mode="aiohttp", http_compression=False, transports=["websocket"])


async def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
    """Join the room named by the auth payload, if any."""
    if isinstance(auth, dict) and isinstance(auth.get("join"), str):
        await sio.enter_room(sid, auth["join"])


async def echo(sid: str, data: Any) -> None:
    """Emit the event back to its sender."""
    await sio.emit("echo", data, to=sid)


async def fanout(sid: str, data: Any) -> None:
    """Emit the event to every client in the fan-out room, sender included."""
    await sio.emit("fanout", data, room="fanout")


sio.on("connect", connect)
sio.on("echo", echo)
sio.on("fanout", fanout)


async def main(port: int) -> None:
    """Serve until killed."""
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, HOST, port, backlog=BACKLOG).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main(parse_port(__doc__ or "")))
