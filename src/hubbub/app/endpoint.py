"""A WebSocket endpoint: the handlers and middleware that serve one kind of connection."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from hubbub.errors import ConfigurationError
from hubbub.options import check_backpressure_policy
from hubbub.runtime.events import Event

if TYPE_CHECKING:
    from hubbub.auth.user import Authenticator
    from hubbub.protocol.codecs import Codec
    from hubbub.protocol.envelope import Envelope
    from hubbub.runtime.connection import Connection
    from hubbub.transport.message import BackpressurePolicy

Handler = Callable[[Event], Coroutine[Any, Any, Any]]
AnyHandler = Callable[[Event], Awaitable[Any] | Any]
T = TypeVar("T")

_HANDLER_NAMES = ("on_connect", "on_message", "on_disconnect", "on_drain", "on_ping", "on_pong", "on_error")


def as_async(fn: AnyHandler) -> Handler:
    """Accept plain functions as handlers by wrapping them in a coroutine function."""
    if inspect.iscoroutinefunction(fn):
        return fn

    @functools.wraps(fn)
    async def wrapper(event: Event) -> Any:
        result = fn(event)
        if inspect.isawaitable(result):
            return await result
        return result

    return wrapper


class WebSocketEndpoint:
    """Handlers for connect, message, disconnect and drain (and the transport hooks ping,
    pong and error), each optional, plus middleware.

    Use it as a decorator: on a function it registers the message handler, on a
    class it instantiates it and takes its `on_connect` / `on_message` /
    `on_disconnect` / `on_drain` / `on_ping` / `on_pong` / `on_error` methods. Or
    use the `on_*` decorators.

    `max_backpressure` and `backpressure_policy` override the server's for this
    route's connections (None: the server's).
    """

    def __init__(
        self,
        on_connect: AnyHandler | None = None,
        on_message: AnyHandler | None = None,
        on_disconnect: AnyHandler | None = None,
        on_drain: AnyHandler | None = None,
        *,
        subprotocols: Iterable[str] = (),
        before: Iterable[AnyHandler] = (),
        after: Iterable[AnyHandler] = (),
        auth: Authenticator | Literal[False] | None = None,
        on_ping: AnyHandler | None = None,
        on_pong: AnyHandler | None = None,
        on_error: AnyHandler | None = None,
        max_backpressure: int | None = None,
        backpressure_policy: BackpressurePolicy | None = None,
    ) -> None:
        if backpressure_policy is not None:
            check_backpressure_policy(backpressure_policy)
        if max_backpressure is not None and max_backpressure <= 0:
            raise ConfigurationError("max_backpressure must be positive")
        self.max_backpressure = max_backpressure
        self.backpressure_policy: BackpressurePolicy | None = backpressure_policy
        self.auth = auth
        self.revision = 0
        """Bumped whenever handlers or middleware change (running connections pick it up)."""
        """None: the app's authenticator; False: no authentication; else this route's own."""
        self.handlers: dict[str, Handler | None] = dict.fromkeys(_HANDLER_NAMES)
        given = (on_connect, on_message, on_disconnect, on_drain, on_ping, on_pong, on_error)
        for name, fn in zip(_HANDLER_NAMES, given, strict=True):
            if fn is not None:
                self.handlers[name] = as_async(fn)
        self.subprotocols = list(subprotocols)
        self.before_middleware: list[Handler] = [as_async(fn) for fn in before]
        self.after_middleware: list[Handler] = [as_async(fn) for fn in after]

    # ---- hooks a channel route overrides ----------------------------------------------

    def choose_codec(self, subprotocol: str | None) -> Codec | None:
        """The envelope codec of a connection (None: raw text/bytes)."""
        return None

    def welcome(self, conn: Connection) -> Envelope | None:
        """An envelope sent first on every new connection (None: nothing)."""
        return None

    def intercept(self, conn: Connection, data: str | bytes, is_binary: bool) -> Event | None:
        """Turn a received message into the event its handlers get (None: handled already)."""
        return Event("message", conn, data, is_binary)

    def rejected(self, conn: Connection, code: str, message: str) -> None:
        """A message was refused before reaching a handler (raw routes: nothing is said)."""

    def refused(self, event: Event, code: str, message: str) -> None:
        """A decoded message was refused before reaching its handler (raw routes: nothing is said)."""

    def __call__(self, target: T) -> T:
        """Register a message-handler function, or a class of handlers."""
        if inspect.isclass(target):
            instance = target()
            for name in _HANDLER_NAMES:
                method = getattr(instance, name, None)
                if method is not None:
                    self.handlers[name] = as_async(method)
        else:
            self.handlers["on_message"] = as_async(target)  # type: ignore[arg-type]
        self.revision += 1
        return target

    def _register(self, name: str, fn: AnyHandler) -> AnyHandler:
        self.handlers[name] = as_async(fn)
        self.revision += 1
        return fn

    def on_connect(self, fn: AnyHandler) -> AnyHandler:
        """Decorator: called once the connection is open."""
        return self._register("on_connect", fn)

    def on_message(self, fn: AnyHandler) -> AnyHandler:
        """Decorator: called for every text or binary message, in order."""
        return self._register("on_message", fn)

    def on_disconnect(self, fn: AnyHandler) -> AnyHandler:
        """Decorator: called once after the connection closed (event.close_code/close_reason)."""
        return self._register("on_disconnect", fn)

    def on_drain(self, fn: AnyHandler) -> AnyHandler:
        """Decorator: called when a backed-up outgoing buffer has emptied."""
        return self._register("on_drain", fn)

    def on_ping(self, fn: AnyHandler) -> AnyHandler:
        """Decorator: called for every ping from the client (`event.data`: its payload, bytes).
        The pong is sent by the server whatever the handler does."""
        return self._register("on_ping", fn)

    def on_pong(self, fn: AnyHandler) -> AnyHandler:
        """Decorator: called for every pong from the client (`event.data`: its payload, bytes)."""
        return self._register("on_pong", fn)

    def on_error(self, fn: AnyHandler) -> AnyHandler:
        """Decorator: called when the connection fails, before it closes (`event.error`: a
        ProtocolError for a client that broke RFC 6455, else the transport's exception)."""
        return self._register("on_error", fn)

    def before(self, fn: AnyHandler) -> AnyHandler:
        """Decorator: middleware run before every handler of this endpoint (may abort)."""
        self.before_middleware.append(as_async(fn))
        self.revision += 1
        return fn

    def after(self, fn: AnyHandler) -> AnyHandler:
        """Decorator: middleware run after every handler of this endpoint."""
        self.after_middleware.append(as_async(fn))
        self.revision += 1
        return fn
