"""A client connection as the app sees it: identity, handshake data, sending, and the
ordered running of its handlers."""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections import deque
from collections.abc import Coroutine, Hashable
from typing import TYPE_CHECKING, Any, Protocol

from hubbub.auth.user import CLOSE_INVALID_TOKEN, AuthError, User, seconds_until
from hubbub.errors import Abort, ConnectionClosed, RequestFailed
from hubbub.protocol import envelope as env
from hubbub.protocol.codecs import encode_for
from hubbub.protocol.envelope import Envelope, EnvelopeError
from hubbub.runtime.eager import resume
from hubbub.runtime.events import Event
from hubbub.runtime.ratelimit import TokenBucket
from hubbub.text import clip
from hubbub.transport.framing import is_valid_close_code
from hubbub.transport.message import BackpressurePolicy, Outgoing

if TYPE_CHECKING:
    from hubbub.auth.jwt_auth import JWTAuth
    from hubbub.protocol.codecs import Codec
    from hubbub.runtime.hub import Hub
    from hubbub.transport.websocket import WebSocketProtocol
    from hubbub.web.request import Headers, QueryParams, Request

logger = logging.getLogger("hubbub.connection")

_request_ids = itertools.count(1)


class RouteHooks(Protocol):
    """What a connection asks of its route's endpoint (the app layer's `WebSocketEndpoint`)."""

    def choose_codec(self, subprotocol: str | None) -> Codec | None:
        """The envelope codec of a connection (None: raw text/bytes)."""

    def welcome(self, conn: Connection) -> Envelope | None:
        """An envelope sent first on every new connection (None: nothing)."""

    def intercept(self, conn: Connection, data: str | bytes, is_binary: bool) -> Event | None:
        """Turn a received message into the event its handlers get (None: handled already)."""

    def rejected(self, conn: Connection, code: str, message: str) -> None:
        """A message was refused before reaching a handler."""

    def refused(self, event: Event, code: str, message: str) -> None:
        """A decoded message was refused before reaching its handler."""


class Route(Protocol):
    """What a connection runs: its route's hooks, handlers and limits (the app layer's `Pipeline`)."""

    @property
    def endpoint(self) -> RouteHooks: ...
    @property
    def on_drain(self) -> object: ...
    @property
    def on_ping(self) -> object: ...
    @property
    def on_pong(self) -> object: ...
    @property
    def on_error(self) -> object: ...
    @property
    def max_backpressure(self) -> int: ...
    @property
    def backpressure_policy(self) -> BackpressurePolicy: ...
    @property
    def max_pending(self) -> int: ...
    @property
    def message_rate(self) -> float | None: ...
    @property
    def message_burst(self) -> int: ...
    @property
    def rate_limit_strikes(self) -> int | None: ...

    def coroutine_for(self, event: Event) -> Coroutine[Any, Any, Any] | None:
        """The coroutine that handles `event`, or None if nothing is registered for it."""


class Connection:
    """One WebSocket client. Its events run one at a time, in the order they happened:
    connect, then each message, then disconnect. A handler that never waits costs no Task."""

    __slots__ = (
        "id",
        "request",
        "hub",
        "subprotocol",
        "codec",
        "_user",
        "rooms",
        "_state",
        "_ws",
        "_pipeline",
        "_busy",
        "_inbox",
        "_tasks",
        "_connect_event",
        "_closed",
        "_pending",
        "_bucket",
        "_strikes",
        "_expiry",
        "_verifier",
        "_loop",
    )

    def __init__(
        self,
        request: Request,
        hub: Hub,
        pipeline: Route,
        subprotocol: str | None,
        tasks: set[asyncio.Task[Any]],
        user: User | None = None,
        verifier: JWTAuth | None = None,
    ) -> None:
        self.id = str(uuid.uuid4())
        self.request = request
        self.hub = hub
        self.subprotocol = subprotocol
        self.codec = pipeline.endpoint.choose_codec(subprotocol)
        self._user = user
        self.rooms: set[str] = set()
        self._state: dict[str, Any] | None = None
        self._ws: WebSocketProtocol | None = None
        self._pipeline = pipeline
        self._busy = False
        self._inbox: deque[Event] | None = None
        self._tasks = tasks
        self._connect_event: Event | None = None
        self._closed = False
        self._pending: dict[str, asyncio.Future[Any]] | None = None
        self._bucket: TokenBucket | None = None
        self._strikes = 0
        self._expiry: asyncio.TimerHandle | None = None
        self._verifier = verifier
        self._loop = asyncio.get_running_loop()

    # ---- handshake data --------------------------------------------------------------

    @property
    def path(self) -> str:
        """The request path."""
        return self.request.path

    @property
    def params(self) -> dict[str, Any]:
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
    def user(self) -> User | None:
        """The authenticated user (set by the authenticator; read-only). Keep app data in `state`."""
        return self._user

    @property
    def user_id(self) -> str | None:
        """The authenticated user's id (None for anonymous connections)."""
        user = self.user
        return user.id if user is not None else None

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

    def send_nowait(self, data: str | bytes | Envelope, *, key: Hashable | None = None) -> bool:
        """Queue text (str), binary (bytes) or an Envelope; False if dropped or closed.

        `key` names what the message updates: under the "conflate" policy a client that is
        behind gets only the newest pending message per key."""
        ws = self._ws
        if ws is None:
            return False
        if isinstance(data, Envelope):
            queued = ws.send_message(Outgoing(encode_for(data, self.codec), key))
        elif key is not None:
            queued = ws.send_message(Outgoing(data, key))
        else:
            queued = ws.send(data)
        if queued:
            self.hub.stats.messages_sent += 1
        return queued

    async def send(self, data: str | bytes | Envelope, *, key: Hashable | None = None) -> bool:
        """Send text (str), binary (bytes) or an Envelope; False if dropped (backpressure) or closed.
        `key`: see `send_nowait`."""
        return self.send_nowait(data, key=key)

    def deliver(self, message: Outgoing) -> bool:
        """Queue a message whose frame may be shared with other recipients."""
        ws = self._ws
        return ws.send_message(message) if ws is not None else False

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with a close code and reason (the close handshake runs in the background).
        Raises ValueError for codes an endpoint may not send (e.g. 1005, 1006, 1015)."""
        if not is_valid_close_code(code):
            raise ValueError(f"close code {code} may not be sent (use 1000-1003, 1007-1014 or 3000-4999)")
        ws = self._ws
        if ws is not None:
            ws.close(code, reason)

    async def join(self, room: str) -> None:
        """Join a room."""
        await self.hub.join(room, self.id)

    async def leave(self, room: str) -> None:
        """Leave a room."""
        await self.hub.leave(room, self.id)

    async def call(self, type: str, data: Any = None, *, timeout: float = 10.0) -> Any:
        """Ask the client something and wait for its reply (channel routes only).

        Raises TimeoutError if no reply comes in time, RequestFailed if the client answers
        with an error, ConnectionClosed if the connection goes away first."""
        if self.codec is None or not self.codec.whole_envelopes:
            raise TypeError("server requests need a channel route with the json or msgpack codec")
        if self._closed:
            raise ConnectionClosed("the connection is closed")
        request_id = f"s{next(_request_ids)}"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        pending = self._pending
        if pending is None:
            pending = self._pending = {}
        pending[request_id] = future
        ws = self._ws
        if ws is not None:  # the reply must be read even if messages queued behind this handler paused reading
            ws.resume_reading()
        try:
            self.send_nowait(Envelope(type, data, id=request_id))
            return await asyncio.wait_for(future, timeout)
        finally:
            pending.pop(request_id, None)
            inbox = self._inbox
            if ws is not None and not pending and inbox is not None and len(inbox) >= self._pipeline.max_pending:
                ws.pause_reading()

    def settle_request(self, reply: Envelope) -> None:
        """A client's reply to a server request arrived."""
        future = self._pending.get(str(reply.id)) if self._pending else None
        if future is None or future.done():
            self.send_nowait(
                Envelope(env.ERROR, error=env.error_body(env.BAD_REQUEST, f"no pending request with id {reply.id!r}"))
            )
            return
        if reply.error is not None:
            future.set_exception(
                RequestFailed(str(reply.error.get("code", "error")), str(reply.error.get("message", "")))
            )
        else:
            future.set_result(reply.data)

    # ---- authentication lifetime ------------------------------------------------------

    def watch_expiry(self, verifier: JWTAuth | None) -> None:
        """Close with 4002 when the user's credentials expire, unless refreshed first."""
        self._verifier = verifier
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        user = self.user
        if user is None or user.expires_at is None or self._closed:
            return
        # The verifier's leeway (clock skew) accepted the token at the handshake; it holds here too.
        leeway = verifier.leeway if verifier is not None else 0.0
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(max(0.0, seconds_until(user.expires_at) + leeway), self._expired)

    def _expired(self) -> None:
        self._expiry = None
        ws = self._ws
        if ws is not None:
            ws.close(CLOSE_INVALID_TOKEN, "token expired")

    async def refresh_auth(self, data: Any) -> dict[str, Any]:
        """Handle a client's `hubbub.refresh`: a new token for the same user extends the connection."""
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise EnvelopeError(env.BAD_REQUEST, "'token' must be a string")
        if self._verifier is None or self.user is None:
            raise EnvelopeError(env.BAD_REQUEST, "this connection has no token to refresh")
        try:
            user = self._verifier.verify_token(token)
        except AuthError as exc:
            raise EnvelopeError(env.UNAUTHORIZED, exc.reason) from None
        if user.id != self.user.id:
            raise EnvelopeError(env.UNAUTHORIZED, "the new token is for another user")
        self._user = user
        self.watch_expiry(self._verifier)
        return {"expires_at": user.expires_at}

    # ---- transport events (Session protocol) ----------------------------------------

    def start(self, connect_event: Event) -> None:
        """Remember the connect event whose before-middleware already ran at the handshake."""
        self._connect_event = connect_event

    def abandon(self) -> None:
        """The handshake was dropped after the app accepted it: the connection never opened."""
        self._closed = True
        self.hub.abandon(self)

    def attach(self, ws: WebSocketProtocol) -> None:
        self._ws = ws
        pipeline = self._pipeline
        ws.configure_backpressure(pipeline.max_backpressure, pipeline.backpressure_policy)
        self.hub.add(self)
        if self.user is not None and self.user.expires_at is not None:
            self.watch_expiry(self._verifier)
        logger.info("connect %s %s from %s", self.id, clip(self.request.path), self.request.client[0])
        welcome = self._pipeline.endpoint.welcome(self)
        if welcome is not None:
            self.send_nowait(welcome)
        event = self._connect_event or Event("connect", self)
        self._connect_event = None
        self._enqueue(event)

    def ws_message(self, data: str | bytes, is_binary: bool) -> None:
        self.hub.stats.messages_received += 1
        pipeline = self._pipeline
        if pipeline.message_rate is not None and not self._within_rate(pipeline):
            return
        event = pipeline.endpoint.intercept(self, data, is_binary)
        if event is None:
            return
        if not self._busy:
            self._dispatch(event)
        elif self._pending and self._inbox is not None and len(self._inbox) >= pipeline.max_pending:
            # Reading goes on while the server waits for a reply (replies settle in intercept),
            # so the messages around it are refused instead of queued without bound.
            pipeline.endpoint.refused(event, env.OVERLOADED, "too many messages while a server request is pending")
        else:
            self._enqueue(event)

    def _within_rate(self, pipeline: Route) -> bool:
        now = self._loop.time()
        bucket = self._bucket
        if bucket is None:
            bucket = self._bucket = TokenBucket(pipeline.message_rate or 0.0, pipeline.message_burst, now)
        if bucket.take(now):
            return True
        self._strikes += 1
        pipeline.endpoint.rejected(self, env.RATE_LIMITED, "too many messages; slow down")
        limit = pipeline.rate_limit_strikes
        ws = self._ws
        if limit is not None and self._strikes >= limit and ws is not None:
            ws.close(1008, "rate limit exceeded")
        return False

    def ws_drain(self) -> None:
        if self._pipeline.on_drain is not None:
            self._enqueue(Event("drain", self))

    def ws_ping(self, payload: bytes) -> None:
        if self._pipeline.on_ping is not None:
            self._enqueue(Event("ping", self, payload, True))

    def ws_pong(self, payload: bytes) -> None:
        if self._pipeline.on_pong is not None:
            self._enqueue(Event("pong", self, payload, True))

    def ws_error(self, error: Exception) -> None:
        if self._pipeline.on_error is not None:
            event = Event("error", self)
            event.error = error
            self._enqueue(event)

    def ws_closed(self, code: int, reason: str) -> None:
        self._closed = True
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if self._pending:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionClosed(f"closed with {code}"))
        rooms = self.hub.remove(self)
        logger.info("disconnect %s %s from %s code=%s", self.id, clip(self.request.path), self.request.client[0], code)
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
        if ws is not None and len(inbox) >= self._pipeline.max_pending and not self._pending:
            ws.pause_reading()

    def _dispatch(self, event: Event) -> None:
        coro = self._pipeline.coroutine_for(event)
        if coro is None:
            return
        if event.type == "disconnect":
            coro = self._when_settled(coro)
        latency = self.hub.handler_latency
        started = latency.start()
        # Run the handler now, until it first waits: most never do, and cost no Task (see runtime.eager).
        try:
            waiting_on = coro.send(None)
        except (StopIteration, Abort):
            latency.stop(started)
            return
        except Exception as exc:
            latency.stop(started)
            self._log_failure(event, exc)
            return
        loop = self._loop
        task = loop.create_task(resume(coro, waiting_on))
        self._busy = True
        self._tasks.add(task)
        deadline = loop.call_later(event.timeout, _time_out, task, event) if event.timeout is not None else None
        task.add_done_callback(lambda done: self._finished(done, event, deadline, started))

    async def _when_settled(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Let the broker forget this connection before the disconnect handler looks at rooms."""
        await self.hub.settled(self.id)
        return await coro

    def _finished(
        self, task: asyncio.Task[Any], event: Event, deadline: asyncio.TimerHandle | None, started: float
    ) -> None:
        self.hub.handler_latency.stop(started)
        if deadline is not None:
            deadline.cancel()
        self._tasks.discard(task)
        if not task.cancelled():
            exc = task.exception()
            if exc is not None and not isinstance(exc, Abort):
                self._log_failure(event, exc)
        elif event.timed_out:
            logger.error("%s handler timed out after %s s on connection %s", event.type, event.timeout, self.id)
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
            clip(self.request.path),
            exc_info=(type(exc), exc, exc.__traceback__),
        )

    def __repr__(self) -> str:
        return f"<Connection {self.id} {self.request.path}>"


def _time_out(task: asyncio.Task[Any], event: Event) -> None:
    if not task.done():
        event.timed_out = True
        task.cancel()
