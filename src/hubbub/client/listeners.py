"""A Client's listeners: server and lifecycle events queued in arrival order and handed to their
listeners one at a time by one task; the queue is bounded (the socket is not read while it is full)."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger("hubbub.client")

Listener = Callable[[Any], Awaitable[None] | None]


class Listeners:
    """Listeners by event type, and the events waiting for them."""

    def __init__(self, max_deliveries: int) -> None:
        self._by_type: dict[str, list[Listener]] = {}
        self._deliveries: deque[tuple[str, Any, int | None]] = deque()
        self._max_deliveries = max_deliveries
        self._ready = asyncio.Event()
        self._space = asyncio.Event()

    def add(self, type: str, fn: Listener) -> None:
        """Call `fn` for each event of `type`, after the listeners added before it."""
        self._by_type.setdefault(type, []).append(fn)

    def remove(self, type: str, fn: Listener | None) -> None:
        """Stop calling `fn` for `type` (None: every listener of `type`)."""
        if fn is None:
            self._by_type.pop(type, None)
        elif fn in self._by_type.get(type, []):
            self._by_type[type].remove(fn)

    def fire(self, type: str, data: Any, inbox: int | None = None) -> None:
        """Queue `data` for the listeners of `type`, after whatever was queued before it
        (a durable message, with its `inbox` offset, is queued even without listeners: it is acknowledged)."""
        if type in self._by_type or inbox is not None:
            self._deliveries.append((type, data, inbox))
            self._ready.set()

    async def room_for_more(self) -> None:
        """Wait while `max_deliveries` wait for listeners."""
        while len(self._deliveries) >= self._max_deliveries:
            self._space.clear()
            await self._space.wait()

    async def run(self, handled: Callable[[int], None]) -> None:
        """Hand the queued events to their listeners, for ever; `handled(offset)` after a durable message's."""
        while True:
            while not self._deliveries:
                self._ready.clear()
                await self._ready.wait()
            type, data, inbox = self._deliveries.popleft()
            self._space.set()
            for listener in list(self._by_type.get(type, ())):
                try:
                    result = listener(data)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    logger.exception("listener of %r failed", type)
            if inbox is not None:
                handled(inbox)
