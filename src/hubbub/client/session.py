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
import itertools
import logging
import ssl as ssl_module
from collections.abc import Awaitable, Iterable
from typing import Any, Literal

import orjson

from hubbub.client.answers import Answer, answer
from hubbub.client.backoff import Backoff
from hubbub.client.links import (
    Link,
    Refused,
    TokenSource,
    close_code_of,
    open_link,
    read_welcome,
    refused_for_good,
    retry_after,
    with_device,
    with_token,
)
from hubbub.client.listeners import Listener, Listeners
from hubbub.client.outbox import Outbox
from hubbub.client.rooms import Rooms
from hubbub.client.streams import RoomStream, Wire
from hubbub.errors import ClientError, ConnectionClosed, HandshakeError, RequestTimeout

logger = logging.getLogger("hubbub.client")

NO_RECONNECT_CODES = frozenset({1000, 1008, 4001, 4002, 4003})
"""Close codes after which the client stops: the server meant it (1000), a policy (1008),
or authentication (4001 no credentials, 4002 invalid or expired, 4003 too many connections)."""
LIFECYCLE_EVENTS = ("open", "close", "reconnecting", "rejoin", "recovery", "error")

Offline = Literal["wait", "fail"]

_DEFAULT: Any = object()


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
        self.url = with_device(url, device) if device is not None else url
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
        self._listeners = Listeners(max_deliveries)
        self._rooms = Rooms(self.request, self._listeners.fire, self._spawn, lambda: self.connected)
        self._answers: dict[str, Answer] = {}
        self._outbox = Outbox()
        self._ack_up_to = 0
        self._ack_scheduled = False
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
            self._listeners.add(type, listener)
            return listener

        return register(fn) if fn is not None else register

    def off(self, type: str, fn: Listener | None = None) -> None:
        """Stop calling `fn` for `type` (without `fn`: every listener of `type`)."""
        self._listeners.remove(type, fn)

    def handle(self, type: str, fn: Answer | None) -> None:
        """Answer the server's requests of `type` with `fn(data)` (sync or async); a raised
        `ClientError` answers with its code, any other exception with "handler_error"."""
        if fn is None:
            self._answers.pop(type, None)
        else:
            self._answers[type] = fn

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
        future = self._outbox.expect(request_id)
        try:
            await self._send({"type": _checked(type), "id": request_id, "data": data}, request_id)
            async with asyncio.timeout(limit):
                return await future
        except TimeoutError:
            raise RequestTimeout(f"no reply to {type!r} within {limit} s") from None
        finally:
            self._outbox.forget(request_id)

    async def _send(self, envelope: dict[str, Any], request_id: str | None) -> None:
        ws = self._ws if self.connected else None
        await self._outbox.send(ws, orjson.dumps(envelope).decode(), request_id, self.max_queued)

    def _check_open(self) -> None:
        if self._stopped:
            raise ClientError("closed", "the client is closed")

    # ---- rooms -------------------------------------------------------------------------------

    @property
    def rooms(self) -> frozenset[str]:
        """The rooms joined through this client (re-joined after every reconnect)."""
        return frozenset(room for room, stream in self._rooms.streams.items() if stream.joined)

    def position(self, room: str) -> tuple[int, str] | None:
        """(offset, epoch) of the last publication of `room` delivered to the app, if it keeps history."""
        stream = self._rooms.streams.get(room)
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
        existing = self._rooms.streams.get(room)
        stream = existing or RoomStream(room)
        stream.joining = True
        self._rooms.streams[room] = stream
        try:
            reply = await self.request("hubbub.join", data, timeout=timeout)
        except BaseException:
            if existing is None and self._rooms.streams.get(room) is stream:
                del self._rooms.streams[room]
            else:
                stream.joining = False
            raise
        self._rooms.settle(stream, reply if isinstance(reply, dict) else {}, recovering=False)
        return reply if isinstance(reply, dict) else {}

    async def leave(self, room: str, *, timeout: float | None = _DEFAULT) -> dict[str, Any]:
        """Leave `room` (hubbub.leave). Offline it only forgets the room: membership ended with the connection."""
        self._rooms.streams.pop(room, None)
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

    # ---- receiving -----------------------------------------------------------------------------

    def _received(self, ws: Link, message: str | bytes) -> None:
        try:
            envelope = orjson.loads(message)
        except orjson.JSONDecodeError as exc:
            self._listeners.fire("error", {"error": exc, "phase": "receive"})
            return
        if not isinstance(envelope, dict):
            return
        kind = envelope.get("type")
        request_id = envelope.get("id")
        if kind is None:
            if request_id is not None:
                self._outbox.settle(str(request_id), envelope)
        elif not isinstance(kind, str):
            return
        elif request_id is not None:
            self._spawn(self._answer(ws, kind, request_id, envelope.get("data")))
        elif kind == "hubbub.error":
            self._listeners.fire(kind, envelope.get("error"))
        elif kind != "hubbub.welcome":
            self._publication(kind, envelope)

    def _publication(self, kind: str, envelope: Wire) -> None:
        data = envelope.get("data")
        inbox = envelope.get("inbox")
        if isinstance(inbox, int) and not isinstance(inbox, bool):
            self._listeners.fire(kind, data, inbox)
        else:
            self._rooms.live(kind, envelope, data)

    async def _answer(self, ws: Link, kind: str, request_id: Any, data: Any) -> None:
        text = await answer(self._answers.get(kind), kind, request_id, data)
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
            self._dispatcher = asyncio.create_task(self._listeners.run(self._handled), name="hubbub-client-dispatch")
        try:
            ws = await self._open()
        except Refused as exc:
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
        self._outbox.fail(ClientError("closed", "the client was closed"), queued=True)
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
        headers = await with_token(self.headers, self.token)
        ws, self.transport = await open_link(
            self.url,
            headers,
            transports=self.transports,
            current=self.transport,
            timeout=self.connect_timeout,
            ssl=self.ssl,
        )
        data = await read_welcome(ws, self.connect_timeout)
        self.client_id = data.get("client_id")
        self.user = data.get("user")
        self.device = data.get("device")
        self._ack_up_to = 0
        return ws

    async def _welcomed(self, ws: Link) -> None:
        """The connection is up: rejoin (recovering), send what waited, tell the app."""
        reconnected = self._ever_connected
        self._ever_connected = True
        self._ws = ws
        self.connected = True
        self.close_code = None
        self._listeners.fire("open", {"client_id": self.client_id, "user": self.user, "reconnected": reconnected})
        if reconnected:
            self._spawn(self._rooms.rejoin())
        await self._outbox.flush(ws)

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
                self._listeners.fire("reconnecting", {"attempt": attempt, "delay": delay})
                await asyncio.sleep(delay)
                try:
                    ws = await self._open()
                except HandshakeError as exc:
                    if refused_for_good(exc):
                        self._stop(close_code_of(exc), f"handshake refused with HTTP {exc.status}")
                        return
                    await asyncio.sleep(max(0.0, retry_after(exc) - delay))
                    continue
                except Refused as exc:
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
            await self._listeners.room_for_more()
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
        for stream in self._rooms.streams.values():
            stream.joining = True
        stop = not self.reconnect or code in self.no_reconnect_codes
        self._outbox.fail(ClientError("disconnected", f"connection lost ({code})", close_code=code), queued=stop)
        self._listeners.fire(
            "close", {"code": code, "reason": reason, "will_reconnect": not stop and not self._stopped}
        )
        if stop:
            self._stopped = True

    def _stop(self, code: int | None, reason: str) -> None:
        self._stopped = True
        self.close_code = code
        self._outbox.fail(ClientError("disconnected", reason, close_code=code), queued=True)
        self._listeners.fire("close", {"code": code, "reason": reason, "will_reconnect": False})

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _checked(type: str) -> str:
    if not isinstance(type, str) or not type:
        raise TypeError("an event type must be a non-empty string")
    return type
