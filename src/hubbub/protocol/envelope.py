"""Envelopes: the typed messages of channel routes (see docs/protocol.md, "Envelope routes").

Client to server:  {"type": T, "data": D}            an event
                   {"type": T, "data": D, "id": I}   a request; the reply carries the same id
                   {"id": I, "data": D}              the reply to a server request
                   {"id": I, "error": E}             an error reply to a server request
Server to client:  the same shapes; errors are {"code": C, "message": M[, "fields": [...]]}.
"""

from __future__ import annotations

from typing import Any, Final

PROTOCOL_VERSION: Final = 1

# Error codes (stable; clients may switch on them).
INVALID_MESSAGE: Final = "invalid_message"
UNKNOWN_TYPE: Final = "unknown_type"
VALIDATION_ERROR: Final = "validation_error"
HANDLER_ERROR: Final = "handler_error"
TIMEOUT: Final = "timeout"
FORBIDDEN: Final = "forbidden"
RATE_LIMITED: Final = "rate_limited"
UNAUTHORIZED: Final = "unauthorized"
BAD_REQUEST: Final = "bad_request"

# Built-in event types.
WELCOME: Final = "hubbub.welcome"
ERROR: Final = "hubbub.error"
JOIN: Final = "hubbub.join"
LEAVE: Final = "hubbub.leave"
PUBLISH: Final = "hubbub.publish"
PRESENCE: Final = "hubbub.presence"
REFRESH: Final = "hubbub.refresh"


class Envelope:
    """A typed message: `Envelope("chat", {"text": "hi"})`. Hub and connection sends accept it
    wherever they accept text or bytes; each recipient gets it in its own codec."""

    __slots__ = ("type", "data", "id", "error", "room", "offset")

    def __init__(
        self,
        type: str | None,
        data: Any = None,
        *,
        id: Any = None,
        error: dict[str, Any] | None = None,
        room: str | None = None,
        offset: int | None = None,
    ):
        self.type = type
        self.data = data
        self.id = id
        self.error = error
        self.room = room
        self.offset = offset
        """A room publication's position in `room`'s history (rooms that keep history)."""

    def to_dict(self) -> dict[str, Any]:
        """The envelope as the map that goes on the wire (absent fields left out)."""
        out: dict[str, Any] = {}
        if self.type is not None:
            out["type"] = self.type
        if self.id is not None:
            out["id"] = self.id
        if self.error is not None:
            out["error"] = self.error
        else:
            out["data"] = self.data
        if self.offset is not None:
            out["room"] = self.room
            out["offset"] = self.offset
        return out

    def __repr__(self) -> str:
        return f"Envelope({self.to_dict()!r})"


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """An error object: {"code": ..., "message": ..., ...extra}."""
    return {"code": code, "message": message, **extra}


class EnvelopeError(Exception):
    """Raise in a channel handler to answer with this error instead of a result."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The error object sent to the client."""
        return error_body(self.code, self.message, **self.extra)
