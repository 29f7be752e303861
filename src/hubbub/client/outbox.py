"""A Client's requests waiting for their replies, and the messages waiting for a connection
(the offline queue, sent in order after the next welcome)."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any

from hubbub.client.links import Link
from hubbub.client.streams import Wire
from hubbub.errors import ClientError, QueueFull


@dataclass(slots=True)
class Pending:
    """A request's future, and whether the request went out on a connection."""

    future: asyncio.Future[Any]
    sent: bool = False


class Outbox:
    """Pending requests by id, and the queue of (text, request id or None) sent after the next welcome."""

    def __init__(self) -> None:
        self.pending: dict[str, Pending] = {}
        self.queue: deque[tuple[str, str | None]] = deque()

    def expect(self, request_id: str) -> asyncio.Future[Any]:
        """The future that the reply to `request_id` settles."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = Pending(future)
        return future

    def forget(self, request_id: str) -> None:
        """The request is over (replied, timed out or cancelled): if no reply came, it is not sent later."""
        pending = self.pending.pop(request_id, None)
        if pending is not None and not pending.future.done():
            self.queue = deque(item for item in self.queue if item[1] != request_id)

    async def send(self, ws: Link | None, text: str, request_id: str | None, max_queued: int) -> None:
        """Send on `ws`, or without one queue for the next connection (QueueFull past `max_queued`)."""
        if ws is not None:
            await ws.send(text)
            if request_id is not None:
                self.pending[request_id].sent = True
            return
        if len(self.queue) >= max_queued:
            raise QueueFull(f"{len(self.queue)} messages already wait for the connection")
        self.queue.append((text, request_id))

    async def flush(self, ws: Link) -> None:
        """Send what waited for a connection, in order."""
        queued, self.queue = self.queue, deque()
        for text, request_id in queued:
            await ws.send(text)
            pending = self.pending.get(request_id) if request_id is not None else None
            if pending is not None:
                pending.sent = True

    def settle(self, request_id: str, envelope: Wire) -> None:
        """A reply: its data, or its error (code, message and the extra fields) raised as a ClientError."""
        pending = self.pending.get(request_id)
        if pending is None or pending.future.done():
            return
        error = envelope.get("error")
        if isinstance(error, dict):
            extra = {k: v for k, v in error.items() if k not in ("code", "message")}
            code, message = str(error.get("code") or "error"), str(error.get("message") or "error")
            pending.future.set_exception(ClientError(code, message, **extra))
        else:
            pending.future.set_result(envelope.get("data"))

    def fail(self, error: ClientError, *, queued: bool) -> None:
        """Fail the requests already sent, and with `queued` the queued ones too (the queue is dropped)."""
        waiting = {request_id for _, request_id in self.queue if request_id is not None}
        for request_id, pending in list(self.pending.items()):
            if (queued or request_id not in waiting) and not pending.future.done():
                pending.future.set_exception(error)
        if queued:
            self.queue.clear()
