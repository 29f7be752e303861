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

from hubbub.api_key import APIKeyAuth
from hubbub.app import App
from hubbub.auth import Authenticator, AuthError, JWTAuth, User, token_from_request
from hubbub.broker import MemoryBroker, MemoryBus
from hubbub.channel import Channel
from hubbub.connection import Connection
from hubbub.emitter import Emitter
from hubbub.endpoint import WebSocketEndpoint
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
from hubbub.events import Event
from hubbub.folder import load_folder
from hubbub.history.base import HistoryPage, HistoryPolicy
from hubbub.history.recovery import Published
from hubbub.http import (
    Headers,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    QueryParams,
    Request,
    Response,
    StaticFiles,
    StreamingResponse,
)
from hubbub.hub import Hub
from hubbub.inbox import Inbox, InboxLimits
from hubbub.options import ServerOptions
from hubbub.protocol.envelope import Envelope, EnvelopeError
from hubbub.runner import RunningServer, run, serve, start

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
