"""permessage-deflate (RFC 7692): negotiation and the per-message codec, on zlib.

Two server modes:
- "shared": the server always answers with `server_no_context_takeover`, so a
  compressed message does not depend on what the connection sent before; a
  broadcast is compressed once and the same bytes go to every member.
- "dedicated": the server keeps its compression context across messages when
  the client allows it (better ratio, one zlib context per connection, and a
  broadcast is compressed once per member).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Final, Literal

from hubbub.errors import ProtocolError

CompressionMode = Literal["disabled", "shared", "dedicated"]

_TAIL: Final = b"\x00\x00\xff\xff"
_CLOSE_TOO_BIG: Final = 1009
_CLOSE_INVALID_DATA: Final = 1007


@dataclass(frozen=True, slots=True)
class DeflateParams:
    """The agreed parameters of one connection's permessage-deflate."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int = 15
    echo_server_max_window_bits: bool = False

    def response_header(self) -> str:
        """The Sec-WebSocket-Extensions value the server answers with."""
        parts = ["permessage-deflate"]
        if self.server_no_context_takeover:
            parts.append("server_no_context_takeover")
        if self.client_no_context_takeover:
            parts.append("client_no_context_takeover")
        if self.echo_server_max_window_bits:
            parts.append(f"server_max_window_bits={self.server_max_window_bits}")
        return "; ".join(parts)


def _split_offers(header_values: list[str]) -> list[tuple[str, list[tuple[str, str | None]]]]:
    offers = []
    for value in header_values:
        for item in value.split(","):
            pieces = [p.strip() for p in item.split(";")]
            name = pieces[0].lower()
            if not name:
                continue
            params: list[tuple[str, str | None]] = []
            for piece in pieces[1:]:
                if not piece:
                    continue
                key, sep, raw = piece.partition("=")
                params.append((key.strip().lower(), raw.strip().strip('"') if sep else None))
            offers.append((name, params))
    return offers


def _window_bits(value: str | None, *, required: bool) -> int | None:
    if value is None:
        return None if not required else -1
    if not value.isdigit() or len(value) > 2:
        return -1
    bits = int(value)
    return bits if 8 <= bits <= 15 else -1


def _accept_offer(params: list[tuple[str, str | None]], mode: CompressionMode) -> DeflateParams | None:
    seen: set[str] = set()
    server_nct = mode == "shared"
    client_nct = False
    server_bits = 15
    echo_server_bits = False
    for key, value in params:
        if key in seen:
            return None
        seen.add(key)
        if key == "server_no_context_takeover":
            if value is not None:
                return None
            server_nct = True
        elif key == "client_no_context_takeover":
            if value is not None:
                return None
            client_nct = True
        elif key == "server_max_window_bits":
            bits = _window_bits(value, required=True)
            # zlib cannot compress raw deflate with an 8-bit window: decline.
            if bits is None or bits < 9:
                return None
            server_bits = bits
            echo_server_bits = True
        elif key == "client_max_window_bits":
            if _window_bits(value, required=False) == -1:
                return None
        else:
            return None
    return DeflateParams(
        server_no_context_takeover=server_nct,
        client_no_context_takeover=client_nct,
        server_max_window_bits=server_bits,
        echo_server_max_window_bits=echo_server_bits,
    )


def negotiate(header_values: list[str], mode: CompressionMode) -> DeflateParams | None:
    """Pick the first acceptable permessage-deflate offer, or None to go uncompressed."""
    if mode == "disabled":
        return None
    for name, params in _split_offers(header_values):
        if name != "permessage-deflate":
            continue
        accepted = _accept_offer(params, mode)
        if accepted is not None:
            return accepted
    return None


class Inflater:
    """Decompresses incoming messages, chunk by chunk, within a size limit."""

    __slots__ = ("_inflate", "_reset_each_message", "_wbits")

    def __init__(self, params: DeflateParams) -> None:
        self._reset_each_message = params.client_no_context_takeover
        self._wbits = -15
        self._inflate: zlib._Decompress | None = None

    def feed(self, chunk: bytes, room: int) -> bytes:
        """Decompress part of a message; `room` is how many more bytes the message may grow."""
        inflate = self._inflate
        if inflate is None:
            inflate = self._inflate = zlib.decompressobj(self._wbits)
        try:
            out = inflate.decompress(chunk, room + 1)
        except zlib.error:
            raise ProtocolError(_CLOSE_INVALID_DATA, "invalid compressed data") from None
        if len(out) > room or inflate.unconsumed_tail:
            raise ProtocolError(_CLOSE_TOO_BIG, "decompressed message too big")
        if inflate.unused_data:
            raise ProtocolError(_CLOSE_INVALID_DATA, "data after the end of the compressed stream")
        return out

    def finish(self, room: int) -> bytes:
        """End a message: flush the decompressor and reset it if context takeover is off."""
        if self._inflate is not None and self._inflate.eof:
            # The message ended with BFINAL (RFC 7692 7.2.3.4): no tail; the next message starts a new stream.
            self._inflate = None
            return b""
        out = self.feed(_TAIL, room)
        if self._reset_each_message:
            self._inflate = None
        return out


class Deflater:
    """Compresses outgoing messages. Without context takeover, every message stands alone."""

    __slots__ = ("_deflate", "_no_context_takeover", "_wbits")

    def __init__(self, *, no_context_takeover: bool, window_bits: int) -> None:
        self._no_context_takeover = no_context_takeover
        self._wbits = -window_bits
        self._deflate: zlib._Compress | None = None

    def compress(self, payload: bytes) -> bytes:
        """The compressed payload of one message (RFC 7692 7.2.1: sync flush, tail removed)."""
        deflate = self._deflate
        if deflate is None:
            deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, self._wbits)
        data = deflate.compress(payload) + deflate.flush(zlib.Z_SYNC_FLUSH)
        if self._no_context_takeover:
            self._deflate = None
        else:
            self._deflate = deflate
        if data.endswith(_TAIL):
            data = data[:-4]
        return data or b"\x00"

    def forget(self) -> None:
        """The last message was never sent: start the next one afresh (a peer that kept its
        context still decodes it; it just must not refer to what the peer never got)."""
        self._deflate = None
