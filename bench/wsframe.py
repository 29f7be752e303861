"""The bits of RFC 6455 a load generator needs, built for speed.

Client side only: an upgrade request and its check, pre-built masked client
frames, and :class:`FrameCounter`, which walks server frames by header and
counts complete data messages without copying payloads.
"""

from __future__ import annotations

import base64
import hashlib
import os

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MASK = b"\x5a\x3c\xa5\xc3"


class HandshakeError(RuntimeError):
    """The server did not answer the upgrade with a valid 101."""


def upgrade_request(host: str, port: int, path: str) -> tuple[bytes, bytes]:
    """Return (request bytes, expected Sec-WebSocket-Accept value)."""
    key = base64.b64encode(os.urandom(16))
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    request = (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key.decode()}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    return request, accept


def check_upgrade(head: bytes, accept: bytes) -> None:
    """Raise HandshakeError unless ``head`` (up to the blank line) is a valid 101."""
    lines = head.split(b"\r\n")
    status = lines[0].split(b" ", 2)
    if len(status) < 2 or status[1] != b"101":
        raise HandshakeError(lines[0].decode("latin-1", "replace"))
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-accept":
            if value.strip() != accept:
                raise HandshakeError("bad Sec-WebSocket-Accept")
            return
    raise HandshakeError("no Sec-WebSocket-Accept")


def client_frame(payload: bytes, opcode: int = OP_TEXT, mask: bytes = _MASK) -> bytes:
    """One complete, final, masked client frame carrying ``payload``."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
    return head + mask + masked


CLOSE_NORMAL = client_frame((1000).to_bytes(2, "big"), OP_CLOSE)
"""A masked close frame with status 1000."""


class FrameCounter:
    """Incremental parser of server frames that counts complete data messages.

    Only headers are decoded; data payloads are skipped. Control frames are
    collected in ``controls`` as (opcode, payload) for the caller to act on, and
    so are final data frames shorter than ``keep_below`` bytes, in ``kept``
    (their payloads, not counted): Socket.IO's handshake and pings.

    Fast path: once a small unmasked final data frame has been seen, a run of
    frames with the same two header bytes is checked with two strided slices
    (every header of the run compared in C) instead of one loop turn per frame.
    Any other frame falls back to the per-frame loop.
    """

    __slots__ = ("_h0", "_h1", "_rest", "_stride", "controls", "kept", "keep_below", "payload_bytes")

    def __init__(self, keep_below: int = 0) -> None:
        self._rest = b""
        self._stride = 0
        self._h0 = self._h1 = b""
        self.controls: list[tuple[int, bytes]] = []
        self.kept: list[bytes] = []
        self.keep_below = keep_below
        self.payload_bytes = 0

    def feed(self, data: bytes) -> int:
        """Consume ``data``; return how many data messages it completed."""
        buf = self._rest + data if self._rest else data
        end = len(buf)
        pos = 0
        done = 0
        nbytes = 0
        fast = self._stride > 0
        while end - pos >= 2:
            if fast:
                stride = self._stride
                k = (end - pos) // stride
                if k > 1:
                    stop = pos + k * stride
                    if buf[pos:stop:stride] == self._h0 * k and buf[pos + 1 : stop : stride] == self._h1 * k:
                        done += k
                        nbytes += k * (stride - 2)
                        pos = stop
                        continue
                    fast = False  # mixed run: per-frame loop for the rest of this chunk
            b0 = buf[pos]
            length = buf[pos + 1]
            head = 2
            if length & 0x80:  # servers must not mask, but skip the key if they do
                head = 6
                length &= 0x7F
            if length == 126:
                if end - pos < head + 2:
                    break
                length = int.from_bytes(buf[pos + head : pos + head + 2], "big")
                head += 2
            elif length == 127:
                if end - pos < head + 8:
                    break
                length = int.from_bytes(buf[pos + head : pos + head + 8], "big")
                head += 8
            stop = pos + head + length
            if stop > end:
                break
            if b0 & 0x08:  # control frame (opcode >= 8)
                self.controls.append((b0 & 0x0F, bytes(buf[pos + head : stop])))
            elif length < self.keep_below and b0 & 0x80:
                self.kept.append(bytes(buf[pos + head : stop]))
            else:
                nbytes += length
                if b0 & 0x80:  # FIN: a message is complete
                    done += 1
                    if head == 2 and self._stride != stop - pos:
                        self._stride = stop - pos
                        self._h0, self._h1 = bytes((b0,)), bytes((buf[pos + 1],))
            pos = stop
        self._rest = buf[pos:] if pos < end else b""
        self.payload_bytes += nbytes
        return done
