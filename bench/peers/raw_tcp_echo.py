"""Peer: a plain uvloop ``asyncio.Protocol`` that echoes bytes (no WebSocket).

This is the ceiling for the echo scenario: the load generator sends it the same
pre-built frames and counts returned bytes, which shows how many round trips
per second the load generator itself can drive.
"""

from __future__ import annotations

import asyncio
from typing import cast

import uvloop

from bench.peers._common import BACKLOG, HOST, parse_port


class Echo(asyncio.Protocol):
    """Write back whatever arrives."""

    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        """Echo the bytes unchanged."""
        self.transport.write(data)


async def main(port: int) -> None:
    """Serve until killed."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, HOST, port, backlog=BACKLOG)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(parse_port(__doc__ or "")))
