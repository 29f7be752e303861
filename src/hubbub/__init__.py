"""hubbub: a real-time WebSocket server framework.

The Redis engine is `hubbub.broker.redis.RedisBroker` (needs the `hubbub[redis]` extra).

from hubbub import App

app = App()

@app.websocket("/echo")
async def echo(event):
    await event.send(event.data)
"""

from pathlib import Path

from hubbub.app import App
from hubbub.auth import AuthError, JWTAuth, User
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
    HubbubError,
    ProtocolError,
    RequestFailed,
)
from hubbub.events import Event
from hubbub.http import HTMLResponse, JSONResponse, PlainTextResponse, Request, Response, StaticFiles
from hubbub.hub import Hub
from hubbub.options import ServerOptions
from hubbub.protocol.envelope import Envelope, EnvelopeError
from hubbub.runner import RunningServer, run, serve, start

STATIC_DIR: Path = Path(__file__).resolve().parent / "static"
"""hubbub's browser files (hubbub.js, hubbub.d.ts): serve them with `app.static("/hubbub", hubbub.STATIC_DIR)`."""

__all__ = [
    "STATIC_DIR",
    "Abort",
    "App",
    "AuthError",
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
    "Hub",
    "HubbubError",
    "JSONResponse",
    "JWTAuth",
    "MemoryBroker",
    "MemoryBus",
    "PlainTextResponse",
    "ProtocolError",
    "Request",
    "RequestFailed",
    "Response",
    "RunningServer",
    "ServerOptions",
    "StaticFiles",
    "User",
    "WebSocketEndpoint",
    "run",
    "serve",
    "start",
]
