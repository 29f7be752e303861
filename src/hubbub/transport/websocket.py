"""A server-side WebSocket connection on an asyncio transport.

Bytes in go through `MessageReader` in one pass; messages go up to a
`WebSocketListener`. Frames out are queued in a bounded outbox and leave in one
write per event-loop iteration (see `outbox`). This layer knows nothing of
rooms or users; it enforces the per-connection limits of `ServerOptions`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Final, Protocol

from hubbub.errors import ProtocolError
from hubbub.options import ServerOptions
from hubbub.transport._speedups import build_frame
from hubbub.transport.deflate import DeflateParams, Deflater, Inflater
from hubbub.transport.framing import (
    CLOSE_ABNORMAL,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    FAIL,
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    MessageReader,
    close_payload,
    encode_frame,
)
from hubbub.transport.message import BackpressurePolicy, Outgoing
from hubbub.transport.outbox import Flusher

OPEN: Final = 0
CLOSING: Final = 1
"""We sent a close frame and wait for the peer's."""
CLOSED: Final = 2
"""The close handshake is over (or failed); the socket is closing."""

WRITE_CHUNK: Final = 64 * 1024
"""Frames queued in one loop iteration are written once they reach this many bytes."""
BACKPRESSURE_REASON: Final = "backpressure limit exceeded"


class WebSocketListener(Protocol):
    """What a WebSocket connection reports upward (implemented by the app layer)."""

    def ws_message(self, data: str | bytes, is_binary: bool) -> None: ...

    def ws_closed(self, code: int, reason: str) -> None: ...

    def ws_drain(self) -> None: ...

    def ws_ping(self, payload: bytes) -> None: ...

    def ws_pong(self, payload: bytes) -> None: ...

    def ws_error(self, error: Exception) -> None:
        """A protocol error (`ProtocolError`) or a transport error, before the close."""


class TransportStats:
    """Plain counters shared by every connection of a server (read by the metrics at scrape time)."""

    __slots__ = ("dropped_messages", "backpressure_closes", "messages_received", "messages_sent", "fd_refusals")

    def __init__(self) -> None:
        self.dropped_messages = 0
        """Messages refused by the backpressure limit."""
        self.backpressure_closes = 0
        """Connections closed because they went over the backpressure limit."""
        self.messages_received = 0
        """Messages received from clients (counted by the app layer)."""
        self.messages_sent = 0
        """Messages queued for clients (counted by the app layer)."""
        self.fd_refusals = 0
        """Connections answered 503 because the process was out of file descriptors."""


class WebSocketProtocol(asyncio.Protocol):
    """One open WebSocket connection (server side)."""

    __slots__ = (
        "_close_timer",
        "_conflated",
        "_conflated_size",
        "_deflate_bits",
        "_deflater",
        "_flusher",
        "_limit",
        "_opts",
        "_out",
        "_out_size",
        "_paused",
        "_policy",
        "_reader",
        "_reading_paused",
        "_stats",
        "_throttled",
        "close_code",
        "close_reason",
        "dropped",
        "got_message",
        "heard",
        "last_heard",
        "last_message",
        "listener",
        "opened_at",
        "ping_sent_at",
        "state",
        "transport",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        listener: WebSocketListener,
        opts: ServerOptions,
        flusher: Flusher,
        stats: TransportStats,
        deflate: DeflateParams | None,
        now: float,
    ) -> None:
        self.transport = transport
        self.listener = listener
        self._opts = opts
        self._flusher = flusher
        self._stats = stats
        self._reader = MessageReader(
            max_message_size=opts.max_message_size,
            inflater=Inflater(deflate) if deflate is not None else None,
        )
        self._out: list[bytes] | None = None
        """Frames queued this iteration. Made on the first send and then kept (emptied by each
        flush): a new list per connection per iteration was an object for the garbage collector
        to track, and at 10,000 connections those lists, alive until the flush, were promoted
        and set off full collections in the middle of broadcasts."""
        self._out_size = 0
        self._paused = False
        """The last write left bytes the peer has not taken yet (until `resume_writing`)."""
        self._limit = opts.max_backpressure
        self._policy: BackpressurePolicy = opts.backpressure_policy
        self._conflated: dict[Hashable, Outgoing] | None = None
        """Messages held under the "conflate" policy until the socket drains, by key."""
        self._conflated_size = 0
        self._reading_paused = False
        self._throttled = False
        """Not reading this peer until it takes what was written to it (see `data_received`)."""
        self.state = OPEN
        self.close_code = CLOSE_ABNORMAL
        self.close_reason = ""
        self._close_timer: asyncio.TimerHandle | None = None
        self._deflate_bits = 0
        self._deflater: Deflater | None = None
        if deflate is not None:
            self._deflate_bits = deflate.server_max_window_bits
            if opts.compression == "dedicated":
                self._deflater = Deflater(
                    no_context_takeover=deflate.server_no_context_takeover,
                    window_bits=deflate.server_max_window_bits,
                )
        self.heard = False
        self.got_message = False
        self.ping_sent_at = 0.0
        self.last_heard = now
        self.last_message = now
        self.opened_at = now
        self.dropped = 0
        transport.set_write_buffer_limits(high=0, low=0)

    # ---- incoming -------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.heard = True
        if self.state == CLOSED:
            return
        listener = self.listener
        for event in self._reader.feed(data):
            kind = event[0]
            if kind == OP_TEXT:
                if self.state == OPEN:
                    self.got_message = True
                    listener.ws_message(event[1], False)
            elif kind == OP_BINARY:
                if self.state == OPEN:
                    self.got_message = True
                    listener.ws_message(event[1], True)
            elif kind == OP_PING:
                if self.state == OPEN:
                    # A peer that pings without reading gets no pongs past the limit (RFC 6455
                    # 5.5.3 allows answering only the latest ping).
                    if not self._paused or self.transport.get_write_buffer_size() + self._out_size < self._limit:
                        self._queue(encode_frame(OP_PONG, event[1]))
                    listener.ws_ping(event[1])
            elif kind == OP_PONG:
                self.ping_sent_at = 0.0
                if self.state == OPEN:
                    listener.ws_pong(event[1])
            elif kind == OP_CLOSE:
                self._close_received(event[1], event[2])
                return
            elif kind == FAIL:
                if self.state == OPEN:
                    listener.ws_error(ProtocolError(event[1], event[2]))
                self._fail(event[1], event[2])
                return
        if self._paused and not self._throttled and self.state == OPEN:
            # This peer is not taking what we write to it (its own echoes, say): read no more of
            # what it sends until it does, so TCP slows it down rather than its backlog growing.
            self._throttled = True
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        if self.state != CLOSED:
            self.close_code = CLOSE_ABNORMAL
            self.close_reason = "connection dropped without a close frame"
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        was = self.state
        self.state = CLOSED
        self._out = None
        self._conflated = None
        # zlib state (about 35 KB inflating, 260 KB deflating per connection) goes now, not
        # when the garbage collector gets round to the cycles a closed connection sits in.
        self._reader.release()
        self._deflater = None
        self._deflate_bits = 0
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if was == OPEN:
            self.close_code = CLOSE_ABNORMAL
            self.close_reason = "connection dropped without a close frame"
        if exc is not None and was != CLOSED:
            self.listener.ws_error(exc)
        self.listener.ws_closed(self.close_code, self.close_reason)

    @property
    def reading_paused(self) -> bool:
        """Whether reading is paused because the app is behind on this connection."""
        return self._reading_paused

    def pause_reading(self) -> None:
        """Stop reading from the socket (the app is behind on this connection's messages)."""
        if not self._reading_paused and self.state != CLOSED:
            self._reading_paused = True
            if not self._throttled:
                self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Read from the socket again."""
        if self._reading_paused:
            self._reading_paused = False
            if not self._throttled and not self.transport.is_closing():
                self.transport.resume_reading()

    # ---- outgoing -------------------------------------------------------------
    #
    # Backpressure counts what the peer failed to take: once a write has left bytes in
    # the transport's buffer (`pause_writing`), those bytes, the frames queued behind them
    # and the new message count against the limit. Until then frames queued in a loop
    # iteration are free of the check, and an iteration's frames are written as soon as
    # they reach WRITE_CHUNK, so a burst meets the kernel's buffers (which a reader that
    # keeps up empties) rather than the limit. Under "conflate", a message with a key
    # sent while the peer is behind waits in its key's slot until the socket drains.

    def configure_backpressure(self, limit: int, policy: BackpressurePolicy) -> None:
        """Use this route's backpressure limit and policy instead of the server's."""
        self._limit = limit
        self._policy = policy

    def send(self, data: str | bytes) -> bool:
        """Queue a text (str) or binary (bytes) message; False if dropped or closed."""
        if self._deflate_bits:
            return self.send_message(Outgoing(data))
        return self.send_frame(build_frame(OP_TEXT if isinstance(data, str) else OP_BINARY, data))

    def send_message(self, message: Outgoing) -> bool:
        """Queue a message that may be going to many connections (frames built once)."""
        if self._paused:
            return self._send_behind(message)
        if not self._deflate_bits or len(message.payload) < self._opts.compression_threshold:
            return self.send_frame(message.plain)
        return self._send_compressed(message)

    def _send_compressed(self, message: Outgoing) -> bool:
        deflater = self._deflater
        if deflater is None:
            return self.send_frame(message.shared(self._deflate_bits))
        if self.send_frame(encode_frame(message.opcode, deflater.compress(message.payload), rsv1=True)):
            return True
        deflater.forget()  # dropped: the peer's context must not be assumed to hold this message
        return False

    def _send_behind(self, message: Outgoing) -> bool:
        """`send_message` while the peer has not taken everything written so far."""
        if self.state != OPEN:
            return False
        policy = message.policy or self._policy
        if policy == "conflate" and message.key is not None:
            return self._conflate(message)
        if self.transport.get_write_buffer_size() + self._out_size + len(message.payload) > self._limit:
            return self._over_limit(policy)
        if not self._deflate_bits or len(message.payload) < self._opts.compression_threshold:
            return self.send_frame(message.plain)
        return self._send_compressed(message)

    def send_frame(self, frame: bytes) -> bool:
        """Queue an encoded data frame, applying the backpressure limit."""
        if self.state != OPEN:
            return False
        if self._paused and self.transport.get_write_buffer_size() + self._out_size + len(frame) > self._limit:
            return self._over_limit(self._policy)
        out = self._out
        if not out:
            if out is None:
                out = self._out = []
            out.append(frame)
            self._out_size = len(frame)
            self._flusher.mark(self)
            return True
        out.append(frame)
        size = self._out_size = self._out_size + len(frame)
        if size >= WRITE_CHUNK and not self._paused:
            self.flush()
        return True

    def _over_limit(self, policy: BackpressurePolicy) -> bool:
        self._count_drop()
        if policy == "close":
            self._close_for_backpressure()
        return False

    def _count_drop(self) -> None:
        self.dropped += 1
        self._stats.dropped_messages += 1

    def _conflate(self, message: Outgoing) -> bool:
        """Hold `message` until the socket drains, replacing the pending one with its key
        (the held messages count against the limit: a new key past it is dropped)."""
        conflated = self._conflated
        if conflated is None:
            conflated = self._conflated = {}
        size = len(message.payload)
        older = conflated.pop(message.key, None)
        if older is not None:
            self._count_drop()  # superseded before it could be sent
            self._conflated_size -= len(older.payload)
        elif self._conflated_size + size > self._limit:
            self._count_drop()  # too many keys waiting: the held messages are bounded too
            return False
        conflated[message.key] = message
        self._conflated_size += size
        return True

    def _close_for_backpressure(self) -> None:
        """Close with 1008: a close frame behind what is queued (the close timeout bounds the
        wait), or an abort if the socket can no longer take one."""
        self._stats.backpressure_closes += 1
        if self.transport.is_closing():
            self.abort(CLOSE_POLICY, BACKPRESSURE_REASON)
        else:
            self.close(CLOSE_POLICY, BACKPRESSURE_REASON)

    def _queue(self, frame: bytes) -> None:
        out = self._out
        if out is None:
            out = self._out = []
        if not out:
            self._out_size = 0
            self._flusher.mark(self)
        out.append(frame)
        self._out_size += len(frame)

    def flush(self) -> None:
        """Write everything queued in one call (the flusher calls this once per iteration)."""
        out = self._out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self._out_size = 0
        if self.transport.is_closing():
            return
        self.transport.write(data)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._throttled:
            self._throttled = False
            if not self._reading_paused and not self.transport.is_closing():
                self.transport.resume_reading()
        if self.state != OPEN:
            return
        conflated = self._conflated
        if conflated:
            self._conflated = None
            self._conflated_size = 0
            for message in conflated.values():
                self.send_message(message)
        if self._out:
            # Frames queued this iteration would hide the drain: hand them over now, and
            # report the drain unless they filled the socket again (then the next resume does).
            self.flush()
            if self._paused:
                return
        self.listener.ws_drain()

    @property
    def buffered_amount(self) -> int:
        """Bytes queued for this connection and not yet handed to the kernel (conflated
        messages waiting for the socket to drain included)."""
        return self._out_size + self.transport.get_write_buffer_size() + self._conflated_size

    def ping(self, now: float, payload: bytes = b"") -> None:
        """Send a ping; the heartbeat checks `ping_sent_at` for the answer."""
        if self.state == OPEN:
            self.ping_sent_at = now
            self._queue(encode_frame(OP_PING, payload))

    # ---- closing --------------------------------------------------------------

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Start the close handshake; the socket drops if the peer does not answer in time."""
        if self.state != OPEN:
            return
        self.state = CLOSING
        self.close_code = code
        self.close_reason = reason
        if self._throttled and not self._reading_paused:
            self._throttled = False  # the peer's answer to our close frame must be read
            self.transport.resume_reading()
        self._queue(encode_frame(OP_CLOSE, close_payload(code, reason)))
        self._close_timer = asyncio.get_running_loop().call_later(self._opts.close_timeout, self.abort)

    def abort(self, code: int | None = None, reason: str | None = None) -> None:
        """Drop the socket now, without a close handshake."""
        if code is not None:
            self.close_code = code
        if reason is not None:
            self.close_reason = reason
        self.state = CLOSED
        self._out = None
        self._conflated = None
        self.transport.abort()

    def _close_received(self, code: int, reason: str) -> None:
        if self.state == OPEN:
            self.close_code = code
            self.close_reason = reason
            self._queue(encode_frame(OP_CLOSE, close_payload(code)))
        self.state = CLOSED
        self.flush()
        self.transport.close()

    def _fail(self, code: int, reason: str) -> None:
        """The peer broke the protocol: send our close frame, half-close, drop after a timeout."""
        if self.state == OPEN:
            self.close_code = code
            self.close_reason = reason
            self._queue(encode_frame(OP_CLOSE, close_payload(code, reason)))
        self.state = CLOSED
        self.flush()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        if self._close_timer is None:
            self._close_timer = asyncio.get_running_loop().call_later(self._opts.close_timeout, self.abort)
