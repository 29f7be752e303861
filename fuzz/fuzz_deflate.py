"""Fuzz permessage-deflate: offer negotiation from any header text, and decompression of any
bytes within a size limit (ProtocolError 1007/1009 is the only refusal), and round trips of
any payload through Deflater -> Inflater for every window size and takeover setting."""

from __future__ import annotations

from fuzz.runner import fuzz, instrumented

with instrumented():
    from hubbub.errors import ProtocolError
    from hubbub.transport.deflate import DeflateParams, Deflater, Inflater, negotiate


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    flags, room_seed = data[0], data[1]
    body = data[2:]
    header = body.decode("latin-1")
    for mode in ("shared", "dedicated"):
        params = negotiate(header.split("\n"), mode)
        if params is not None:
            if not 8 <= params.server_max_window_bits <= 15:
                raise AssertionError(f"window bits {params.server_max_window_bits}")
            params.response_header().encode("latin-1")
    room = 1 + room_seed * 64
    inflater = Inflater(DeflateParams(client_no_context_takeover=bool(flags & 1)))
    try:
        out = inflater.feed(body, room)
        out += inflater.finish(room - len(out))
    except ProtocolError as refused:
        if refused.code not in (1007, 1009):
            raise AssertionError(f"close code {refused.code}") from None
    else:
        if len(out) > room:
            raise AssertionError("inflated past the limit")
    bits = 9 + (flags >> 1) % 7
    takeover = not flags & 0x80
    deflater = Deflater(no_context_takeover=not takeover, window_bits=bits)
    receiver = Inflater(DeflateParams(client_no_context_takeover=not takeover))
    for message in (body, body[::-1], b""):
        compressed = deflater.compress(message)
        plain = receiver.feed(compressed, len(message) + 1) + receiver.finish(len(message) + 1)
        if plain != message:
            raise AssertionError("deflate round trip changed the message")


if __name__ == "__main__":
    fuzz(test_one_input)
