"""The memory inbox engine: the embedded default, in the process (lost when it stops)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field

from hubbub.inbox.base import Backlog, Clock, InboxLimits, InboxStore, StoredMessage, missed

SWEEP_EVERY = 60.0
"""Seconds between sweeps of expired messages and forgotten devices of users nobody touches."""


@dataclass(slots=True)
class _Cursor:
    offset: int
    seen: float


@dataclass(slots=True)
class _Stream:
    messages: deque[tuple[int, float, bytes]] = field(default_factory=deque)
    """(offset, expires at, body), oldest first."""
    cursors: dict[str, _Cursor] = field(default_factory=dict)


class MemoryInboxStore(InboxStore):
    """Inboxes in a dict. The last offset of each user is kept for the life of the process, so
    offsets are never reused; messages and device cursors expire with the TTL."""

    def __init__(self, limits: InboxLimits | None = None, *, clock: Clock = time.time) -> None:
        super().__init__(limits, clock=clock)
        self._streams: dict[str, _Stream] = {}
        self._last: dict[str, int] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def sizes(self) -> dict[str, int]:
        return {"users": len(self._streams), "messages": sum(len(s.messages) for s in self._streams.values())}

    async def start(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="hubbub-inbox-sweep")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(min(SWEEP_EVERY, self.limits.ttl))
            self.sweep()

    def sweep(self) -> None:
        """Drop expired messages and cursors everywhere, and streams left empty."""
        now = self.clock()
        for user_id in list(self._streams):
            stream = self._streams[user_id]
            self._expire(stream, now)
            if not stream.messages and not stream.cursors:
                del self._streams[user_id]

    def _expire(self, stream: _Stream, now: float) -> None:
        messages = stream.messages
        while messages and messages[0][1] <= now:
            messages.popleft()
        ttl = self.limits.ttl
        for device in [d for d, c in stream.cursors.items() if c.seen + ttl <= now]:
            del stream.cursors[device]

    async def append(self, user_id: str, body: bytes) -> int:
        now = self.clock()
        offset = self._last.get(user_id, 0) + 1
        self._last[user_id] = offset
        stream = self._streams.get(user_id)
        if stream is None:
            stream = self._streams[user_id] = _Stream()
        self._expire(stream, now)
        messages = stream.messages
        messages.append((offset, now + self.limits.ttl, body))
        while len(messages) > self.limits.size:
            messages.popleft()
        return offset

    async def backlog(self, user_id: str, device: str) -> Backlog:
        now = self.clock()
        last = self._last.get(user_id, 0)
        stream = self._streams.get(user_id)
        if stream is None:
            stream = self._streams[user_id] = _Stream()
        self._expire(stream, now)
        messages = stream.messages
        known = stream.cursors.get(device)
        if known is None:
            cursor = messages[0][0] - 1 if messages else last
            self._remember(stream, device, _Cursor(cursor, now))
        else:
            known.seen = now
            cursor = known.offset
        after = [StoredMessage(offset, body) for offset, _, body in messages if offset > cursor]
        return Backlog(after, last, missed(last, cursor, len(after)))

    def _remember(self, stream: _Stream, device: str, cursor: _Cursor) -> None:
        cursors = stream.cursors
        if len(cursors) >= self.limits.max_devices:
            stalest = min(cursors, key=lambda d: cursors[d].seen)
            del cursors[stalest]
        cursors[device] = cursor

    async def ack(self, user_id: str, device: str, offset: int) -> int:
        now = self.clock()
        stream = self._streams.get(user_id)
        if stream is None:
            stream = self._streams[user_id] = _Stream()
        known = stream.cursors.get(device)
        if known is None:
            self._remember(stream, device, _Cursor(offset, now))
            return offset
        known.offset = max(known.offset, offset)
        known.seen = now
        return known.offset

    async def cursor(self, user_id: str, device: str) -> int | None:
        stream = self._streams.get(user_id)
        known = stream.cursors.get(device) if stream is not None else None
        if known is None or known.seen + self.limits.ttl <= self.clock():
            return None
        return known.offset

    async def last(self, user_id: str) -> int:
        return self._last.get(user_id, 0)
