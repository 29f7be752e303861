"""Channel routes: typed events and request/response over the envelope protocol.

    chat = app.channel("/chat")

    @chat.on("say", model=Say, timeout=5)
    async def say(event):
        await event.hub.room_broadcast(event.data.room, Envelope("said", event.data))
        return {"ok": True}          # the reply, when the client sent an id

See docs/protocol.md ("Envelope routes") for the wire format.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from hubbub.app.endpoint import AnyHandler, Handler, WebSocketEndpoint, as_async
from hubbub.errors import ConfigurationError
from hubbub.inbox import wire as inbox_wire
from hubbub.protocol import envelope as env
from hubbub.protocol.codecs import Codec, get_codec
from hubbub.protocol.envelope import Envelope, EnvelopeError, error_body
from hubbub.protocol.validation import Validator, validator_for
from hubbub.runtime.events import Event
from hubbub.text import clip
from hubbub.transport.message import BackpressurePolicy

if TYPE_CHECKING:
    from hubbub.runtime.connection import Connection

logger = logging.getLogger("hubbub.channel")

RoomAction = Literal["join", "leave", "publish"]
Authorizer = Callable[[Event, RoomAction, str], Awaitable[bool] | bool]
RoomHook = Callable[[Event, str], Awaitable[Any] | Any]

MAX_HISTORY_ASKED = 100_000
"""The largest `history` a join may ask for (a room never keeps more than its size anyway)."""
MAX_IDEMPOTENCY_KEY = 128


@dataclass(slots=True)
class EventSpec:
    """One registered event type."""

    handler: Handler
    validate: Validator | None
    timeout: float | None
    model: Any = None
    """The payload's type, as given to `on` (for `hubbub schema`)."""
    function: Any = None
    """The handler as written: its return annotation types the reply (for `hubbub schema`)."""


@dataclass(slots=True)
class _Then:
    """A reply, and what to do once it went out."""

    reply: Any
    then: Callable[[], Awaitable[None]]


def _count(value: Any, name: str, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise EnvelopeError(env.BAD_REQUEST, f"{name!r} must be an integer from 0 to {limit}")
    return value


def _position_asked(data: dict[str, Any]) -> tuple[int | None, str | None, int | None]:
    """(since offset, its epoch, last K) from a hubbub.join request."""
    history = data.get("history")
    since = data.get("since")
    if history is not None and since is not None:
        raise EnvelopeError(env.BAD_REQUEST, "ask for 'history' or 'since', not both")
    if history is not None:
        return None, None, _count(history, "history", MAX_HISTORY_ASKED)
    if since is None:
        return None, None, None
    if not isinstance(since, dict):
        raise EnvelopeError(env.BAD_REQUEST, '\'since\' must be an object {"offset": N, "epoch": E}')
    epoch = since.get("epoch")
    if not isinstance(epoch, str) or len(epoch) > 64:
        raise EnvelopeError(env.BAD_REQUEST, "'since.epoch' must be a string of at most 64 characters")
    return _count(since.get("offset"), "since.offset", 2**53), epoch, None


def _room_of(event: Event) -> str:
    data = event.data
    room = data.get("room") if isinstance(data, dict) else None
    if not isinstance(room, str) or not room or len(room) > 256:
        raise EnvelopeError(env.BAD_REQUEST, "'room' must be a non-empty string of at most 256 characters")
    return room


class Channel(WebSocketEndpoint):
    """An envelope route: handlers per event type, replies to requests, typed payloads,
    client room requests decided by an `authorize` hook."""

    def __init__(
        self,
        *,
        codecs: Iterable[str] = ("json",),
        timeout: float | None = 30.0,
        before: Iterable[AnyHandler] = (),
        after: Iterable[AnyHandler] = (),
        max_backpressure: int | None = None,
        backpressure_policy: BackpressurePolicy | None = None,
    ) -> None:
        self.codecs: list[Codec] = [get_codec(name) for name in codecs]
        if not self.codecs:
            raise ConfigurationError("a channel needs at least one codec")
        super().__init__(
            subprotocols=[codec.subprotocol for codec in self.codecs if codec.subprotocol],
            before=before,
            after=after,
            max_backpressure=max_backpressure,
            backpressure_policy=backpressure_policy,
        )
        self.handlers["on_message"] = self._dispatch
        self.default_timeout = timeout
        self._events: dict[str, EventSpec] = {}
        self.server_events: dict[str, Any] = {}
        """Event types the server sends on this route (declared with `emits`), with their payload types."""
        self._authorize: Authorizer | None = None
        self._on_join: list[RoomHook] = []
        self._on_leave: list[RoomHook] = []

    # ---- registration -----------------------------------------------------------------

    def on(
        self, type: str, *, model: Any = None, timeout: float | Literal["default"] | None = "default"
    ) -> Callable[[AnyHandler], AnyHandler]:
        """Decorator: handle events of `type`. With `model`, `event.data` is the validated
        value and invalid data is answered with a validation_error. The return value is
        the reply to a request. `timeout` (seconds, None for none) overrides the channel's."""
        if type.startswith("hubbub."):
            raise ConfigurationError(f"event types starting with 'hubbub.' are reserved: {type!r}")

        def register(fn: AnyHandler) -> AnyHandler:
            self._events[type] = EventSpec(
                handler=as_async(fn),
                validate=validator_for(model) if model is not None else None,
                timeout=self.default_timeout if timeout == "default" else timeout,
                model=model,
                function=fn,
            )
            self.revision += 1
            return fn

        return register

    def emits(self, type: str, *, model: Any = None) -> None:
        """Declare an event type the server sends on this route, with its payload's type, so
        that `hubbub schema` documents it and types it for clients (sending is not checked)."""
        self.server_events[type] = model

    @property
    def events(self) -> dict[str, EventSpec]:
        """The event types clients may send, by name."""
        return dict(self._events)

    def on_message(self, fn: AnyHandler) -> AnyHandler:
        """Not for channels: their messages are dispatched by type; use `@channel.on(type)`."""
        raise ConfigurationError("a channel dispatches messages by type: use @channel.on(type)")

    def __call__(self, target: Any) -> Any:
        """Not for channels: use `@channel.on(type)` and `@channel.on_connect` / `on_disconnect`."""
        raise ConfigurationError("a channel dispatches messages by type: use @channel.on(type)")

    def authorize(self, fn: Authorizer) -> Authorizer:
        """Decorator: `fn(event, action, room) -> bool` decides client requests to join,
        leave or publish to a room. Without it, clients may not join or publish (leaving
        a room one is in is always allowed); server-side joins are unaffected."""
        self._authorize = fn
        return fn

    def on_join(self, fn: RoomHook) -> RoomHook:
        """Decorator: `fn(event, room)` runs after a client joined a room with hubbub.join, once the
        reply went out (so what it sends arrives after the reply), e.g. to greet the joiner."""
        self._on_join.append(fn)
        return fn

    def on_leave(self, fn: RoomHook) -> RoomHook:
        """Decorator: `fn(event, room)` runs after a client left a room with hubbub.leave, once the reply went out."""
        self._on_leave.append(fn)
        return fn

    # ---- the connection's side ------------------------------------------------------

    def choose_codec(self, subprotocol: str | None) -> Codec:
        """The codec for a negotiated subprotocol (the first codec when none was)."""
        for codec in self.codecs:
            if codec.subprotocol == subprotocol and subprotocol is not None:
                return codec
        return self.codecs[0]

    def welcome(self, conn: Connection) -> Envelope | None:
        """The first envelope a client gets: its id, its user, the protocol version."""
        if conn.codec is None or not conn.codec.whole_envelopes:
            return None
        welcome = {"client_id": conn.id, "user": conn.user_id, "protocol": env.PROTOCOL_VERSION}
        device = conn.hub.inbox.device_of(conn)
        if device is not None:
            welcome["device"] = device
        return Envelope(env.WELCOME, welcome)

    def intercept(self, conn: Connection, data: str | bytes, is_binary: bool) -> Event | None:
        """Decode a frame: replies settle pending server requests at once (they must not
        wait behind the handler that awaits them); everything else becomes an event."""
        codec = conn.codec
        assert codec is not None
        try:
            envelope = codec.decode(data)
        except EnvelopeError as exc:
            logger.info(
                "refused a message on connection %s (%s): %s: %s", conn.id, clip(conn.path), exc.code, clip(exc.message)
            )
            conn.send_nowait(Envelope(env.ERROR, error=exc.body()))
            return None
        if envelope.type is None:
            conn.settle_request(envelope)
            return None
        event = Event("message", conn, envelope.data, is_binary)
        event.name = envelope.type
        event.request_id = envelope.id
        spec = self._events.get(envelope.type)
        event.timeout = spec.timeout if spec is not None else self.default_timeout
        return event

    def rejected(self, conn: Connection, code: str, message: str) -> None:
        """Tell the client a message was refused before reaching a handler (e.g. rate limit)."""
        conn.send_nowait(Envelope(env.ERROR, error=error_body(code, message)))

    def refused(self, event: Event, code: str, message: str) -> None:
        """Answer a decoded message that was refused: the request's error reply, or an error event."""
        self._answer_error(event, error_body(code, message))

    # ---- dispatch ----------------------------------------------------------------------

    async def _dispatch(self, event: Event) -> None:
        conn = event.connection
        then = None
        try:
            result = await self._handle(event)
            if isinstance(result, _Then):
                result, then = result.reply, result.then
        except EnvelopeError as exc:
            logger.info("%r on connection %s answered %s: %s", clip(event.name), conn.id, exc.code, clip(exc.message))
            self._answer_error(event, exc.body())
        except asyncio.CancelledError:
            if not event.timed_out:
                raise
            logger.warning(
                "handler for %r timed out after %s s on connection %s", clip(event.name), event.timeout, conn.id
            )
            self._answer_error(event, error_body(env.TIMEOUT, f"handler timed out after {event.timeout} s"))
        except Exception:
            logger.exception("handler for %r failed on connection %s (%s)", clip(event.name), conn.id, clip(conn.path))
            self._answer_error(event, error_body(env.HANDLER_ERROR, "internal error"))
        else:
            if event.request_id is not None:
                try:
                    conn.send_nowait(Envelope(None, result, id=event.request_id))
                except TypeError:
                    logger.exception("reply to %r on connection %s cannot be encoded", clip(event.name), conn.id)
                    self._answer_error(event, error_body(env.HANDLER_ERROR, "internal error"))
            if then is not None:
                await then()

    async def _handle(self, event: Event) -> Any:
        name = event.name or ""
        spec = self._events.get(name)
        if spec is not None:
            if spec.validate is not None:
                event.data = spec.validate(event.data)
            return await spec.handler(event)
        if name == env.JOIN:
            return await self._client_join(event)
        if name == env.LEAVE:
            return await self._client_leave(event)
        if name == env.PUBLISH:
            return await self._client_publish(event)
        if name == env.REFRESH:
            return await event.connection.refresh_auth(event.data)
        if name == inbox_wire.ACK:
            return await event.hub.inbox.ack(event.connection, event.data)
        raise EnvelopeError(env.UNKNOWN_TYPE, f"unknown event type {clip(name)!r}")

    def _answer_error(self, event: Event, error: dict[str, Any]) -> None:
        conn = event.connection
        if event.request_id is not None:
            conn.send_nowait(Envelope(None, id=event.request_id, error=error))
        else:
            name = event.name or ""
            echoed = name if name in self._events else clip(name)
            conn.send_nowait(Envelope(env.ERROR, error={**error, "type": echoed}))

    def _check_portable(self, publication: Envelope) -> None:
        """Refuse a publication some member's codec cannot carry (e.g. MessagePack map keys that
        are not strings, or binary values, for JSON members) before anyone gets it."""
        for codec in self.codecs:
            try:
                codec.encode(publication)
            except (TypeError, ValueError):
                raise EnvelopeError(env.BAD_REQUEST, f"'data' cannot be sent to {codec.name} clients") from None

    async def _allowed(self, event: Event, action: RoomAction, room: str) -> bool:
        if self._authorize is None:
            return False
        verdict = self._authorize(event, action, room)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        return bool(verdict)

    async def _client_join(self, event: Event) -> _Then:
        room = _room_of(event)
        since, epoch, last = _position_asked(event.data)
        if not await self._allowed(event, "join", room):
            raise EnvelopeError(env.FORBIDDEN, f"not allowed to join {clip(room)!r}")
        recovery = await event.hub.join_with_history(room, event.client_id, since=since, epoch=epoch, last=last)

        async def joined() -> None:
            recovery.release()
            await self._run_hooks(self._on_join, event, room)

        return _Then(recovery.reply(), joined)

    async def _client_leave(self, event: Event) -> _Then:
        room = _room_of(event)
        if room not in event.connection.rooms:
            raise EnvelopeError(env.BAD_REQUEST, f"not in room {clip(room)!r}")
        if self._authorize is not None and not await self._allowed(event, "leave", room):
            raise EnvelopeError(env.FORBIDDEN, f"not allowed to leave {clip(room)!r}")
        await event.hub.leave(room, event.client_id)

        async def left() -> None:
            await self._run_hooks(self._on_leave, event, room)

        return _Then({"room": room}, left)

    @staticmethod
    async def _run_hooks(hooks: list[RoomHook], event: Event, room: str) -> None:
        for hook in hooks:
            try:
                result = hook(event, room)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception(
                    "room hook %s failed on connection %s", getattr(hook, "__name__", hook), event.client_id
                )

    async def _client_publish(self, event: Event) -> dict[str, Any]:
        room = _room_of(event)
        data = event.data
        kind = data.get("type", "hubbub.message")
        if not isinstance(kind, str) or not kind:
            raise EnvelopeError(env.BAD_REQUEST, "'type' must be a string")
        if kind.startswith("hubbub.") and kind != "hubbub.message":
            raise EnvelopeError(env.BAD_REQUEST, "publication types starting with 'hubbub.' are reserved")
        if not await self._allowed(event, "publish", room):
            raise EnvelopeError(env.FORBIDDEN, f"not allowed to publish to {clip(room)!r}")
        key = data.get("idempotency_key")
        if key is not None and (not isinstance(key, str) or not 0 < len(key) <= MAX_IDEMPOTENCY_KEY):
            raise EnvelopeError(
                env.BAD_REQUEST, f"'idempotency_key' must be a string of 1 to {MAX_IDEMPOTENCY_KEY} characters"
            )
        conn = event.connection
        payload = {"room": room, "from": conn.id, "user": conn.user_id, "data": data.get("data")}
        publication = Envelope(kind, payload)
        if len(self.codecs) > 1 and (conn.codec is None or conn.codec.name != "json"):
            # JSON data fits every codec; MessagePack data may not fit JSON.
            self._check_portable(publication)
        published = await event.hub.publish(room, publication, idempotency_key=key)
        reply: dict[str, Any] = {"room": room, "delivered": published.delivered}
        if published.epoch:
            reply.update(offset=published.offset, epoch=published.epoch, duplicate=published.duplicate)
        return reply
