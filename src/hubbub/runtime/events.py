"""The event a WebSocket handler or middleware receives."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any, Literal

from hubbub.errors import Abort
from hubbub.protocol.envelope import Envelope

if TYPE_CHECKING:
    from hubbub.auth.user import User
    from hubbub.runtime.connection import Connection
    from hubbub.runtime.hub import Hub
    from hubbub.web.request import Headers, QueryParams

EventType = Literal["connect", "message", "disconnect", "drain", "ping", "pong", "error"]


class Event:
    """What happened on one connection: it connected, sent a message, or went away.

    `data` is the message (str for text, bytes for binary) on "message" events and
    the payload (bytes) on "ping" and "pong"; `error` is set on "error";
    `close_code` and `close_reason` are set on "disconnect".
    """

    __slots__ = (
        "type",
        "connection",
        "data",
        "is_binary",
        "close_code",
        "close_reason",
        "error",
        "rooms",
        "name",
        "request_id",
        "timeout",
        "timed_out",
        "_abort",
    )

    def __init__(
        self,
        type: EventType,
        connection: Connection,
        data: Any = None,
        is_binary: bool = False,
    ) -> None:
        self.type = type
        self.connection = connection
        self.data = data
        self.is_binary = is_binary
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.error: Exception | None = None
        """On "error": a `ProtocolError` (the client broke RFC 6455; `code` is the close code
        it gets) or the transport's exception (e.g. ConnectionResetError)."""
        self.rooms: frozenset[str] = frozenset()
        self.name: str | None = None
        """On channel routes: the envelope's event type."""
        self.request_id: str | int | None = None
        """On channel routes: the id of a request (the handler's return value is the reply)."""
        self.timeout: float | None = None
        """Seconds the handler may run before it is cancelled (None: no limit)."""
        self.timed_out = False
        self._abort: Abort | None = None

    # ---- the connection's identity and handshake ----------------------------------

    @property
    def client_id(self) -> str:
        """The connection's id (a UUID string)."""
        return self.connection.id

    @property
    def path(self) -> str:
        """The request path the connection was opened on."""
        return self.connection.path

    @property
    def params(self) -> dict[str, Any]:
        """Path parameters of the route, e.g. {"room": "lobby"} for /chat/{room}."""
        return self.connection.params

    @property
    def query(self) -> QueryParams:
        """Query-string parameters of the handshake."""
        return self.connection.query

    @property
    def headers(self) -> Headers:
        """Headers of the handshake request."""
        return self.connection.headers

    @property
    def remote(self) -> tuple[str, int]:
        """The client's (address, port)."""
        return self.connection.remote

    @property
    def user(self) -> User | None:
        """The authenticated user of the connection, if any."""
        return self.connection.user

    @property
    def user_id(self) -> str | None:
        """The authenticated user's id, if any."""
        return self.connection.user_id

    @property
    def hub(self) -> Hub:
        """The hub: send to other clients, rooms, broadcast."""
        return self.connection.hub

    # ---- the message -------------------------------------------------------------

    @property
    def text(self) -> str:
        """The message as text (binary messages are decoded as UTF-8, invalid bytes replaced)."""
        data = self.data
        if isinstance(data, str):
            return data
        if isinstance(data, builtins.bytes):
            return data.decode("utf-8", "replace")
        return "" if data is None else str(data)

    @property
    def bytes(self) -> builtins.bytes:
        """The message as bytes (text messages are encoded as UTF-8)."""
        data = self.data
        if isinstance(data, builtins.bytes):
            return data
        return self.text.encode("utf-8")

    # ---- acting --------------------------------------------------------------------

    async def send(self, data: str | builtins.bytes | Envelope) -> bool:
        """Send to this event's connection (text for str, binary for bytes, or an Envelope)."""
        return self.connection.send_nowait(data)

    async def emit(self, type: str, data: Any = None) -> bool:
        """Send an envelope of `type` to this event's connection."""
        return self.connection.send_nowait(Envelope(type, data))

    def abort(self, status: int = 403, reason: str = "Forbidden") -> None:
        """From a before-middleware: stop this event (see `hubbub.Abort`)."""
        self._abort = Abort(status, reason)

    @property
    def aborted(self) -> Abort | None:
        """The abort, if a middleware stopped this event."""
        return self._abort

    def __repr__(self) -> str:
        extra: Any = self.data if self.type == "message" else self.close_code
        return f"<Event {self.type} {self.client_id} {extra!r}>"
