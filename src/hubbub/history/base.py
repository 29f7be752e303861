"""Room history: streams of publications with positions (offset + epoch).

A room with history is a stream. Each publication appended to it gets the next
offset (1, 2, 3, ...); the stream has an epoch, a string that changes whenever its
past was lost (the store was wiped, every publication expired), so a position
(offset, epoch) held by a client names one publication in one stream's life.
A stream keeps at most `size` publications, each for `ttl` seconds.

One interface (`HistoryEngine`), three engines (memory, SQLite, Redis), one
conformance suite (tests/history/).
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from hubbub.errors import ConfigurationError

Payload = dict[str, Any] | str | bytes
"""What a stream keeps of a publication: an envelope's wire map ({"type", "data"}), or raw text or bytes."""


@dataclass(slots=True, frozen=True)
class HistoryPolicy:
    """How much of a room's past is kept: the last `size` publications, each for `ttl` seconds."""

    size: int
    ttl: float

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ConfigurationError(f"history size must be a positive integer, not {self.size!r}")
        if not self.ttl > 0:
            raise ConfigurationError(f"history ttl must be a positive number of seconds, not {self.ttl!r}")


@dataclass(slots=True, frozen=True)
class Entry:
    """One kept publication."""

    offset: int
    payload: Payload


@dataclass(slots=True, frozen=True)
class Appended:
    """The answer to an append: the publication's offset, the stream's epoch, and whether
    the idempotency key had been seen (then nothing was appended and `offset` is the first one's)."""

    offset: int
    epoch: str
    duplicate: bool = False


@dataclass(slots=True)
class HistoryPage:
    """Part of a stream, oldest first, and the stream's position when it was read.

    `complete` says that `entries` holds every publication asked for: after `since`, every
    one up to the top (or up to `limit`); for the last N, min(N, offset) of them. False when the
    stream no longer keeps some of them or the epoch asked for is not the stream's."""

    offset: int
    epoch: str
    entries: list[Entry] = field(default_factory=list)
    complete: bool = True
    room: str = ""

    def publications(self) -> list[dict[str, Any]]:
        """The entries as a room member got them live: {"type", "data", "room", "offset"} (raw payloads as
        {"data", "room", "offset"})."""
        room = self.room
        return [
            {**entry.payload, "room": room, "offset": entry.offset}
            if isinstance(entry.payload, dict)
            else {"data": entry.payload, "room": room, "offset": entry.offset}
            for entry in self.entries
        ]


def new_epoch() -> str:
    """A fresh epoch."""
    return uuid.uuid4().hex[:8]


class HistoryEngine(ABC):
    """Where streams live. `append` is the only write; reads never change a stream."""

    durable: bool = False
    """Whether an acknowledged append survives the server process being killed."""
    orders_delivery: bool = False
    """Whether the engine itself carries each appended publication to every node, this one included,
    in offset order (Redis: the append script publishes it); otherwise the hub delivers locally."""

    async def start(self) -> None:  # noqa: B027 - engines without a remote part have nothing to open
        """Open what the engine needs (the server calls it before accepting connections)."""

    async def stop(self) -> None:  # noqa: B027
        """Write out what is pending and release resources."""

    @abstractmethod
    async def append(
        self, room: str, payload: Payload, policy: HistoryPolicy, *, key: str | None = None, publication: Any = None
    ) -> Appended:
        """Add a publication to a room's stream; with `key`, at most once while the key is remembered.

        Returns once the append is as durable as the engine makes it. `publication` (a
        broker Publication) is for engines that carry it to the other nodes themselves."""

    @abstractmethod
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
        """Read a stream: with `since`, the publications after that offset (at most `limit`),
        checked against `epoch` when given; with `last`, the latest `last`; with neither, just the position."""

    @abstractmethod
    async def remove(self, room: str) -> None:
        """Forget a room's stream (its next publication starts a new epoch)."""

    def sizes(self) -> dict[str, int] | None:
        """What this process holds ({"streams": rooms, "publications": kept}), read by the metrics;
        None where the streams live elsewhere (Redis: its own tools measure them)."""
        return None


def check_read(since: int | None, last: int | None, limit: int | None) -> None:
    """Refuse contradictory or negative read arguments (ValueError)."""
    if since is not None and last is not None:
        raise ValueError("give since or last, not both")
    for name, value in (("since", since), ("last", last), ("limit", limit)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"{name} must be a non-negative integer")


def window(
    top: int,
    epoch: str,
    first: int,
    *,
    since: int | None,
    want_epoch: str | None,
    limit: int | None,
    last: int | None,
) -> tuple[int, int, bool]:
    """Which offsets a read returns from a stream that keeps `first`..`top` (first > top: none).

    Returns (low, high, complete): the entries with low <= offset <= high (none when low > high),
    and `complete` as in HistoryPage. Shared by the engines so that they agree."""
    if since is not None:
        if (want_epoch is not None and want_epoch != epoch) or since > top:
            return 1, 0, False
        low = since + 1
        high = top if limit is None else min(top, since + limit)
        return max(low, first), high, first <= low or low > high
    if last is not None and last > 0:
        low = max(1, top - last + 1)
        return max(low, first), top, first <= low or top == 0
    return 1, 0, True
