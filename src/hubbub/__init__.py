"""hubbub: a real-time WebSocket server framework.

from hubbub import App

app = App()

@app.websocket("/echo")
async def echo(event):
    await event.send(event.data)
"""

from pathlib import Path

from hubbub.app import App
from hubbub.connection import Connection
from hubbub.emitter import Emitter
from hubbub.endpoint import WebSocketEndpoint
from hubbub.errors import Abort, ConfigurationError, ConnectionClosed, HubbubError, ProtocolError
from hubbub.events import Event
from hubbub.http import HTMLResponse, JSONResponse, PlainTextResponse, Request, Response, StaticFiles
from hubbub.hub import Hub
from hubbub.options import ServerOptions
from hubbub.runner import RunningServer, run, serve, start

STATIC_DIR: Path = Path(__file__).resolve().parent / "static"
"""hubbub's browser files (hubbub.js, hubbub.d.ts): serve them with `app.static("/hubbub", hubbub.STATIC_DIR)`."""

__all__ = [
    "STATIC_DIR",
    "Abort",
    "App",
    "ConfigurationError",
    "Connection",
    "ConnectionClosed",
    "Emitter",
    "Event",
    "HTMLResponse",
    "Hub",
    "HubbubError",
    "JSONResponse",
    "PlainTextResponse",
    "ProtocolError",
    "Request",
    "Response",
    "RunningServer",
    "ServerOptions",
    "StaticFiles",
    "WebSocketEndpoint",
    "run",
    "serve",
    "start",
]
