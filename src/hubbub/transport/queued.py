"""What the transports hubbub does not drive itself have in common (an ASGI server's WebSocket,
the SSE + POST fallback): a bounded queue that a writer task empties, the route's backpressure
limit and policy applied to it, and reads gated by an event while the app is behind."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import deque

from hubbub.options import ServerOptions
from hubbub.transport.framing import CLOSE_POLICY, OP_TEXT
from hubbub.transport.message import BackpressurePolicy, Outgoing
from hubbub.transport.websocket import TransportStats

BACKPRESSURE_REASON = "backpressure limit exceeded"


class QueuedTransport(ABC):
    """A bounded outgoing queue and a read gate; subclasses write the queue out and `close`.

    "conflate" drops here, as "drop" does: the queue's reader hides which messages are still pending."""

    __slots__ = ("_limit", "_policy", "_queue", "_queued", "_read_allowed", "_stats", "_wakeup", "dropped")

    def __init__(self, opts: ServerOptions, stats: TransportStats) -> None:
        self._stats = stats
        self._limit = opts.max_backpressure
        self._policy: BackpressurePolicy = opts.backpressure_policy
        self._queue: deque[str | bytes | object] = deque()
        self._queued = 0
        """Bytes (characters, for text) queued and not yet written."""
        self._wakeup = asyncio.Event()
        self._read_allowed = asyncio.Event()
        self._read_allowed.set()
        self.dropped = 0

    @abstractmethod
    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close after what is queued (each transport in its own way)."""

    # ---- outgoing ------------------------------------------------------------------------

    def configure_backpressure(self, limit: int, policy: BackpressurePolicy) -> None:
        """Use this route's backpressure limit and policy instead of the server's."""
        self._limit = limit
        self._policy = policy

    def _enqueue(self, data: str | bytes) -> bool:
        """Queue `data` unless it would take the queue over the limit (then apply the policy)."""
        size = len(data)
        if self._queued and self._queued + size > self._limit:
            self.dropped += 1
            self._stats.dropped_messages += 1
            if self._policy == "close":
                self._stats.backpressure_closes += 1
                self._queue.clear()
                self._queued = 0
                self.close(CLOSE_POLICY, BACKPRESSURE_REASON)
            return False
        self._queue.append(data)
        self._queued += size
        self._wakeup.set()
        return True

    @abstractmethod
    def send(self, data: str | bytes) -> bool:
        """Queue a text (str) or binary (bytes) message; False if dropped or closed."""

    def send_message(self, message: Outgoing) -> bool:
        """Queue a message that may be going to many connections."""
        payload = message.payload
        return self.send(payload.decode("utf-8") if message.opcode == OP_TEXT else payload)

    @property
    def buffered_amount(self) -> int:
        """Bytes (characters, for text) queued and not yet written."""
        return self._queued

    # ---- incoming ------------------------------------------------------------------------

    @property
    def reading_paused(self) -> bool:
        """Whether reading is paused because the app is behind on this connection."""
        return not self._read_allowed.is_set()

    def pause_reading(self) -> None:
        """Stop passing messages up (the app is behind)."""
        self._read_allowed.clear()

    def resume_reading(self) -> None:
        """Pass messages up again."""
        self._read_allowed.set()
