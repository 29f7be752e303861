"""The memory engine: streams in this process (the embedded default; lost when it exits)."""

from __future__ import annotations

import time
from collections import deque
from itertools import islice
from typing import Any

from hubbub.history.base import (
    Appended,
    Entry,
    HistoryEngine,
    HistoryPage,
    HistoryPolicy,
    Payload,
    check_read,
    new_epoch,
    window,
)


class Stream:
    """One room's stream: its position and its kept publications (offset, time, payload, key)."""

    __slots__ = ("epoch", "top", "durable", "entries", "keys", "touched", "ttl")

    def __init__(self, epoch: str, ttl: float, top: int = 0) -> None:
        self.epoch = epoch
        self.ttl = ttl
        self.top = top
        self.durable = top
        """The highest offset written out (engines that write to disk show readers only these)."""
        self.entries: deque[tuple[int, float, Payload, str | None]] = deque()
        self.keys: dict[str, int] = {}
        self.touched = time.time()

    @property
    def first(self) -> int:
        """The lowest offset kept (top + 1 when none is)."""
        return self.entries[0][0] if self.entries else self.top + 1

    def add(self, offset: int, at: float, payload: Payload, key: str | None, policy: HistoryPolicy) -> None:
        """Keep a publication and trim to the policy."""
        self.entries.append((offset, at, payload, key))
        if key is not None:
            self.keys[key] = offset
        self.touched = at
        self.trim(policy, at)

    def trim(self, policy: HistoryPolicy, now: float) -> None:
        """Forget publications beyond the size or older than the TTL (and their idempotency keys)."""
        entries = self.entries
        oldest = now - policy.ttl
        while entries and (len(entries) > policy.size or entries[0][1] < oldest):
            key = entries.popleft()[3]
            if key is not None:
                self.keys.pop(key, None)

    def expired(self, policy: HistoryPolicy, now: float) -> bool:
        """Whether the whole stream is past its TTL (nothing kept, nothing published lately)."""
        return not self.entries and self.touched < now - policy.ttl


_SWEEP_EVERY = 4096


class MemoryHistory(HistoryEngine):
    """Streams in a dict; every operation completes without waiting."""

    def __init__(self) -> None:
        self.streams: dict[str, Stream] = {}
        self._until_sweep = _SWEEP_EVERY

    def stream(self, room: str, policy: HistoryPolicy, now: float) -> Stream:
        """A room's stream, trimmed to now; a new one (new epoch) when it was missing or expired."""
        self._until_sweep -= 1
        if not self._until_sweep:
            self.sweep(now)
        stream = self.streams.get(room)
        if stream is not None:
            stream.ttl = policy.ttl
            stream.trim(policy, now)
            if not stream.expired(policy, now):
                return stream
        stream = self.streams[room] = Stream(new_epoch(), policy.ttl)
        self.created(room, stream)
        return stream

    def sizes(self) -> dict[str, int]:
        return {"streams": len(self.streams), "publications": sum(len(s.entries) for s in self.streams.values())}

    def created(self, room: str, stream: Stream) -> None:
        """A stream began (a new epoch); engines that write streams out record it."""

    def sweep(self, now: float) -> list[str]:
        """Forget the streams that nobody touched for their TTL (everything in them expired); their rooms."""
        self._until_sweep = _SWEEP_EVERY
        gone = [room for room, s in self.streams.items() if s.touched < now - s.ttl]
        for room in gone:
            del self.streams[room]
        return gone

    async def append(
        self, room: str, payload: Payload, policy: HistoryPolicy, *, key: str | None = None, publication: Any = None
    ) -> Appended:
        return self.append_now(room, payload, policy, key)

    def append_now(self, room: str, payload: Payload, policy: HistoryPolicy, key: str | None) -> Appended:
        """`append` without a coroutine (the SQLite engine builds on it)."""
        now = time.time()
        stream = self.stream(room, policy, now)
        if key is not None:
            seen = stream.keys.get(key)
            if seen is not None:
                return Appended(seen, stream.epoch, duplicate=True)
        stream.top += 1
        stream.add(stream.top, now, payload, key, policy)
        return Appended(stream.top, stream.epoch)

    async def read(
        self,
        room: str,
        policy: HistoryPolicy,
        *,
        since: int | None = None,
        epoch: str | None = None,
        limit: int | None = None,
        last: int | None = None,
    ) -> HistoryPage:
        return self.read_now(room, policy, since=since, epoch=epoch, limit=limit, last=last)

    def read_now(
        self,
        room: str,
        policy: HistoryPolicy,
        *,
        since: int | None = None,
        epoch: str | None = None,
        limit: int | None = None,
        last: int | None = None,
        durable_only: bool = False,
    ) -> HistoryPage:
        """`read` without a coroutine; `durable_only` shows only what was written out (SQLite)."""
        check_read(since, last, limit)
        stream = self.stream(room, policy, time.time())
        visible = stream.durable if durable_only else stream.top
        low, high, complete = window(
            visible, stream.epoch, stream.first, since=since, want_epoch=epoch, limit=limit, last=last
        )
        entries: list[Entry] = []
        if low <= high:
            start = low - stream.first
            for offset, _, payload, _ in islice(stream.entries, start, start + high - low + 1):
                entries.append(Entry(offset, payload))
        return HistoryPage(visible, stream.epoch, entries, complete, room=room)

    async def remove(self, room: str) -> None:
        self.streams.pop(room, None)
