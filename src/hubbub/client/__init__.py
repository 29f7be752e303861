"""hubbub's Python clients.

- `Client`: the asyncio client of channel routes (envelopes, requests, rooms, presence,
  reconnects with backoff and full jitter, recovery of what each room published while
  it was away, an offline queue). For scripts, bots, load tests and tests of your app.
- `connect` / `WebSocketClient`: the raw WebSocket client (frames, no envelopes), for
  tests that drive a server byte by byte; its `recv()` waits 10 s by default.
"""

from hubbub.client.backoff import Backoff
from hubbub.client.links import SUBPROTOCOL
from hubbub.client.session import LIFECYCLE_EVENTS, NO_RECONNECT_CODES, Client
from hubbub.client.websocket import WebSocketClient, connect
from hubbub.errors import ClientError, QueueFull, RequestTimeout

__all__ = [
    "LIFECYCLE_EVENTS",
    "NO_RECONNECT_CODES",
    "SUBPROTOCOL",
    "Backoff",
    "Client",
    "ClientError",
    "QueueFull",
    "RequestTimeout",
    "WebSocketClient",
    "connect",
]
