"""What the load generator says on a route: plain WebSocket messages or Socket.IO events.

Plain peers serve ``/echo`` and ``/fanout`` and get the payload as a text
message. Socket.IO peers are reached on one Engine.IO v4 WebSocket path;
the route becomes the event name (``42["echo","<payload>"]``) and a fan-out
client joins the ``fanout`` room with its namespace connect packet
(``40{"join":"fanout"}``). The Engine.IO open packet, the namespace connect
and pings are handled by :class:`bench.loadgen.WsClient`.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench import wsframe

SOCKETIO_PATH = "/socket.io/?EIO=4&transport=websocket"


@dataclass(frozen=True)
class Wire:
    """How one peer is spoken to."""

    socketio: bool = False

    def path(self, route: str) -> str:
        """Request path for ``route`` (``echo`` or ``fanout``)."""
        return SOCKETIO_PATH if self.socketio else f"/{route}"

    def message(self, route: str, payload: bytes) -> bytes:
        """Text message payload carrying ``payload`` (ASCII, no quotes or backslashes) on ``route``."""
        return b'42["%s","%s"]' % (route.encode(), payload) if self.socketio else payload

    def frame(self, route: str, payload: bytes) -> bytes:
        """The masked client frame of :meth:`message`."""
        return wsframe.client_frame(self.message(route, payload))

    def connect_packet(self, route: str) -> bytes | None:
        """Socket.IO namespace connect packet for ``route``; None for plain WebSocket."""
        if not self.socketio:
            return None
        return b'40{"join":"fanout"}' if route == "fanout" else b"40"


PLAIN = Wire()
SOCKETIO = Wire(socketio=True)
