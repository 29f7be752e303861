"""Peer: picows (Cython WebSocket) on uvloop, implementing /echo and /fanout.

Idiomatic low-level use of the library: one ``WSListener`` per connection,
``transport.send`` for echo (picows has no compression). Fan-out builds the
server frame once and writes those same bytes to every subscriber's
``underlying_transport`` (a public attribute of ``WSTransport``) instead of
one ``send`` per client, which would build the frame again each time.
"""

from __future__ import annotations

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

from bench.peers._common import BACKLOG, HOST, parse_port

SUBSCRIBERS: set[WSTransport] = set()


def server_frame(msg_type: WSMsgType, payload: bytes) -> bytes:
    """One complete, final, unmasked server frame carrying ``payload``."""
    n = len(payload)
    first = 0x80 | msg_type.value
    if n < 126:
        head = bytes((first, n))
    elif n < 1 << 16:
        head = bytes((first, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, 127)) + n.to_bytes(8, "big")
    return head + payload


class Echo(WSListener):
    """Send every text or binary message back to its sender."""

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        """Echo data frames; answer a close."""
        if frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION):
            transport.send(frame.msg_type, frame.get_payload_as_memoryview(), frame.fin)
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


class Fanout(WSListener):
    """Send every message to every /fanout client, sender included."""

    def on_ws_connected(self, transport: WSTransport) -> None:
        """Subscribe."""
        SUBSCRIBERS.add(transport)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        """Unsubscribe."""
        SUBSCRIBERS.discard(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        """Broadcast one pre-built frame (single-frame messages; the contract sends no fragments)."""
        if frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
            data = server_frame(frame.msg_type, frame.get_payload_as_bytes())
            for other in SUBSCRIBERS:
                if not other.is_close_frame_sent:
                    other.underlying_transport.write(data)
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


def route(request: WSUpgradeRequest) -> WSListener | None:
    """Listener for the request path; None answers 404."""
    if request.path == b"/echo":
        return Echo()
    if request.path == b"/fanout":
        return Fanout()
    return None


async def main(port: int) -> None:
    """Serve until killed."""
    server = await ws_create_server(route, HOST, port, backlog=BACKLOG)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(parse_port(__doc__ or "")))
