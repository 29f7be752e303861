"""hubbub: a real-time WebSocket server framework.

Everything an app uses is importable from here (`from hubbub import App, Event, ...`);
the asyncio client is `hubbub.client`, the test helpers `hubbub.testing`.
`RedisBroker` (the Redis engine) needs the `hubbub[redis]` extra and is imported on first use.

from hubbub import App

app = App()

@app.websocket("/echo")
async def echo(event):
    await event.send(event.data)
"""

from pathlib import Path
from typing import TYPE_CHECKING

from hubbub.app.app import App
from hubbub.app.channel import Channel
from hubbub.app.endpoint import WebSocketEndpoint
from hubbub.app.folder import load_folder
from hubbub.auth.api_key import APIKeyAuth
from hubbub.auth.jwt_auth import JWTAuth
from hubbub.auth.user import Authenticator, AuthError, User, token_from_request
from hubbub.broker import MemoryBroker, MemoryBus
from hubbub.errors import (
    Abort,
    BrokerUnavailable,
    ConfigurationError,
    ConnectionClosed,
    HandshakeError,
    HTTPError,
    HubbubError,
    InvalidBody,
    ProtocolError,
    RequestFailed,
)
from hubbub.history.base import HistoryPage, HistoryPolicy
from hubbub.history.recovery import Published
from hubbub.inbox import Inbox, InboxLimits
from hubbub.options import ServerOptions
from hubbub.protocol.envelope import Envelope, EnvelopeError
from hubbub.runtime.connection import Connection
from hubbub.runtime.emitter import Emitter
from hubbub.runtime.events import Event
from hubbub.runtime.hub import Hub
from hubbub.serve.runner import RunningServer, run, serve, start
from hubbub.web.request import Headers, QueryParams, Request
from hubbub.web.response import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from hubbub.web.static import StaticFiles

if TYPE_CHECKING:
    from hubbub.broker.redis import RedisBroker

STATIC_DIR: Path = Path(__file__).resolve().parent / "static"
"""hubbub's browser files (hubbub.js, hubbub.d.ts): serve them with `app.static("/hubbub", hubbub.STATIC_DIR)`."""


def __getattr__(name: str) -> object:
    """`RedisBroker` is imported when first asked for (it needs redis-py)."""
    if name == "RedisBroker":
        from hubbub.broker.redis import RedisBroker

        return RedisBroker
    raise AttributeError(f"module 'hubbub' has no attribute {name!r}")


__all__ = [
    "STATIC_DIR",
    "APIKeyAuth",
    "Abort",
    "App",
    "AuthError",
    "Authenticator",
    "BrokerUnavailable",
    "Channel",
    "ConfigurationError",
    "Connection",
    "ConnectionClosed",
    "Emitter",
    "Envelope",
    "EnvelopeError",
    "Event",
    "HTMLResponse",
    "HTTPError",
    "HandshakeError",
    "Headers",
    "HistoryPage",
    "HistoryPolicy",
    "Hub",
    "HubbubError",
    "Inbox",
    "InboxLimits",
    "InvalidBody",
    "JSONResponse",
    "JWTAuth",
    "MemoryBroker",
    "MemoryBus",
    "PlainTextResponse",
    "ProtocolError",
    "Published",
    "QueryParams",
    "RedisBroker",
    "Request",
    "RequestFailed",
    "Response",
    "RunningServer",
    "ServerOptions",
    "StaticFiles",
    "StreamingResponse",
    "User",
    "WebSocketEndpoint",
    "load_folder",
    "run",
    "serve",
    "start",
    "token_from_request",
]
