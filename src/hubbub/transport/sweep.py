"""The timer sweep: every connection is looked at once per tick, a slice at a time.

Heartbeats, idle timeouts and lifetimes are checked by visiting connections
rather than by a timer each. A server with many connections would stall for a
whole pass, and ping every silent connection in the same instant, if a tick
visited them all at once; instead each pass is cut into slices spread evenly
over the tick, so one slice is at most `SLICE` connections (up to `SLICE * MAX_SLICES`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from typing import Generic, TypeVar

T = TypeVar("T")

SLICE = 250
"""Most connections visited in one go."""
MAX_SLICES = 100
"""A pass is cut into at most this many slices (bigger sets get bigger slices)."""


class Sweep(Generic[T]):
    """Calls `visit(member, now)` for every member of `members` once per `tick` seconds."""

    __slots__ = ("_handle", "_loop", "_members", "_pending", "_slice", "_slices", "_tick", "_visit")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        tick: float,
        members: Collection[T],
        visit: Callable[[T, float], None],
    ) -> None:
        self._loop = loop
        self._tick = tick
        self._members = members
        self._visit = visit
        self._pending: list[T] = []
        self._slices = 1
        self._slice = 0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Begin sweeping (no-op if already running)."""
        if self._handle is None:
            self._handle = self._loop.call_later(self._tick, self._run)

    def stop(self) -> None:
        """Stop sweeping."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._pending = []

    def _run(self) -> None:
        pending = self._pending
        if not pending:
            pending = self._pending = list(self._members)
            self._slices = min(MAX_SLICES, max(1, -(-len(pending) // SLICE)))
            self._slice = -(-len(pending) // self._slices)
        batch = pending[-self._slice :]
        del pending[-self._slice :]
        now = self._loop.time()
        visit = self._visit
        for member in batch:
            visit(member, now)
        self._handle = self._loop.call_later(self._tick / self._slices, self._run)
