"""One device connection's view of its user's inbox: what it was sent, in order, once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from hubbub.inbox.wire import InboxEnvelope

if TYPE_CHECKING:
    from hubbub.runtime.connection import Connection

MAX_AHEAD: Final = 256
"""Offsets received out of order that a session tracks before it stops accepting acks past the gap."""


class DeviceSession:
    """A connection that named its device. Live durable messages wait in `buffer` while the
    backlog loads; afterwards each offset is sent at most once, and `acked_limit` is the highest
    offset such that every offset from the session's start up to it was queued for the client."""

    __slots__ = ("conn", "device", "buffer", "_next", "_ahead", "_frozen")

    def __init__(self, conn: Connection, device: str) -> None:
        self.conn = conn
        self.device = device
        self.buffer: list[InboxEnvelope] | None = []
        self._next = 0
        self._ahead: set[int] = set()
        self._frozen = False

    @property
    def loading(self) -> bool:
        """Whether the backlog is still being read."""
        return self.buffer is not None

    @property
    def acked_limit(self) -> int:
        """The highest offset the client may acknowledge on this connection."""
        return self._next - 1

    def offer(self, message: InboxEnvelope) -> bool:
        """A live durable message for this device: buffered while loading, else sent once."""
        buffer = self.buffer
        if buffer is not None:
            buffer.append(message)
            return True
        return self._send(message)

    def replay(self, first: int, backlog: list[InboxEnvelope]) -> None:
        """Send the backlog (starting at offset `first`), then what arrived live meanwhile."""
        self._next = first
        for message in backlog:
            self._send(message)
        buffered, self.buffer = self.buffer or [], None
        for message in buffered:
            self._send(message)  # those the backlog already had are dropped

    def fail(self) -> None:
        """The backlog could not be read: live messages still flow, no ack is accepted."""
        self._frozen = True
        self.replay(0, [])

    def _send(self, message: InboxEnvelope) -> bool:
        offset = message.inbox
        if offset < self._next or offset in self._ahead:
            return False  # already sent: the backlog had it, and its live copy came late (from another node)
        if not self.conn.send_nowait(message):
            self._frozen = True  # dropped: acks must stop before it
            return False
        if self._frozen:
            return True
        if offset == self._next:
            self._next += 1
            ahead = self._ahead
            while self._next in ahead:
                ahead.discard(self._next)
                self._next += 1
        else:
            self._ahead.add(offset)
            if len(self._ahead) > MAX_AHEAD:
                self._frozen = True
        return True
