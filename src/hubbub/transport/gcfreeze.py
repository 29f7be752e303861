"""Keep CPython's full collections short however many connections are open.

A full (generation 2) collection traverses every tracked object, so with the
default collector its pause grows with the number of open connections (each
one a few dozen objects that live as long as the connection). The freezer
moves what is alive into the permanent generation with :func:`gc.freeze` once
enough connections have opened since it last did, so later full collections
traverse only what was created since. It does so in batches from a timer, never
per connection, and never on the per-message path. `hubbub run` also freezes
once at startup, after one full collection, what the imports and the app built.

Frozen objects are never collected by the cycle collector; reference counting
still frees the rest. So that cycles left by closed connections are not kept
forever, once as many connections have closed since the last thaw as were
open then (at least a batch), the freezer thaws everything, runs one full
collection, and freezes what is left: one pause per turnover of the
population instead of one every few thousand handshakes.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Protocol

FREEZE_BATCH = 1000
"""Connections that must have opened since the last freeze before the next one."""
CHECK_INTERVAL = 2.0
"""Seconds between two looks at the counters."""


class Counted(Protocol):
    """What the freezer reads: connections opened so far, and those open now."""

    @property
    def opened_total(self) -> int: ...

    @property
    def open_now(self) -> int: ...


class GcFreezer:
    """Freezes the heap after every `batch` handshakes; thaws and collects once the population turned over."""

    __slots__ = (
        "_batch",
        "_closed_at_thaw",
        "_counted",
        "_handle",
        "_interval",
        "_live_at_thaw",
        "_loop",
        "_opened_at_freeze",
        "freezes",
        "thaws",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        counted: Counted,
        *,
        batch: int = FREEZE_BATCH,
        interval: float = CHECK_INTERVAL,
    ) -> None:
        self._loop = loop
        self._counted = counted
        self._batch = batch
        self._interval = interval
        self._handle: asyncio.TimerHandle | None = None
        self._opened_at_freeze = counted.opened_total
        self._closed_at_thaw = 0
        self._live_at_thaw = 0
        self.freezes = 0
        """Times the heap was frozen after a batch of handshakes."""
        self.thaws = 0
        """Times it was thawed, collected and frozen again after closes."""

    def freeze_startup(self) -> None:
        """Collect once, then freeze what is left: the modules, the app and its routes live as long as the process."""
        gc.collect()
        gc.freeze()

    def start(self) -> None:
        """Begin looking every `interval` seconds (no-op if already running)."""
        if self._handle is None:
            self._handle = self._loop.call_later(self._interval, self._run)

    def stop(self) -> None:
        """Stop looking (what is frozen stays frozen)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _run(self) -> None:
        self.check()
        self._handle = self._loop.call_later(self._interval, self._run)

    def check(self) -> None:
        """Thaw and collect if enough connections closed; else freeze if enough opened."""
        opened, live = self._counted.opened_total, self._counted.open_now
        closed = opened - live
        if closed - self._closed_at_thaw >= max(self._batch, self._live_at_thaw):
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            self.thaws += 1
            self._closed_at_thaw, self._live_at_thaw, self._opened_at_freeze = closed, live, opened
        elif opened - self._opened_at_freeze >= self._batch:
            gc.freeze()
            self.freezes += 1
            self._opened_at_freeze = opened
