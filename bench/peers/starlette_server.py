"""Peer: Starlette on uvicorn (uvloop, httptools), implementing /echo and /fanout.

Idiomatic Starlette: ``WebSocketRoute`` endpoints, ``send_text``/``send_bytes``
per message, fan-out over a set of ``WebSocket`` objects with one send per
client. uvicorn runs with per-message deflate off, no access log and the
WebSocket implementation in :data:`WS` (the fastest of uvicorn's on this bench).
"""

from __future__ import annotations

import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bench.peers._common import BACKLOG, HOST, parse_port

WS = "websockets-sansio"
"""uvicorn's ``--ws`` implementation."""

SUBSCRIBERS: set[WebSocket] = set()


async def _send(ws: WebSocket, text: str | None, data: bytes | None) -> None:
    if text is not None:
        await ws.send_text(text)
    elif data is not None:
        await ws.send_bytes(data)


async def echo(ws: WebSocket) -> None:
    """Send every text or binary message back to its sender."""
    await ws.accept()
    while True:
        msg = await ws.receive()
        if msg["type"] == "websocket.disconnect":
            return
        await _send(ws, msg.get("text"), msg.get("bytes"))


async def fanout(ws: WebSocket) -> None:
    """Send every message to every /fanout client, sender included."""
    await ws.accept()
    SUBSCRIBERS.add(ws)
    try:
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            text, data = msg.get("text"), msg.get("bytes")
            for other in list(SUBSCRIBERS):
                try:
                    await _send(other, text, data)
                except (WebSocketDisconnect, RuntimeError, OSError):
                    SUBSCRIBERS.discard(other)
    finally:
        SUBSCRIBERS.discard(ws)


app = Starlette(routes=[WebSocketRoute("/echo", echo), WebSocketRoute("/fanout", fanout)])


def main(port: int) -> None:
    """Serve until killed."""
    uvicorn.run(
        app, host=HOST, port=port, loop="uvloop", http="httptools", ws=WS, ws_per_message_deflate=False,
        lifespan="off", log_level="warning", access_log=False, backlog=BACKLOG,
    )  # fmt: skip


if __name__ == "__main__":
    main(parse_port(__doc__ or ""))
