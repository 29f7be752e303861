"""What the transport asks of the app: a `Dispatcher` answers requests and upgrades, a `Session`
is the app's side of an accepted WebSocket (`ClosingSession`: one accepted only to be closed)."""

from __future__ import annotations

from typing import Protocol

from hubbub.transport.websocket import WebSocketListener, WebSocketProtocol
from hubbub.web.request import Request
from hubbub.web.response import Response


class Session(WebSocketListener, Protocol):
    """The app's side of an accepted WebSocket connection."""

    subprotocol: str | None

    def attach(self, ws: WebSocketProtocol) -> None:
        """The handshake is done and `ws` is open."""

    def abandon(self) -> None:
        """The app accepted, but the handshake was dropped before it completed."""


class Dispatcher(Protocol):
    """What the server asks of the app."""

    async def handle_http(self, request: Request) -> Response:
        """Answer a plain HTTP request."""

    async def handle_upgrade(self, request: Request) -> Response | Session:
        """Accept a WebSocket upgrade (return a Session) or refuse it (return a Response)."""


class ClosingSession:
    """A connection accepted only to be closed at once with `code` (e.g. over capacity, or
    refused authentication, where browsers can read a close code but not an HTTP status)."""

    subprotocol: str | None = None

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason

    def ws_message(self, data: str | bytes, is_binary: bool) -> None:
        pass

    def ws_closed(self, code: int, reason: str) -> None:
        pass

    def ws_drain(self) -> None:
        pass

    def ws_ping(self, payload: bytes) -> None:
        pass

    def ws_pong(self, payload: bytes) -> None:
        pass

    def ws_error(self, error: Exception) -> None:
        pass

    def attach(self, ws: WebSocketProtocol) -> None:
        ws.close(self.code, self.reason)

    def abandon(self) -> None:
        pass
