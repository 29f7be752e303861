"""The server side of the RFC 6455 opening handshake."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence

from hubbub.transport.deflate import CompressionMode, DeflateParams, negotiate
from hubbub.web.request import Request
from hubbub.web.response import Response, error_response

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept value for a client's Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


def check_upgrade(request: Request) -> Response | str:
    """Validate an upgrade request; return its Sec-WebSocket-Key, or the error response."""
    headers = request.headers
    if request.method != "GET":
        return error_response(405, "websocket upgrade must use GET", {"allow": "GET"})
    if request.http_version != "1.1":
        return error_response(400, "websocket upgrade needs HTTP/1.1")
    connection_tokens = {token.strip().lower() for token in headers.get("connection", "").split(",")}
    if "upgrade" not in connection_tokens:
        return error_response(400, "missing 'Connection: Upgrade'")
    if headers.get("sec-websocket-version", "") != "13":
        return error_response(426, "unsupported websocket version", {"sec-websocket-version": "13"})
    key = headers.get("sec-websocket-key", "")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError
    except (binascii.Error, ValueError):
        return error_response(400, "invalid Sec-WebSocket-Key")
    return key


def offered_subprotocols(request: Request) -> list[str]:
    """The subprotocols the client offers, in its order of preference."""
    offered: list[str] = []
    for value in request.headers.getlist("sec-websocket-protocol"):
        offered.extend(token.strip() for token in value.split(",") if token.strip())
    return offered


def choose_subprotocol(offered: Sequence[str], supported: Sequence[str]) -> str | None:
    """The first subprotocol of the client's list that the server supports."""
    for name in offered:
        if name in supported:
            return name
    return None


def origin_allowed(request: Request, allowed: Sequence[str] | None) -> bool:
    """Whether the Origin header (if any) is in the allowed list; requests without one pass."""
    if allowed is None:
        return True
    origin = request.headers.get("origin")
    return origin is None or origin in allowed or "*" in allowed


def negotiate_deflate(request: Request, mode: CompressionMode) -> DeflateParams | None:
    """permessage-deflate parameters for this request, if compression is on and offered."""
    return negotiate(request.headers.getlist("sec-websocket-extensions"), mode)


def switching_protocols(key: str, subprotocol: str | None, deflate: DeflateParams | None) -> bytes:
    """The 101 response that completes the handshake."""
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "upgrade: websocket",
        "connection: Upgrade",
        f"sec-websocket-accept: {accept_key(key)}",
    ]
    if subprotocol is not None:
        lines.append(f"sec-websocket-protocol: {subprotocol}")
    if deflate is not None:
        lines.append(f"sec-websocket-extensions: {deflate.response_header()}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
