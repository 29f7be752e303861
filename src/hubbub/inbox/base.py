"""The inbox store interface: a per-user stream of durable messages with a cursor per device.

Every message appended for a user gets the next offset of that user's stream
(1, 2, 3, ...; offsets are never reused). A device's cursor is the last offset
it acknowledged; its backlog is every retained message after the cursor. A
stream keeps at most `size` messages, each for `ttl` seconds; what the bound or
the TTL removes before a device read it is counted as `missed` for that device.
All engines pass one conformance suite (tests/inbox/).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from hubbub.errors import ConfigurationError

DEFAULT_SIZE: Final = 1000
"""Messages kept per user (the oldest are dropped beyond it)."""
DEFAULT_TTL: Final = 86400.0
"""Seconds a message is kept (one day)."""
DEFAULT_MAX_DEVICES: Final = 32
"""Device cursors kept per user (the least recently seen is forgotten beyond it)."""

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One message of a user's stream: its offset and its encoded envelope."""

    offset: int
    body: bytes


@dataclass(slots=True)
class Backlog:
    """What a device has not acknowledged yet."""

    messages: list[StoredMessage] = field(default_factory=list)
    """Retained messages after the device's cursor, in offset order."""
    last: int = 0
    """The user's last offset (0 before the first message)."""
    missed: int = 0
    """Messages after the device's cursor lost to the size bound or the TTL (0 for a new device)."""


@dataclass(frozen=True, slots=True)
class InboxLimits:
    """The bounds every engine enforces."""

    size: int = DEFAULT_SIZE
    ttl: float = DEFAULT_TTL
    max_devices: int = DEFAULT_MAX_DEVICES

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ConfigurationError(f"inbox size must be at least 1, not {self.size}")
        if self.ttl <= 0:
            raise ConfigurationError(f"inbox ttl must be positive, not {self.ttl}")
        if self.max_devices < 1:
            raise ConfigurationError(f"inbox max_devices must be at least 1, not {self.max_devices}")


class InboxStore(ABC):
    """Where inboxes live. Appends and acks of one loop iteration are written together."""

    def __init__(self, limits: InboxLimits | None = None, *, clock: Clock = time.time) -> None:
        self.limits = limits or InboxLimits()
        self.clock = clock
        """Seconds since the epoch (tests may pass their own)."""

    @abstractmethod
    async def start(self) -> None:
        """Open the store (the hub does this before the server accepts connections)."""

    @abstractmethod
    async def close(self) -> None:
        """Write what is pending and release the store."""

    @abstractmethod
    async def append(self, user_id: str, body: bytes) -> int:
        """Add a message to a user's stream; its offset, once it is stored."""

    @abstractmethod
    async def backlog(self, user_id: str, device: str) -> Backlog:
        """A device's unacknowledged messages. A device seen for the first time starts just before
        the oldest retained message; the device is remembered (its cursor kept for `ttl`)."""

    @abstractmethod
    async def ack(self, user_id: str, device: str, offset: int) -> int:
        """Move a device's cursor to `offset` (never back); the cursor after the ack."""

    @abstractmethod
    async def cursor(self, user_id: str, device: str) -> int | None:
        """A device's cursor, or None if the device is not known."""

    def sizes(self) -> dict[str, int] | None:
        """What this process holds ({"users": inboxes, "messages": kept}), read by the metrics;
        None where the inboxes live elsewhere (a SQLite file, Redis: their own tools measure them)."""
        return None

    @abstractmethod
    async def last(self, user_id: str) -> int:
        """The user's last offset (0 before the first message)."""


def missed(last: int, cursor: int, retained: int) -> int:
    """Offsets after `cursor` that are no longer retained."""
    return max(0, last - cursor - retained)
