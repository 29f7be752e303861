"""The fallback transport for channel routes where a WebSocket cannot be opened:
Server-Sent Events for server -> client, HTTP POST for client -> server, on the same path.

`GET <path>` with `Accept: text/event-stream` is a handshake (same authentication,
`?device=`, limits and connect middleware as the WebSocket one); its answer is an event
stream whose first event names the session, then one JSON envelope per `data:` line.
`POST <path>?session=ID` carries one envelope or a JSON array of them. `SseTransport`
gives the `Connection` the same interface as the WebSocket transports, so rooms,
presence, requests, rate limits, recovery and the inbox do not know the difference.
A session lives as long as its stream.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Final

import orjson

from hubbub.auth.user import AuthError, as_user
from hubbub.transport.framing import CLOSE_ABNORMAL, CLOSE_GOING_AWAY
from hubbub.transport.queued import QueuedTransport
from hubbub.web.request import Request
from hubbub.web.response import JSONResponse, Response, StreamingResponse, error_response

if TYPE_CHECKING:
    from hubbub.options import ServerOptions
    from hubbub.runtime.connection import Connection
    from hubbub.transport.websocket import TransportStats

SESSION_PARAM: Final = "session"
SESSION_HEADER: Final = "x-hubbub-session"
EVENT_STREAM: Final = "text/event-stream"
HEARTBEAT_SECONDS: Final = 15.0
"""A comment line this often keeps proxies from timing the stream out and finds dead peers."""
STREAM_START_TIMEOUT: Final = 10.0
"""The default `FallbackSessions.start_timeout`: a session whose stream has not started by then is closed."""
REMEMBERED_ENDED: Final = 4096
"""How many ended session ids are remembered, to answer 410 instead of 404."""

_CLOSE: Final = object()


def wants_event_stream(request: Request) -> bool:
    """Whether a GET asks for the fallback stream."""
    return request.method == "GET" and EVENT_STREAM in request.headers.get("accept", "")


def session_of(request: Request) -> str | None:
    """The session id a POST names (query parameter, then header)."""
    return request.query.get(SESSION_PARAM) or request.headers.get(SESSION_HEADER) or None


def _frame(data: str) -> bytes:
    return b"data: " + data.encode("utf-8") + b"\n\n"


class SseTransport(QueuedTransport):
    """One fallback session's transport: a bounded outgoing queue read by the event stream,
    and the POSTs' messages passed up; the WebSocket transports' interface to the Connection."""

    def __init__(self, session: str, opts: ServerOptions, stats: TransportStats, listener: Connection) -> None:
        super().__init__(opts, stats)
        self.session = session
        self.listener = listener
        self.close_code = CLOSE_ABNORMAL
        self.close_reason = "event stream dropped"
        self.closed = False
        self._closing = False
        self._streaming = False
        self._close_timeout = opts.close_timeout
        self._close_timer: asyncio.TimerHandle | None = None
        self.on_end: Any = None

    # ---- outgoing (the Connection calls these) -------------------------------------------

    def send(self, data: str | bytes) -> bool:
        """Queue one envelope (text); False if dropped or closed. Binary has no SSE form."""
        if self._closing:
            return False
        return self._enqueue(data if isinstance(data, str) else data.decode("utf-8", "replace"))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """End the stream after what is queued, with a `close` event carrying the code; a peer
        that does not read it within `close_timeout` is let go of anyway."""
        if self._closing:
            return
        self._closing = True
        self.close_code = code
        self.close_reason = reason
        self._queue.append(_CLOSE)
        self._wakeup.set()
        self._close_timer = asyncio.get_running_loop().call_later(self._close_timeout, self.end)

    # ---- incoming (POSTs) ---------------------------------------------------------------

    async def receive(self, messages: list[str]) -> None:
        """Pass POSTed messages up in order, waiting while reading is paused."""
        for text in messages:
            if not self._read_allowed.is_set():
                await self._read_allowed.wait()
            if self._closing:
                return
            self.listener.ws_message(text, False)

    # ---- the stream ---------------------------------------------------------------------

    async def stream(self, heartbeat: float) -> AsyncIterator[bytes]:
        """The event stream: the session, then queued envelopes, comment heartbeats, the close."""
        self._streaming = True
        try:
            yield b"retry: 1000\nevent: session\ndata: " + orjson.dumps({"session": self.session}) + b"\n\n"
            queue = self._queue
            while not self.closed:
                if not queue:
                    self._wakeup.clear()
                    try:
                        await asyncio.wait_for(self._wakeup.wait(), heartbeat)
                    except TimeoutError:
                        yield b": heartbeat\n\n"
                    continue
                parts: list[bytes] = []
                while queue:
                    item = queue.popleft()
                    if item is _CLOSE:
                        body = orjson.dumps({"code": self.close_code, "reason": self.close_reason})
                        parts.append(b"event: close\ndata: " + body + b"\n\n")
                        yield b"".join(parts)
                        return
                    assert isinstance(item, str)
                    self._queued -= len(item)
                    parts.append(_frame(item))
                yield b"".join(parts)
        finally:
            self.end()

    def end(self) -> None:
        """The session is over (its stream finished or dropped): report the close once."""
        if self.closed:
            return
        self.closed = True
        self._closing = True
        if self._close_timer is not None:
            self._close_timer.cancel()
        self._queue.clear()
        self._queued = 0
        self._read_allowed.set()
        if self.on_end is not None:
            self.on_end(self)
        self.listener.ws_closed(self.close_code, self.close_reason)

    def end_if_unread(self) -> None:
        """Close a session whose stream never started (the client went away at once)."""
        if not self._streaming:
            self.end()


class FallbackSessions:
    """The open fallback sessions of one App, by id, and the ids that ended lately."""

    def __init__(self, heartbeat: float = HEARTBEAT_SECONDS, start_timeout: float = STREAM_START_TIMEOUT) -> None:
        self.heartbeat = heartbeat
        """Seconds without traffic before a stream gets a `: heartbeat` comment."""
        self.start_timeout = start_timeout
        """Seconds after the handshake by which the HTTP server must have started sending the stream (an
        ASGI server whose client left before the answer never does); the session is closed otherwise."""
        self.open: dict[str, SseTransport] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()

    def start(self, conn: Connection, opts: ServerOptions, stats: TransportStats) -> StreamingResponse:
        """Attach a new session to an accepted connection; the response is its event stream."""
        session = secrets.token_urlsafe(18)
        transport = SseTransport(session, opts, stats, conn)
        transport.on_end = self._ended_one
        self.open[session] = transport
        conn.attach(transport)  # type: ignore[arg-type]  # the WebSocket transports' interface
        asyncio.get_running_loop().call_later(self.start_timeout, transport.end_if_unread)
        headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
        return StreamingResponse(transport.stream(self.heartbeat), headers=headers, media_type=EVENT_STREAM)

    def _ended_one(self, transport: SseTransport) -> None:
        self.open.pop(transport.session, None)
        self._ended[transport.session] = None
        while len(self._ended) > REMEMBERED_ENDED:
            self._ended.popitem(last=False)

    def close_all(self) -> None:
        """End every stream with 1001 (the server is shutting down)."""
        for transport in list(self.open.values()):
            transport.close(CLOSE_GOING_AWAY, "server shutting down")

    async def post(self, request: Request, opts: ServerOptions, authenticator: Any) -> Response:
        """Take one POST: 202 once its envelopes are passed up, or the refusal."""
        session = session_of(request)
        transport = self.open.get(session) if session else None
        if transport is None:
            if session and session in self._ended:
                return error_response(410, "session ended")
            return error_response(404, "unknown session")
        conn = transport.listener
        if conn.user is not None and authenticator is not None:
            refused = await _same_user(request, authenticator, conn.user.id)
            if refused is not None:
                return refused
        messages = _messages(request.body)
        if messages is None:
            return error_response(400, "request body is not valid UTF-8")
        limit = opts.max_message_size
        if any(len(text) > limit for text in messages):
            return error_response(413, "message too big")
        await transport.receive(messages)
        return JSONResponse({"accepted": len(messages)}, status=202)


def _messages(body: bytes) -> list[str] | None:
    """A POST body as messages: each element of a JSON array, else the whole body (which the
    channel answers with an error envelope on the stream if it is not an envelope)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if text.lstrip().startswith("["):
        try:
            items = orjson.loads(body)
        except orjson.JSONDecodeError:
            return [text]
        return [orjson.dumps(item).decode("utf-8") for item in items]
    return [text]


async def _same_user(request: Request, authenticator: Any, user_id: str) -> Response | None:
    """A POST authenticates as the session's user (401 otherwise)."""
    try:
        result = authenticator(request)
        if asyncio.iscoroutine(result):
            result = await result
        user = as_user(result)
    except AuthError as refused:
        return error_response(401, refused.reason, {"www-authenticate": "Bearer"})
    if user is None or user.id != user_id:
        return error_response(401, "authentication required", {"www-authenticate": "Bearer"})
    return None
