"""`Client`: the asyncio client of hubbub channel routes (envelope protocol v1, JSON codec).

    async with Client("ws://localhost:8000/chat", token=my_jwt) as client:
        client.on("said", lambda data: print(data))
        await client.join("lobby")
        reply = await client.request("say", {"room": "lobby", "text": "hi"}, timeout=5)

The same concepts and names as hubbub.js: events by type, requests with timeouts,
answers to server requests, rooms, presence events, and a connection that comes back
by itself (backoff with full jitter) and recovers what each room published meanwhile.
The wire is in docs/protocol.md; the guide's "Python client" section walks through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import ssl as ssl_module
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from hubbub.client.backoff import Backoff
from hubbub.client.sse import SseClient, open_sse
from hubbub.client.streams import RoomStream, Wire
from hubbub.client.websocket import WebSocketClient, connect
from hubbub.errors import ClientError, ConnectionClosed, HandshakeError, QueueFull, RequestTimeout

logger = logging.getLogger("hubbub.client")

SUBPROTOCOL = "hubbub.v1.json"
NO_RECONNECT_CODES = frozenset({1000, 1008, 4001, 4002, 4003})
"""Close codes after which the client stops: the server meant it (1000), a policy (1008),
or authentication (4001 no credentials, 4002 invalid or expired, 4003 too many connections)."""
LIFECYCLE_EVENTS = ("open", "close", "reconnecting", "rejoin", "recovery", "error")

Link = WebSocketClient | SseClient
"""A connection: a WebSocket, or the SSE + POST fallback."""
_NOT_A_TRANSPORT_PROBLEM = frozenset({401, 429, 503})
"""Handshake refusals the fallback would get too (auth, rate limits, capacity)."""

Listener = Callable[[Any], Awaitable[None] | None]
Answer = Callable[[Any], Any]
TokenSource = str | Callable[[], str | Awaitable[str | None] | None] | None
Offline = Literal["wait", "fail"]

_DEFAULT: Any = object()


class _Refused(Exception):
    """The connection closed before its welcome (e.g. refused authentication with a close code)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed before the welcome: {code} {reason!r}")
        self.code = code
        self.reason = reason


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[Any]
    sent: bool = False


class Client:
    """A connection to a channel route that reconnects and recovers by itself.

    `token` (a string, or a function, possibly async, called before every handshake) goes
    in `Authorization: Bearer`; `ssl` is the context for `wss://` URLs. Events emitted and
    requests made while offline wait in one queue of at most `max_queued` messages
    (`QueueFull` past it) and go out after the next welcome. With `device` (a stable id of
    this device, sent as `?device=`), the user's durable messages that arrived while it was
    away are delivered after the welcome and acknowledged once their listeners ran
    (`auto_ack`; otherwise call `ack(offset)`). With `transports=("websocket", "sse")`, when
    a WebSocket cannot be opened within `connect_timeout` (refused upgrade, reset, timeout)
    the client uses Server-Sent Events + POST on the same route (needs aiohttp), and keeps
    that transport for its reconnects; `transport` says which one is in use.
    """

    def __init__(
        self,
        url: str,
        *,
        token: TokenSource = None,
        headers: dict[str, str] | None = None,
        ssl: ssl_module.SSLContext | None = None,
        reconnect: bool = True,
        backoff: Backoff | None = None,
        request_timeout: float | None = 10.0,
        connect_timeout: float = 10.0,
        max_queued: int = 1000,
        max_deliveries: int = 10_000,
        no_reconnect_codes: Iterable[int] = NO_RECONNECT_CODES,
        device: str | None = None,
        auto_ack: bool = True,
        transports: Iterable[str] = ("websocket",),
    ) -> None:
        if max_queued < 0:
            raise ValueError("max_queued must be >= 0")
        self.url = _with_device(url, device) if device is not None else url
        self.auto_ack = auto_ack
        self.transports = tuple(transports)
        unknown = set(self.transports) - {"websocket", "sse"}
        if unknown or not self.transports:
            raise ValueError(f"transports are 'websocket' and/or 'sse', not {sorted(unknown) or 'none'}")
        self.transport: str | None = None
        """The transport of the current or last connection: "websocket" or "sse"."""
        self.device: str | None = None
        """The inbox device of the current connection (from its welcome), or None."""
        self.token = token
        self.headers = dict(headers or {})
        self.ssl = ssl
        self.reconnect = reconnect
        self.backoff = backoff or Backoff()
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.max_queued = max_queued
        self.no_reconnect_codes = frozenset(no_reconnect_codes)
        self.client_id: str | None = None
        """The current connection's id (from its welcome); None while disconnected."""
        self.user: str | None = None
        """The user id the server authenticated (None when anonymous)."""
        self.connected = False
        """Whether the current connection's welcome arrived (sends go out at once)."""
        self.close_code: int | None = None
        """The code of the last close (None while connected)."""
        self._streams: dict[str, RoomStream] = {}
        self._listeners: dict[str, list[Listener]] = {}
        self._answers: dict[str, Answer] = {}
        self._pending: dict[str, _Pending] = {}
        self._queue: deque[tuple[str, str | None]] = deque()
        self._deliveries: deque[tuple[str, Any, int | None]] = deque()
        self._ack_up_to = 0
        self._ack_scheduled = False
        self._max_deliveries = max_deliveries
        self._delivery_ready = asyncio.Event()
        self._delivery_space = asyncio.Event()
        self._ids = itertools.count(1)
        self._ws: Link | None = None
        self._runner: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopped = True
        self._ever_connected = False

    # ---- events ---------------------------------------------------------------------------

    def on(self, type: str, fn: Listener | None = None) -> Any:
        """Call `fn(data)` (sync or async) for each server event of `type`, or lifecycle event
        ("open", "close", "reconnecting", "rejoin", "recovery", "error"); without `fn`, a
        decorator. Listeners run one at a time, in arrival order."""

        def register(listener: Listener) -> Listener:
            self._listeners.setdefault(type, []).append(listener)
            return listener

        return register(fn) if fn is not None else register

    def off(self, type: str, fn: Listener | None = None) -> None:
        """Stop calling `fn` for `type` (without `fn`: every listener of `type`)."""
        if fn is None:
            self._listeners.pop(type, None)
        elif fn in self._listeners.get(type, []):
            self._listeners[type].remove(fn)

    def handle(self, type: str, fn: Answer | None) -> None:
        """Answer the server's requests of `type` with `fn(data)` (sync or async); a raised
        `ClientError` answers with its code, any other exception with "handler_error"."""
        if fn is None:
            self._answers.pop(type, None)
        else:
            self._answers[type] = fn

    def _fire(self, type: str, data: Any, inbox: int | None = None) -> None:
        """Queue `data` for the listeners of `type`, after whatever was queued before it
        (a durable message, with its `inbox` offset, is queued even without listeners: it is acknowledged)."""
        if type in self._listeners or inbox is not None:
            self._deliveries.append((type, data, inbox))
            self._delivery_ready.set()

    async def _room_for_more(self) -> None:
        """Wait while `max_deliveries` wait for listeners (the socket is not read meanwhile)."""
        while len(self._deliveries) >= self._max_deliveries:
            self._delivery_space.clear()
            await self._delivery_space.wait()

    async def _dispatch(self) -> None:
        while True:
            while not self._deliveries:
                self._delivery_ready.clear()
                await self._delivery_ready.wait()
            type, data, inbox = self._deliveries.popleft()
            self._delivery_space.set()
            for listener in list(self._listeners.get(type, ())):
                try:
                    result = listener(data)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    logger.exception("listener of %r failed", type)
            if inbox is not None:
                self._handled(inbox)

    def _handled(self, offset: int) -> None:
        """A durable message's listeners ran: acknowledge it (one hubbub.ack per burst, the highest offset)."""
        if not self.auto_ack or self.device is None:
            return
        self._ack_up_to = max(self._ack_up_to, offset)
        if not self._ack_scheduled:
            self._ack_scheduled = True
            self._spawn(self._send_ack(self._ws))

    async def _send_ack(self, ws: Link | None) -> None:
        await asyncio.sleep(0)
        if not self._ack_scheduled:
            return
        self._ack_scheduled = False
        if ws is not None and ws is self._ws and self.connected:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(orjson.dumps({"type": "hubbub.ack", "data": {"inbox": self._ack_up_to}}).decode())

    async def ack(self, offset: int, *, timeout: float | None = _DEFAULT) -> dict[str, Any]:
        """Acknowledge the durable messages up to inbox offset `offset` on this device (hubbub.ack;
        needed only with `auto_ack=False`); returns the device's cursor, {"inbox": C}."""
        reply = await self.request("hubbub.ack", {"inbox": offset}, timeout=timeout, offline="fail")
        return reply if isinstance(reply, dict) else {}

    # ---- sending ----------------------------------------------------------------------------

    async def emit(self, type: str, data: Any = None) -> None:
        """Send an event (no reply). Offline, it waits in the queue; raises QueueFull when that is full."""
        self._check_open()
        await self._send({"type": _checked(type), "data": data}, None)

    async def request(
        self, type: str, data: Any = None, *, timeout: float | None = _DEFAULT, offline: Offline = "wait"
    ) -> Any:
        """Send a request and return its reply's data. Raises ClientError with the server's
        code, RequestTimeout after `timeout` seconds (default `request_timeout`; None: no
        limit), or ClientError("disconnected") when the connection is lost after sending it.
        Offline, `offline="wait"` queues it for the next connection and `"fail"` raises at once."""
        self._check_open()
        limit = self.request_timeout if timeout is _DEFAULT else timeout
        if not self.connected and offline == "fail":
            raise ClientError("disconnected", "not connected")
        request_id = f"c{next(self._ids)}"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = _Pending(future)
        try:
            await self._send({"type": _checked(type), "id": request_id, "data": data}, request_id)
            async with asyncio.timeout(limit):
                return await future
        except TimeoutError:
            raise RequestTimeout(f"no reply to {type!r} within {limit} s") from None
        finally:
            self._pending.pop(request_id, None)
            if not future.done():
                self._queue = deque(item for item in self._queue if item[1] != request_id)

    async def _send(self, envelope: dict[str, Any], request_id: str | None) -> None:
        text = orjson.dumps(envelope).decode()
        ws = self._ws
        if self.connected and ws is not None:
            await ws.send(text)
            if request_id is not None:
                self._pending[request_id].sent = True
            return
        if len(self._queue) >= self.max_queued:
            raise QueueFull(f"{len(self._queue)} messages already wait for the connection")
        self._queue.append((text, request_id))

    def _check_open(self) -> None:
        if self._stopped:
            raise ClientError("closed", "the client is closed")

    # ---- rooms -------------------------------------------------------------------------------

    @property
    def rooms(self) -> frozenset[str]:
        """The rooms joined through this client (re-joined after every reconnect)."""
        return frozenset(room for room, stream in self._streams.items() if stream.joined)

    def position(self, room: str) -> tuple[int, str] | None:
        """(offset, epoch) of the last publication of `room` delivered to the app, if it keeps history."""
        stream = self._streams.get(room)
        if stream is None or stream.offset is None or not stream.epoch:
            return None
        return stream.offset, stream.epoch

    async def join(self, room: str, *, history: int | None = None, timeout: float | None = _DEFAULT) -> dict[str, Any]:
        """Join `room` (hubbub.join) and return the reply. With `history`, the last `history`
        publications reach the listeners first, in order. The room is re-joined after every
        reconnect, asking for what it missed."""
        data: dict[str, Any] = {"room": room}
        if history is not None:
            data["history"] = history
        existing = self._streams.get(room)
        stream = existing or RoomStream(room)
        stream.joining = True
        self._streams[room] = stream
        try:
            reply = await self.request("hubbub.join", data, timeout=timeout)
        except BaseException:
            if existing is None and self._streams.get(room) is stream:
                del self._streams[room]
            else:
                stream.joining = False
            raise
        self._settle(stream, reply if isinstance(reply, dict) else {}, recovering=False)
        return reply if isinstance(reply, dict) else {}

    async def leave(self, room: str, *, timeout: float | None = _DEFAULT) -> dict[str, Any]:
        """Leave `room` (hubbub.leave). Offline it only forgets the room: membership ended with the connection."""
        self._streams.pop(room, None)
        if not self.connected:
            return {"room": room}
        try:
            reply = await self.request("hubbub.leave", {"room": room}, timeout=timeout, offline="fail")
        except ClientError as exc:
            if exc.code == "disconnected":
                return {"room": room}
            raise
        return reply if isinstance(reply, dict) else {"room": room}

    async def publish(
        self,
        room: str,
        type: str | None,
        data: Any = None,
        *,
        idempotency_key: str | None = None,
        timeout: float | None = _DEFAULT,
    ) -> dict[str, Any]:
        """Publish `data` to `room`'s members as an event of `type` (None: "hubbub.message"). With
        `idempotency_key`, a retry (say after a lost reply) is applied once in a room with history."""
        body: dict[str, Any] = {"room": room, "data": data}
        if type is not None:
            body["type"] = type
        if idempotency_key is not None:
            body["idempotency_key"] = idempotency_key
        reply = await self.request("hubbub.publish", body, timeout=timeout)
        return reply if isinstance(reply, dict) else {}

    async def refresh(self, token: str, *, timeout: float | None = _DEFAULT) -> Any:
        """Use `token` from now on and, when connected, extend this connection with it (hubbub.refresh)."""
        self.token = token
        if not self.connected:
            return None
        return await self.request("hubbub.refresh", {"token": token}, timeout=timeout)

    def _settle(self, stream: RoomStream, reply: dict[str, Any], *, recovering: bool) -> bool | None:
        """Deliver what a join reply brought; report the recovery; recover again after a gap.
        Returns False when a recovery was asked for and failed, else None."""
        settled = stream.settle(reply, recovering=recovering)
        if settled.recovered is not None:
            self._fire(
                "recovery",
                {
                    "room": stream.room,
                    "recovered": settled.recovered,
                    "missed": settled.missed,
                    "offset": stream.offset,
                    "epoch": stream.epoch,
                },
            )
        for item in settled.deliver:
            self._deliver_publication(item)
        if settled.gap:
            self._spawn(self._recover(stream))
        return False if settled.recovered is False else None

    def _deliver_publication(self, item: Wire) -> None:
        kind = item.get("type")
        if isinstance(kind, str):
            self._fire(kind, item.get("data"))

    async def _recover(self, stream: RoomStream) -> None:
        """Ask for what `stream` missed (a gap in its offsets) with hubbub.join "since"."""
        since = stream.since()
        if since is None or not self.connected or self._streams.get(stream.room) is not stream:
            return
        try:
            reply = await self.request("hubbub.join", {"room": stream.room, "since": since}, offline="fail")
        except ClientError as exc:
            if exc.code not in ("disconnected", "closed"):
                stream.joining = False  # the next publication after the gap asks again
                self._fire("error", {"error": exc, "phase": "recover", "room": stream.room})
            return
        if self._streams.get(stream.room) is stream:
            self._settle(stream, reply if isinstance(reply, dict) else {}, recovering=True)

    async def _rejoin(self) -> None:
        """After a reconnect: join every room again, from its position when it keeps history."""
        streams = [stream for stream in self._streams.values() if stream.joined]
        if not streams:
            return
        results = await asyncio.gather(*(self._rejoin_one(stream) for stream in streams))
        outcome = list(zip(streams, results, strict=True))
        self._fire(
            "rejoin",
            {
                "rooms": [stream.room for stream, result in outcome if result is None or result is False],
                "failed": [{"room": stream.room, "error": result} for stream, result in outcome if result],
                "unrecovered": [stream.room for stream, result in outcome if result is False],
            },
        )

    async def _rejoin_one(self, stream: RoomStream) -> ClientError | bool | None:
        """None: joined again (and recovered, if asked); False: joined, not recovered; or the error."""
        since = stream.since()
        stream.joining = True
        data: dict[str, Any] = {"room": stream.room}
        if since is not None:
            data["since"] = since
        try:
            reply = await self.request("hubbub.join", data, offline="fail")
        except ClientError as exc:
            if exc.code not in ("disconnected", "closed") and self._streams.get(stream.room) is stream:
                del self._streams[stream.room]
            return exc
        if self._streams.get(stream.room) is stream:
            return self._settle(stream, reply if isinstance(reply, dict) else {}, recovering=since is not None)
        return None

    # ---- receiving -----------------------------------------------------------------------------

    def _received(self, ws: Link, message: str | bytes) -> None:
        try:
            envelope = orjson.loads(message)
        except orjson.JSONDecodeError as exc:
            self._fire("error", {"error": exc, "phase": "receive"})
            return
        if not isinstance(envelope, dict):
            return
        kind = envelope.get("type")
        request_id = envelope.get("id")
        if kind is None:
            if request_id is not None:
                self._settle_request(str(request_id), envelope)
        elif not isinstance(kind, str):
            return
        elif request_id is not None:
            self._spawn(self._answer(ws, kind, request_id, envelope.get("data")))
        elif kind == "hubbub.error":
            self._fire(kind, envelope.get("error"))
        elif kind != "hubbub.welcome":
            self._publication(kind, envelope)

    def _publication(self, kind: str, envelope: Wire) -> None:
        offset = envelope.get("offset")
        data = envelope.get("data")
        inbox = envelope.get("inbox")
        if isinstance(inbox, int) and not isinstance(inbox, bool):
            self._fire(kind, data, inbox)
            return
        room = envelope.get("room")
        if room is None and isinstance(data, dict):
            room = data.get("room")
        stream = self._streams.get(room) if isinstance(room, str) else None
        if stream is None or not isinstance(offset, int) or isinstance(offset, bool):
            self._fire(kind, data)
            return
        deliver = stream.live(envelope, offset)
        if deliver is None:
            self._spawn(self._recover(stream))
            return
        for item in deliver:
            self._deliver_publication(item)

    def _settle_request(self, request_id: str, envelope: Wire) -> None:
        pending = self._pending.get(request_id)
        if pending is None or pending.future.done():
            return
        error = envelope.get("error")
        if isinstance(error, dict):
            extra = {k: v for k, v in error.items() if k not in ("code", "message")}
            code, message = str(error.get("code") or "error"), str(error.get("message") or "error")
            pending.future.set_exception(ClientError(code, message, **extra))
        else:
            pending.future.set_result(envelope.get("data"))

    async def _answer(self, ws: Link, kind: str, request_id: Any, data: Any) -> None:
        fn = self._answers.get(kind)
        reply: dict[str, Any]
        if fn is None:
            reply = {"id": request_id, "error": {"code": "unknown_type", "message": f"no handler for {kind}"}}
        else:
            try:
                result = fn(data)
                if inspect.isawaitable(result):
                    result = await result
                reply = {"id": request_id, "data": result}
            except ClientError as exc:
                reply = {"id": request_id, "error": {"code": exc.code, "message": exc.message}}
            except Exception as exc:
                logger.exception("answer to the server's %r failed", kind)
                reply = {"id": request_id, "error": {"code": "handler_error", "message": str(exc) or kind}}
        try:
            text = orjson.dumps(reply).decode()
        except TypeError as exc:
            text = orjson.dumps(
                {"id": request_id, "error": {"code": "handler_error", "message": f"reply is not JSON: {exc}"}}
            ).decode()
        if ws is self._ws and self.connected:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(text)

    # ---- the connection -------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect and wait for the welcome. The first attempt's failure is raised
        (HandshakeError, OSError, TimeoutError, or ClientError for a close before the
        welcome); after that the client reconnects by itself until `close()`."""
        if not self._stopped:
            return
        self._stopped = False
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.create_task(self._dispatch(), name="hubbub-client-dispatch")
        try:
            ws = await self._open()
        except _Refused as exc:
            self._stopped = True
            raise ClientError("refused", exc.reason or "closed before the welcome", close_code=exc.code) from None
        except BaseException:
            self._stopped = True
            raise
        await self._welcomed(ws)
        self._runner = asyncio.create_task(self._run(ws), name="hubbub-client")

    async def close(self) -> None:
        """Close for good: pending requests fail with "closed", queued messages are dropped."""
        if self._stopped and self._runner is None:
            return
        if self._ack_scheduled:
            await self._send_ack(self._ws)  # what the listeners handled is acknowledged before leaving
        self._stopped = True
        self.connected = False
        self._fail_pending(ClientError("closed", "the client was closed"), queued=True)
        ws = self._ws
        self._ws = None
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close(timeout=2.0)
        for task in [self._runner, *self._tasks]:
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        self._runner = None
        dispatcher, self._dispatcher = self._dispatcher, None
        if dispatcher is not None:
            dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dispatcher

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _open(self) -> Link:
        """One attempt: handshake, then the welcome."""
        source = self.token
        token = source() if callable(source) else source
        if inspect.isawaitable(token):
            token = await token
        headers = dict(self.headers)
        if token:
            headers["authorization"] = f"Bearer {token}"
        ws = await self._handshake(headers)
        try:
            first = await ws.recv(timeout=self.connect_timeout)
            welcome = orjson.loads(first)
        except ConnectionClosed:
            raise _Refused(ws.close_code, ws.close_reason) from None
        except (TimeoutError, orjson.JSONDecodeError):
            ws.abort()
            raise
        if not isinstance(welcome, dict) or welcome.get("type") != "hubbub.welcome":
            ws.abort()
            raise _Refused(None, "the first message was not a welcome")
        data = welcome.get("data")
        if not isinstance(data, dict):
            data = {}
        self.client_id = data.get("client_id")
        self.user = data.get("user")
        self.device = data.get("device")
        self._ack_up_to = 0
        return ws

    async def _handshake(self, headers: dict[str, str]) -> Link:
        """A WebSocket, or (after a WebSocket attempt fails, if allowed) the SSE + POST fallback."""
        if self.transport != "sse" and "websocket" in self.transports:
            try:
                ws = await connect(
                    self.url, headers=headers, subprotocols=[SUBPROTOCOL], timeout=self.connect_timeout, ssl=self.ssl
                )
            except HandshakeError as exc:
                if "sse" not in self.transports or exc.status in _NOT_A_TRANSPORT_PROBLEM:
                    raise
            except (OSError, TimeoutError, ConnectionClosed):
                if "sse" not in self.transports:
                    raise
            else:
                self.transport = "websocket"
                return ws
        link = await open_sse(self.url, headers=headers, timeout=self.connect_timeout, ssl=self.ssl)
        self.transport = "sse"
        return link

    async def _welcomed(self, ws: Link) -> None:
        """The connection is up: rejoin (recovering), send what waited, tell the app."""
        reconnected = self._ever_connected
        self._ever_connected = True
        self._ws = ws
        self.connected = True
        self.close_code = None
        self._fire("open", {"client_id": self.client_id, "user": self.user, "reconnected": reconnected})
        if reconnected:
            self._spawn(self._rejoin())
        queued, self._queue = self._queue, deque()
        for text, request_id in queued:
            await ws.send(text)
            pending = self._pending.get(request_id) if request_id is not None else None
            if pending is not None:
                pending.sent = True

    async def _run(self, ws: Link) -> None:
        """Read the connection; when it ends, reconnect with backoff until told to stop."""
        attempt = 0
        while True:
            code, reason = await self._read(ws)
            self._lost(ws, code, reason)
            if self._stopped:
                return
            while True:
                attempt += 1
                delay = self.backoff.delay(attempt)
                self._fire("reconnecting", {"attempt": attempt, "delay": delay})
                await asyncio.sleep(delay)
                try:
                    ws = await self._open()
                except HandshakeError as exc:
                    if _refused_for_good(exc):
                        self._stop(_close_code_of(exc), f"handshake refused with HTTP {exc.status}")
                        return
                    await asyncio.sleep(max(0.0, _retry_after(exc) - delay))
                    continue
                except _Refused as exc:
                    if exc.code in self.no_reconnect_codes:
                        self._stop(exc.code, exc.reason)
                        return
                    continue
                except (OSError, TimeoutError, ConnectionClosed, orjson.JSONDecodeError) as exc:
                    logger.debug("reconnect attempt %d failed: %s", attempt, exc)
                    continue
                break
            attempt = 0
            await self._welcomed(ws)

    async def _read(self, ws: Link) -> tuple[int | None, str]:
        while True:
            try:
                message = await ws.recv(timeout=None)
            except ConnectionClosed:
                break
            self._received(ws, message)
            await self._room_for_more()
        with contextlib.suppress(Exception):
            await ws.wait_closed(timeout=1.0)
        return ws.close_code, ws.close_reason

    def _lost(self, ws: Link, code: int | None, reason: str) -> None:
        if ws is not self._ws:
            return
        self._ws = None
        self.connected = False
        self.client_id = None
        self.close_code = code
        for stream in self._streams.values():
            stream.joining = True
        stop = not self.reconnect or code in self.no_reconnect_codes
        self._fail_pending(ClientError("disconnected", f"connection lost ({code})", close_code=code), queued=stop)
        self._fire("close", {"code": code, "reason": reason, "will_reconnect": not stop and not self._stopped})
        if stop:
            self._stopped = True

    def _stop(self, code: int | None, reason: str) -> None:
        self._stopped = True
        self.close_code = code
        self._fail_pending(ClientError("disconnected", reason, close_code=code), queued=True)
        self._fire("close", {"code": code, "reason": reason, "will_reconnect": False})

    def _fail_pending(self, error: ClientError, *, queued: bool) -> None:
        waiting = {request_id for _, request_id in self._queue if request_id is not None}
        for request_id, pending in list(self._pending.items()):
            if (queued or request_id not in waiting) and not pending.future.done():
                pending.future.set_exception(error)
        if queued:
            self._queue.clear()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _with_device(url: str, device: str) -> str:
    """`url` with its `device` query parameter set to `device`."""
    parts = urlsplit(url)
    query = [(name, value) for name, value in parse_qsl(parts.query, keep_blank_values=True) if name != "device"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("device", device)])))


def _checked(type: str) -> str:
    if not isinstance(type, str) or not type:
        raise TypeError("an event type must be a non-empty string")
    return type


def _header_code(exc: HandshakeError) -> int | None:
    try:
        body = orjson.loads(exc.body) if exc.body else None
    except orjson.JSONDecodeError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, int) else None


def _close_code_of(exc: HandshakeError) -> int | None:
    return _header_code(exc)


def _refused_for_good(exc: HandshakeError) -> bool:
    """Refusals a retry cannot fix: authentication (401, or 429 with code 4003), 403, 404, 400."""
    if exc.status in (400, 401, 403, 404, 426):
        return True
    return exc.status == 429 and _header_code(exc) == 4003


def _retry_after(exc: HandshakeError) -> float:
    """The server's retry-after hint in seconds (0 without one), capped at 5 minutes."""
    value = exc.headers.get("retry-after", "")
    try:
        return min(300.0, max(0.0, float(value)))
    except ValueError:
        return 0.0
