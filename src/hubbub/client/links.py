"""Opening a Client's connection: the bearer token, a WebSocket or (when allowed) the SSE + POST
fallback, the welcome; and what a refused handshake means for reconnecting."""

from __future__ import annotations

import inspect
import ssl as ssl_module
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from hubbub.client.sse import SseClient, open_sse
from hubbub.client.websocket import WebSocketClient, connect
from hubbub.errors import ConnectionClosed, HandshakeError

SUBPROTOCOL = "hubbub.v1.json"

Link = WebSocketClient | SseClient
"""A connection: a WebSocket, or the SSE + POST fallback."""
TokenSource = str | Callable[[], str | Awaitable[str | None] | None] | None

_NOT_A_TRANSPORT_PROBLEM = frozenset({401, 429, 503})
"""Handshake refusals the fallback would get too (auth, rate limits, capacity)."""


class Refused(Exception):
    """The connection closed before its welcome (e.g. refused authentication with a close code)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed before the welcome: {code} {reason!r}")
        self.code = code
        self.reason = reason


async def with_token(headers: dict[str, str], source: TokenSource) -> dict[str, str]:
    """The handshake's headers: `headers` and, if the source gives a token, `Authorization: Bearer`."""
    token = source() if callable(source) else source
    if inspect.isawaitable(token):
        token = await token
    headers = dict(headers)
    if token:
        headers["authorization"] = f"Bearer {token}"
    return headers


async def open_link(
    url: str,
    headers: dict[str, str],
    *,
    transports: tuple[str, ...],
    current: str | None,
    timeout: float,
    ssl: ssl_module.SSLContext | None,
) -> tuple[Link, str]:
    """A WebSocket, or (after a WebSocket attempt fails, if "sse" is allowed, and from then on) the
    SSE + POST fallback; with the name of the transport used."""
    if current != "sse" and "websocket" in transports:
        try:
            ws = await connect(url, headers=headers, subprotocols=[SUBPROTOCOL], timeout=timeout, ssl=ssl)
        except HandshakeError as exc:
            if "sse" not in transports or exc.status in _NOT_A_TRANSPORT_PROBLEM:
                raise
        except (OSError, TimeoutError, ConnectionClosed):
            if "sse" not in transports:
                raise
        else:
            return ws, "websocket"
    return await open_sse(url, headers=headers, timeout=timeout, ssl=ssl), "sse"


async def read_welcome(ws: Link, timeout: float) -> dict[str, Any]:
    """The welcome's data; `Refused` if the connection closed or spoke first with something else."""
    try:
        first = await ws.recv(timeout=timeout)
        welcome = orjson.loads(first)
    except ConnectionClosed:
        raise Refused(ws.close_code, ws.close_reason) from None
    except (TimeoutError, orjson.JSONDecodeError):
        ws.abort()
        raise
    if not isinstance(welcome, dict) or welcome.get("type") != "hubbub.welcome":
        ws.abort()
        raise Refused(None, "the first message was not a welcome")
    data = welcome.get("data")
    return data if isinstance(data, dict) else {}


def with_device(url: str, device: str) -> str:
    """`url` with its `device` query parameter set to `device`."""
    parts = urlsplit(url)
    query = [(name, value) for name, value in parse_qsl(parts.query, keep_blank_values=True) if name != "device"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("device", device)])))


def close_code_of(exc: HandshakeError) -> int | None:
    """The close code a refusing server put in its JSON body ({"code": 4003, ...}), if any."""
    try:
        body = orjson.loads(exc.body) if exc.body else None
    except orjson.JSONDecodeError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, int) else None


def refused_for_good(exc: HandshakeError) -> bool:
    """Refusals a retry cannot fix: authentication (401, or 429 with code 4003), 403, 404, 400."""
    if exc.status in (400, 401, 403, 404, 426):
        return True
    return exc.status == 429 and close_code_of(exc) == 4003


def retry_after(exc: HandshakeError) -> float:
    """The server's retry-after hint in seconds (0 without one), capped at 5 minutes."""
    value = exc.headers.get("retry-after", "")
    try:
        return min(300.0, max(0.0, float(value)))
    except ValueError:
        return 0.0
