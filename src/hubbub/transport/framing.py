"""RFC 6455 framing, sans I/O: bytes in, whole messages out; messages in, frames out.

`MessageReader.feed()` takes whatever bytes arrived and returns every event they
complete, parsed in one pass. Payloads are unmasked and, for text, validated as
UTF-8 as soon as they arrive, even when a frame is only partly received, so an
invalid byte fails the connection without waiting for the rest of the frame.
A protocol error ends the list with a `FAIL` event after the events that came
before it, so the caller can act on earlier messages first.
"""

from __future__ import annotations

import codecs
from typing import Any, Final

from hubbub.errors import ProtocolError
from hubbub.transport._speedups import apply_mask, build_frame, read_data_frames
from hubbub.transport.deflate import Inflater

OP_CONT: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA
FAIL: Final = -1
"""Event kind: the peer broke the protocol; the event carries (code, reason)."""

CLOSE_NORMAL: Final = 1000
CLOSE_GOING_AWAY: Final = 1001
CLOSE_PROTOCOL_ERROR: Final = 1002
CLOSE_UNSUPPORTED: Final = 1003
CLOSE_NO_STATUS: Final = 1005
CLOSE_ABNORMAL: Final = 1006
CLOSE_INVALID_DATA: Final = 1007
CLOSE_POLICY: Final = 1008
CLOSE_TOO_BIG: Final = 1009
CLOSE_INTERNAL_ERROR: Final = 1011
CLOSE_TRY_AGAIN_LATER: Final = 1013

_KNOWN_OPCODES: Final = frozenset((OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG))
_Utf8Decoder = codecs.getincrementaldecoder("utf-8")

Event = tuple[Any, ...]
"""(OP_TEXT, str) | (OP_BINARY, bytes) | (OP_PING/OP_PONG, bytes) |
(OP_CLOSE, code, reason) | (FAIL, code, reason)."""


def is_valid_close_code(code: int) -> bool:
    """Whether a peer may send `code` in a close frame (RFC 6455 7.4, IANA registry)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def parse_close_payload(payload: bytes) -> tuple[int, str]:
    """Decode a close frame body into (code, reason); raise ProtocolError if invalid."""
    if not payload:
        return CLOSE_NO_STATUS, ""
    if len(payload) == 1:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "close frame with a 1-byte body")
    code = int.from_bytes(payload[:2], "big")
    if not is_valid_close_code(code):
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"invalid close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(CLOSE_INVALID_DATA, "close reason is not valid UTF-8") from None
    return code, reason


def close_payload(code: int, reason: str = "") -> bytes:
    """Encode a close frame body; the reason is cut to fit 123 bytes."""
    if code == CLOSE_NO_STATUS:
        return b""
    raw = reason.encode("utf-8")
    if len(raw) > 123:
        raw = raw[:123].decode("utf-8", "ignore").encode("utf-8")
    return code.to_bytes(2, "big") + raw


def encode_frame(opcode: int, payload: bytes, *, rsv1: bool = False, mask: bytes | None = None) -> bytes:
    """Build one final frame. Servers send unmasked frames (`build_frame`); clients pass a 4-byte mask."""
    if mask is None:
        return build_frame(opcode, payload, rsv1)
    length = len(payload)
    first = 0x80 | opcode | (0x40 if rsv1 else 0)
    if length < 126:
        header = bytes((first, 0x80 | length))
    elif length < 65536:
        header = bytes((first, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((first, 0x80 | 127)) + length.to_bytes(8, "big")
    return header + mask + apply_mask(payload, mask)


class MessageReader:
    """Turns a byte stream into WebSocket events (see module docstring).

    `masked` is True on a server (client frames must be masked) and False on a
    client. `inflater` is set when permessage-deflate was negotiated.
    """

    __slots__ = (
        "_buf",
        "_masked",
        "_max_size",
        "_inflater",
        "_failed",
        # frame in progress (payload partly received)
        "_f_opcode",
        "_f_fin",
        "_f_mask",
        "_f_left",
        "_f_offset",
        "_f_control_parts",
        # message in progress (fragmented or streamed)
        "_m_opcode",
        "_m_parts",
        "_m_size",
        "_m_decoder",
        "_m_compressed",
    )

    def __init__(self, *, max_message_size: int, masked: bool = True, inflater: Inflater | None = None) -> None:
        self._buf = b""
        self._masked = masked
        self._max_size = max_message_size
        self._inflater = inflater
        self._failed = False
        self._f_opcode = -1
        self._f_fin = False
        self._f_mask: bytes | None = None
        self._f_left = 0
        self._f_offset = 0
        self._f_control_parts: list[bytes] | None = None  # made per control frame: idle readers hold no lists
        self._m_opcode = 0
        self._m_parts: list[Any] | None = None
        self._m_size = 0
        self._m_decoder: codecs.IncrementalDecoder | None = None
        self._m_compressed = False

    def release(self) -> None:
        """The connection is gone: drop the buffers and the decompressor; feed nothing more."""
        self._failed = True
        self._buf = b""
        self._m_parts = None
        self._f_control_parts = None
        self._inflater = None

    def feed(self, data: bytes) -> list[Event]:
        """Parse `data` (appended to what is buffered); return the completed events."""
        events: list[Event] = []
        if self._failed:
            return events
        if self._buf:
            data = self._buf + data
            self._buf = b""
        try:
            self._parse(data, events)
        except ProtocolError as exc:
            self._failed = True
            self._buf = b""
            events.append((FAIL, exc.code, exc.reason))
        return events

    def _parse(self, data: bytes, events: list[Event]) -> None:
        pos = 0
        end = len(data)
        masked = self._masked
        while pos < end:
            if self._f_opcode >= 0:
                pos = self._continue_frame(data, pos, events)
                continue
            if self._m_opcode == 0:
                # Whole, final, uncompressed data frames, in C; anything else is parsed below.
                pos = read_data_frames(data, pos, self._max_size, masked, events)
            if end - pos < 2:
                break
            b0 = data[pos]
            b1 = data[pos + 1]
            length = b1 & 0x7F
            header_len = 2
            if length == 126:
                header_len = 4
            elif length == 127:
                header_len = 10
            if b1 & 0x80:
                header_len += 4
            if end - pos < header_len:
                break
            if length == 126:
                length = (data[pos + 2] << 8) | data[pos + 3]
            elif length == 127:
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                if length >> 63:
                    raise ProtocolError(CLOSE_PROTOCOL_ERROR, "64-bit length with the most significant bit set")
            opcode = b0 & 0x0F
            if (b1 & 0x80) != (0x80 if masked else 0):
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "unmasked client frame" if masked else "masked server frame")
            mask = data[pos + header_len - 4 : pos + header_len] if masked else None
            pos += header_len
            self._start_frame(b0, opcode, length, mask)
            pos = self._continue_frame(data, pos, events)
        if pos < end:
            self._buf = data[pos:]

    def _start_frame(self, b0: int, opcode: int, length: int, mask: bytes | None) -> None:
        fin = bool(b0 & 0x80)
        rsv1 = bool(b0 & 0x40)
        if b0 & 0x30:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "reserved bits RSV2/RSV3 set")
        if opcode not in _KNOWN_OPCODES:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
        if opcode >= 8:
            if not fin:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "fragmented control frame")
            if length > 125:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "control frame over 125 bytes")
            if rsv1:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "RSV1 set on a control frame")
        elif opcode == OP_CONT:
            if self._m_opcode == 0:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "continuation frame without a message")
            if rsv1:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "RSV1 set on a continuation frame")
        else:
            if self._m_opcode != 0:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented message")
            if rsv1 and self._inflater is None:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "RSV1 set without permessage-deflate")
            self._m_opcode = opcode
            self._m_parts = []
            self._m_size = 0
            self._m_compressed = rsv1
            self._m_decoder = _Utf8Decoder() if opcode == OP_TEXT else None
        if opcode < 8 and not self._m_compressed and self._m_size + length > self._max_size:
            raise ProtocolError(CLOSE_TOO_BIG, f"message over {self._max_size} bytes")
        self._f_opcode = opcode
        self._f_fin = fin
        self._f_mask = mask
        self._f_left = length
        self._f_offset = 0
        if opcode >= 8:
            self._f_control_parts = []

    def _continue_frame(self, data: bytes, pos: int, events: list[Event]) -> int:
        """Consume what is available of the current frame's payload; return the new position."""
        take = min(self._f_left, len(data) - pos)
        chunk = data[pos : pos + take]
        if self._f_mask is not None and chunk:
            chunk = apply_mask(chunk, self._f_mask, self._f_offset)
        self._f_left -= take
        self._f_offset += take
        pos += take
        opcode = self._f_opcode
        if opcode >= 8:
            parts = self._f_control_parts
            assert parts is not None
            if chunk:
                parts.append(chunk)
            if self._f_left == 0:
                payload = b"".join(parts)
                self._f_control_parts = None
                self._f_opcode = -1
                if opcode == OP_CLOSE:
                    code, reason = parse_close_payload(payload)
                    events.append((OP_CLOSE, code, reason))
                else:
                    events.append((opcode, payload))
            return pos
        self._message_chunk(chunk)
        if self._f_left == 0:
            self._f_opcode = -1
            if self._f_fin:
                self._finish_message(events)
        return pos

    def _message_chunk(self, chunk: bytes) -> None:
        if self._m_compressed:
            assert self._inflater is not None
            chunk = self._inflater.feed(chunk, self._max_size - self._m_size)
        self._add_plain(chunk)

    def _add_plain(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._m_size += len(chunk)
        if self._m_size > self._max_size:
            raise ProtocolError(CLOSE_TOO_BIG, f"message over {self._max_size} bytes")
        parts = self._m_parts
        assert parts is not None
        decoder = self._m_decoder
        if decoder is not None:
            try:
                parts.append(decoder.decode(chunk))
            except UnicodeDecodeError:
                raise ProtocolError(CLOSE_INVALID_DATA, "invalid UTF-8 in text message") from None
        else:
            parts.append(chunk)

    def _finish_message(self, events: list[Event]) -> None:
        if self._m_compressed:
            assert self._inflater is not None
            self._add_plain(self._inflater.finish(self._max_size - self._m_size))
        decoder = self._m_decoder
        if decoder is not None:
            try:
                tail = decoder.decode(b"", True)
            except UnicodeDecodeError:
                raise ProtocolError(CLOSE_INVALID_DATA, "invalid UTF-8 in text message") from None
            events.append((OP_TEXT, "".join(self._m_parts or ()) + tail))
        else:
            events.append((OP_BINARY, b"".join(self._m_parts or ())))
        self._m_opcode = 0
        self._m_parts = None
        self._m_size = 0
        self._m_decoder = None
        self._m_compressed = False
