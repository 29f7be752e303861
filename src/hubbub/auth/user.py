"""Authentication: who a connection belongs to, decided once at the handshake.

An authenticator is any callable `fn(request) -> User | str | None` (async or
not); it raises `AuthError` to refuse. `JWTAuth` verifies JSON Web Tokens
(PyJWT) taken from `Authorization: Bearer`, the `token` query parameter, or a
`bearer.<token>` entry in the offered subprotocols.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from hubbub.errors import HubbubError
from hubbub.web.request import Request

CLOSE_MISSING_TOKEN: Final = 4001
CLOSE_INVALID_TOKEN: Final = 4002
CLOSE_TOO_MANY_CONNECTIONS: Final = 4003
SUBPROTOCOL_TOKEN_PREFIX: Final = "bearer."


@dataclass(slots=True)
class User:
    """An authenticated user: `id` is what hubbub routes by; `info` is yours to fill."""

    id: str
    info: Mapping[str, Any] = field(default_factory=dict)
    """Public facts about the user, shown to others (e.g. in room presence)."""
    expires_at: float | None = None
    """Unix time after which the connection is closed with 4002 unless refreshed."""
    claims: Mapping[str, Any] = field(default_factory=dict)
    """Everything the credentials said (e.g. all JWT claims); never sent to other clients."""


class AuthError(HubbubError):
    """Refuse a connection: `code` is 4001 (no credentials) or 4002 (bad credentials)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


Authenticator = Callable[[Request], "Awaitable[User | str | None] | User | str | None"]


def token_from_request(request: Request) -> str | None:
    """The bearer token of a handshake: header, then `token` query parameter, then subprotocol."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    query_token = request.query.get("token")
    if query_token:
        return query_token
    for value in request.headers.getlist("sec-websocket-protocol"):
        for offered in value.split(","):
            offered = offered.strip()
            if offered.startswith(SUBPROTOCOL_TOKEN_PREFIX) and len(offered) > len(SUBPROTOCOL_TOKEN_PREFIX):
                return offered[len(SUBPROTOCOL_TOKEN_PREFIX) :]
    return None


def as_user(result: User | str | None) -> User | None:
    """Normalise what an authenticator returned."""
    if result is None or isinstance(result, User):
        return result
    if isinstance(result, str | int) and str(result):
        return User(str(result))
    raise TypeError(f"an authenticator returned {type(result).__name__}; return a User, a user id or None")


def seconds_until(expires_at: float) -> float:
    """Seconds from now until a Unix time (negative if past)."""
    return expires_at - time.time()
