"""A client connection as the app sees it: identity, handshake data, sending, and the
ordered running of its handlers."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

from hubbub._eager import start_eagerly
from hubbub.errors import Abort
from hubbub.events import Event

if TYPE_CHECKING:
    from hubbub.http import Headers, QueryParams, Request
    from hubbub.hub import Hub
    from hubbub.pipeline import Pipeline
    from hubbub.transport.websocket import WebSocketProtocol

logger = logging.getLogger("hubbub.connection")


class Connection:
    """One WebSocket client. Its events run one at a time, in the order they happened:
    connect, then each message, then disconnect. A handler that never waits costs no Task."""

    __slots__ = (
        "_busy",
        "_closed",
        "_connect_event",
        "_inbox",
        "_pipeline",
        "_state",
        "_tasks",
        "_ws",
        "hub",
        "id",
        "request",
        "rooms",
        "subprotocol",
        "user",
    )

    def __init__(
        self,
        request: Request,
        hub: Hub,
        pipeline: Pipeline,
        subprotocol: str | None,
        tasks: set[asyncio.Task[Any]],
    ) -> None:
        self.id = str(uuid.uuid4())
        self.request = request
        self.hub = hub
        self.subprotocol = subprotocol
        self.user: Any = None
        self.rooms: set[str] = set()
        self._state: dict[str, Any] | None = None
        self._ws: WebSocketProtocol | None = None
        self._pipeline = pipeline
        self._busy = False
        self._inbox: deque[Event] | None = None
        self._tasks = tasks
        self._connect_event: Event | None = None
        self._closed = False

    # ---- handshake data --------------------------------------------------------------

    @property
    def path(self) -> str:
        """The request path."""
        return self.request.path

    @property
    def params(self) -> dict[str, str]:
        """Path parameters of the matched route."""
        return self.request.path_params

    @property
    def query(self) -> QueryParams:
        """Query-string parameters of the handshake."""
        return self.request.query

    @property
    def headers(self) -> Headers:
        """Headers of the handshake."""
        return self.request.headers

    @property
    def remote(self) -> tuple[str, int]:
        """The client's (address, port)."""
        return self.request.client

    @property
    def state(self) -> dict[str, Any]:
        """A dict for the app's own per-connection data."""
        state = self._state
        if state is None:
            state = self._state = {}
        return state

    @property
    def closed(self) -> bool:
        """Whether the connection has gone away."""
        return self._closed

    @property
    def buffered_amount(self) -> int:
        """Bytes waiting to be sent to this client."""
        ws = self._ws
        return ws.buffered_amount if ws is not None and not self._closed else 0

    @property
    def dropped_count(self) -> int:
        """Messages to this client dropped by the backpressure policy."""
        ws = self._ws
        return ws.dropped if ws is not None else 0

    # ---- acting ------------------------------------------------------------------------

    async def send(self, data: str | bytes) -> bool:
        """Send text (str) or binary (bytes); False if dropped (backpressure) or closed."""
        ws = self._ws
        return ws.send(data) if ws is not None else False

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with a close code and reason (the close handshake runs in the background)."""
        ws = self._ws
        if ws is not None:
            ws.close(code, reason)

    async def join(self, room: str) -> None:
        """Join a room."""
        await self.hub.join(room, self.id)

    async def leave(self, room: str) -> None:
        """Leave a room."""
        await self.hub.leave(room, self.id)

    # ---- transport events (Session protocol) ----------------------------------------

    def start(self, connect_event: Event) -> None:
        """Remember the connect event whose before-middleware already ran at the handshake."""
        self._connect_event = connect_event

    def attach(self, ws: WebSocketProtocol) -> None:
        self._ws = ws
        self.hub.add(self)
        logger.info("connect %s %s from %s", self.id, self.request.path, self.request.client[0])
        event = self._connect_event or Event("connect", self)
        self._connect_event = None
        self._enqueue(event)

    def ws_message(self, data: str | bytes, is_binary: bool) -> None:
        self._enqueue(Event("message", self, data, is_binary))

    def ws_drain(self) -> None:
        if self._pipeline.on_drain is not None:
            self._enqueue(Event("drain", self))

    def ws_closed(self, code: int, reason: str) -> None:
        self._closed = True
        rooms = self.hub.remove(self)
        logger.info("disconnect %s %s from %s code=%s", self.id, self.request.path, self.request.client[0], code)
        event = Event("disconnect", self)
        event.close_code = code
        event.close_reason = reason
        event.rooms = frozenset(rooms)
        self._enqueue(event)

    # ---- running handlers in order ----------------------------------------------------

    def _enqueue(self, event: Event) -> None:
        if not self._busy:
            self._dispatch(event)
            return
        inbox = self._inbox
        if inbox is None:
            inbox = self._inbox = deque()
        inbox.append(event)
        ws = self._ws
        if ws is not None and len(inbox) >= self._pipeline.max_pending:
            ws.pause_reading()

    def _dispatch(self, event: Event) -> None:
        coro = self._pipeline.coroutine_for(event)
        if coro is None:
            return
        try:
            task = start_eagerly(coro, asyncio.get_running_loop())
        except Abort:
            return
        except Exception as exc:
            self._log_failure(event, exc)
            return
        if task is not None:
            self._busy = True
            self._tasks.add(task)
            task.add_done_callback(lambda done: self._finished(done, event))

    def _finished(self, task: asyncio.Task[Any], event: Event) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            exc = task.exception()
            if exc is not None and not isinstance(exc, Abort):
                self._log_failure(event, exc)
        self._busy = False
        inbox = self._inbox
        while inbox and not self._busy:
            self._dispatch(inbox.popleft())
        ws = self._ws
        if ws is not None and (not inbox or len(inbox) < self._pipeline.max_pending // 2):
            ws.resume_reading()

    def _log_failure(self, event: Event, exc: BaseException) -> None:
        logger.error(
            "%s handler failed on connection %s (%s)",
            event.type,
            self.id,
            self.request.path,
            exc_info=(type(exc), exc, exc.__traceback__),
        )

    def __repr__(self) -> str:
        return f"<Connection {self.id} {self.request.path}>"
