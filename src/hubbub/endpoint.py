"""A WebSocket endpoint: the handlers and middleware that serve one kind of connection."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from hubbub.events import Event

if TYPE_CHECKING:
    from hubbub.auth import Authenticator
    from hubbub.connection import Connection
    from hubbub.protocol.codecs import Codec
    from hubbub.protocol.envelope import Envelope

Handler = Callable[[Event], Coroutine[Any, Any, Any]]
AnyHandler = Callable[[Event], Awaitable[Any] | Any]
T = TypeVar("T")

_HANDLER_NAMES = ("on_connect", "on_message", "on_disconnect", "on_drain")


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
    """Handlers for connect, message, disconnect and drain, each optional, plus middleware.

    Use it as a decorator: on a function it registers the message handler, on a
    class it instantiates it and takes its `on_connect` / `on_message` /
    `on_disconnect` / `on_drain` methods. Or use the `on_*` decorators.
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
    ) -> None:
        self.auth = auth
        self.revision = 0
        """Bumped whenever handlers or middleware change (running connections pick it up)."""
        """None: the app's authenticator; False: no authentication; else this route's own."""
        self.handlers: dict[str, Handler | None] = dict.fromkeys(_HANDLER_NAMES)
        for name, fn in zip(_HANDLER_NAMES, (on_connect, on_message, on_disconnect, on_drain), strict=True):
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
