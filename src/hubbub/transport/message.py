"""An outgoing message whose frames are built once and shared by every recipient."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Literal

from hubbub.transport._speedups import build_frame
from hubbub.transport.deflate import Deflater
from hubbub.transport.framing import OP_BINARY, OP_TEXT, encode_frame

BackpressurePolicy = Literal["close", "drop", "conflate"]
"""What happens to a message for a connection already over its `max_backpressure`."""


class Outgoing:
    """A text or binary message on its way to one or many connections.

    The uncompressed frame is built on first use and reused for every recipient;
    so is each compressed variant for connections that compress without context
    takeover ("shared" compression), keyed by window size.

    `key` names what the message updates, for the "conflate" policy: a connection
    over its limit keeps only the newest pending message per key. `policy`, when
    set, overrides the connection's policy for this message (room policies).
    """

    __slots__ = ("_plain", "_shared", "key", "opcode", "payload", "policy")

    def __init__(
        self,
        data: str | bytes | bytearray | memoryview,
        key: Hashable | None = None,
        policy: BackpressurePolicy | None = None,
    ) -> None:
        self.key = key
        self.policy = policy
        if isinstance(data, str):
            self.opcode = OP_TEXT
            self.payload = data.encode("utf-8")
        else:
            self.opcode = OP_BINARY
            self.payload = bytes(data)
        self._plain: bytes | None = None
        self._shared: dict[int, bytes] | None = None

    @property
    def plain(self) -> bytes:
        """The uncompressed frame."""
        frame = self._plain
        if frame is None:
            frame = self._plain = build_frame(self.opcode, self.payload)
        return frame

    def shared(self, window_bits: int) -> bytes:
        """The frame compressed without context takeover, for any connection using `window_bits`."""
        cache = self._shared
        if cache is None:
            cache = self._shared = {}
        frame = cache.get(window_bits)
        if frame is None:
            deflater = Deflater(no_context_takeover=True, window_bits=window_bits)
            frame = cache[window_bits] = encode_frame(self.opcode, deflater.compress(self.payload), rsv1=True)
        return frame
