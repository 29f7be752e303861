"""hubbub: a real-time WebSocket server framework.

from hubbub import App

app = App()

@app.websocket("/echo")
async def echo(event):
    await event.send(event.data)
"""

from hubbub.app import App
from hubbub.connection import Connection
from hubbub.endpoint import WebSocketEndpoint
from hubbub.errors import Abort, ConfigurationError, ConnectionClosed, HubbubError, ProtocolError
from hubbub.events import Event
from hubbub.http import HTMLResponse, JSONResponse, PlainTextResponse, Request, Response, StaticFiles
from hubbub.hub import Hub
from hubbub.options import ServerOptions
from hubbub.runner import RunningServer, run, serve, start

__all__ = [
    "Abort",
    "App",
    "ConfigurationError",
    "Connection",
    "ConnectionClosed",
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
