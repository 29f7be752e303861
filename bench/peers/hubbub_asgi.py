"""Peer: hubbub's bench contract app (examples/echo.py) as an ASGI app on uvicorn.

The same uvicorn settings as the Starlette peer (uvloop, httptools, the
WebSocket implementation in :data:`bench.peers.starlette_server.WS`, no
deflate, no access log): the figure against ``hubbub`` is what the native
server gains over serving the same App through ASGI.
"""

from __future__ import annotations

import uvicorn
from examples.echo import app

from bench.peers._common import BACKLOG, HOST, parse_port
from bench.peers.starlette_server import WS


def main(port: int) -> None:
    """Serve until killed."""
    uvicorn.run(
        app, host=HOST, port=port, loop="uvloop", http="httptools", ws=WS, ws_per_message_deflate=False,
        lifespan="on", log_level="warning", access_log=False, backlog=BACKLOG,
    )  # fmt: skip


if __name__ == "__main__":
    main(parse_port(__doc__ or ""))
