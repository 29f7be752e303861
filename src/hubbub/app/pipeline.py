"""The handlers and middleware one connection runs, resolved once per endpoint."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from hubbub.app.endpoint import Handler, WebSocketEndpoint
from hubbub.errors import Abort
from hubbub.options import ServerOptions
from hubbub.runtime.events import Event


class Pipeline:
    """Global and endpoint middleware around an endpoint's handlers.

    Before-middleware run in order (global first) and may abort the event; then
    the handler; then after-middleware (endpoint first, then global).
    """

    __slots__ = (
        "endpoint",
        "before",
        "after",
        "handlers",
        "on_drain",
        "on_ping",
        "on_pong",
        "on_error",
        "max_backpressure",
        "backpressure_policy",
        "max_pending",
        "message_rate",
        "message_burst",
        "rate_limit_strikes",
        "revision",
    )

    def __init__(
        self,
        endpoint: WebSocketEndpoint,
        global_before: list[Handler],
        global_after: list[Handler],
        options: ServerOptions,
    ) -> None:
        self.endpoint = endpoint
        self.revision = endpoint.revision
        self.before = [*global_before, *endpoint.before_middleware]
        self.after = [*endpoint.after_middleware, *global_after]
        self.handlers = {
            "connect": endpoint.handlers["on_connect"],
            "message": endpoint.handlers["on_message"],
            "disconnect": endpoint.handlers["on_disconnect"],
            "drain": endpoint.handlers["on_drain"],
            "ping": endpoint.handlers["on_ping"],
            "pong": endpoint.handlers["on_pong"],
            "error": endpoint.handlers["on_error"],
        }
        self.on_drain = endpoint.handlers["on_drain"]
        self.on_ping = endpoint.handlers["on_ping"]
        self.on_pong = endpoint.handlers["on_pong"]
        self.on_error = endpoint.handlers["on_error"]
        self.max_backpressure = endpoint.max_backpressure or options.max_backpressure
        self.backpressure_policy = endpoint.backpressure_policy or options.backpressure_policy
        self.max_pending = options.max_pending_messages
        self.message_rate = options.message_rate
        self.message_burst = options.message_burst
        self.rate_limit_strikes = options.rate_limit_strikes

    def coroutine_for(self, event: Event) -> Coroutine[Any, Any, Any] | None:
        """The coroutine that handles `event`, or None if nothing is registered for it."""
        handler = self.handlers[event.type]
        if not self.before and not self.after:
            return handler(event) if handler is not None else None
        return self._run(handler, event)

    async def _run(self, handler: Handler | None, event: Event) -> None:
        # Connect events ran their before-middleware at the handshake.
        if event.type != "connect" and not await self.run_before(event):
            return
        if handler is not None:
            await handler(event)
        for middleware in self.after:
            await middleware(event)

    async def run_before(self, event: Event) -> bool:
        """Run the before-middleware; False if one of them aborted the event."""
        for middleware in self.before:
            try:
                await middleware(event)
            except Abort as abort:
                event._abort = abort
            if event._abort is not None:
                return False
        return True
