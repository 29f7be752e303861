"""Peer: the ``websockets`` asyncio server on uvloop, implementing /echo and /fanout.

Idiomatic use of the library: ``async for`` over messages, ``send`` for echo,
``websockets.broadcast`` for fan-out, compression off.
"""

from __future__ import annotations

import uvloop
from websockets.asyncio.server import ServerConnection, broadcast, serve

from bench.peers._common import BACKLOG, HOST, parse_port

SUBSCRIBERS: set[ServerConnection] = set()


async def echo(ws: ServerConnection) -> None:
    """Send every message back to its sender."""
    async for message in ws:
        await ws.send(message)


async def fanout(ws: ServerConnection) -> None:
    """Broadcast every message to every /fanout client, sender included."""
    SUBSCRIBERS.add(ws)
    try:
        async for message in ws:
            broadcast(SUBSCRIBERS, message)
    finally:
        SUBSCRIBERS.discard(ws)


async def handler(ws: ServerConnection) -> None:
    """Route by request path."""
    path = ws.request.path if ws.request is not None else ""
    if path == "/echo":
        await echo(ws)
    elif path == "/fanout":
        await fanout(ws)
    else:
        await ws.close(1008, "unknown path")


async def main(port: int) -> None:
    """Serve until killed."""
    async with serve(handler, HOST, port, compression=None, backlog=BACKLOG) as server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(parse_port(__doc__ or "")))
