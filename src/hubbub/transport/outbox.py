"""One write per connection per event-loop iteration.

Connections queue frames in their own outbox and register here once; a single
callback at the end of the iteration joins each connection's frames into one
write. A send syscall per frame costs more kernel time than all the Python
around it, so this is where fan-out and pipelined echo get their speed.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class Flushable(Protocol):
    """What the flusher needs of a connection."""

    def flush(self) -> None: ...


class Flusher:
    """Collects connections with pending frames and flushes them all in one callback."""

    __slots__ = ("_dirty", "_loop", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._dirty: list[Flushable] = []
        self._scheduled = False

    def mark(self, conn: Flushable) -> None:
        """Flush `conn` at the end of this loop iteration (call once per pending batch)."""
        self._dirty.append(conn)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        dirty = self._dirty
        self._dirty = []
        for conn in dirty:
            conn.flush()


_flushers: dict[asyncio.AbstractEventLoop, Flusher] = {}


def flusher_for(loop: asyncio.AbstractEventLoop) -> Flusher:
    """The flusher of `loop` (one per event loop)."""
    flusher = _flushers.get(loop)
    if flusher is None:
        for old in [old for old in _flushers if old.is_closed()]:
            del _flushers[old]
        flusher = _flushers[loop] = Flusher(loop)
    return flusher
