"""Every exception hubbub raises, in one hierarchy."""

from __future__ import annotations


class HubbubError(Exception):
    """Base class of hubbub's exceptions."""


class ProtocolError(HubbubError):
    """The peer broke RFC 6455; `code` is the close code to answer with."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Abort(HubbubError):
    """Raised (or `event.abort()`) in a before-middleware to stop an event.

    On connect the handshake is refused with HTTP `status` (403 by default);
    on a message the handler and after-middleware are skipped.
    """

    def __init__(self, status: int = 403, reason: str = "Forbidden") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class ConnectionClosed(HubbubError):
    """The connection is closed; nothing more can be sent on it."""


class ConfigurationError(HubbubError):
    """The app or server was configured in a way that cannot work."""


class HandshakeError(HubbubError):
    """The server refused a WebSocket handshake (client side)."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        super().__init__(f"handshake refused with HTTP {status}")
        self.status = status
        self.headers = headers
        self.body = body


class RequestFailed(HubbubError):
    """A client answered a server request with an error (`code`, `message`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class BrokerUnavailable(HubbubError):
    """The broker's engine (e.g. Redis) cannot be reached."""


class HTTPError(HubbubError):
    """Raise in an HTTP handler or middleware to answer `status` with `{"error": message}`.

    `message` defaults to the status's reason phrase; `headers` are added to the answer.
    """

    def __init__(self, status: int, message: str | None = None, headers: dict[str, str] | None = None) -> None:
        if message is None:
            from http import HTTPStatus

            try:
                message = HTTPStatus(status).phrase.lower()
            except ValueError:
                message = "error"
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


class InvalidBody(HTTPError, ValueError):
    """A request body that is not what the handler asked for (400); also a ValueError."""

    def __init__(self, message: str) -> None:
        super().__init__(400, message)


class ClientError(HubbubError):
    """What `hubbub.client.Client` raises for a request or send that failed: `code` says why
    (the server's error code, or "timeout", "disconnected", "closed", "queue_full"),
    `message` says it for humans, and `extra` holds the error's other members."""

    def __init__(self, code: str, message: str, **extra: object) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.extra = extra


class RequestTimeout(ClientError, TimeoutError):
    """No reply to a client request within its timeout."""

    def __init__(self, message: str) -> None:
        super().__init__("timeout", message)


class QueueFull(ClientError):
    """The client is offline and its bounded queue of waiting messages is full."""

    def __init__(self, message: str) -> None:
        super().__init__("queue_full", message)
