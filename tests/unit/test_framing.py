"""Sans-I/O tests of RFC 6455 framing (`MessageReader`, `encode_frame`, close payloads)
and of permessage-deflate (`negotiate`, `Inflater`, `Deflater`, RFC 7692)."""

from __future__ import annotations

import os
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.errors import ProtocolError
from hubbub.transport.deflate import CompressionMode, DeflateParams, Deflater, Inflater, negotiate
from hubbub.transport.framing import (
    CLOSE_INVALID_DATA,
    CLOSE_NO_STATUS,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_TOO_BIG,
    FAIL,
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Event,
    MessageReader,
    close_payload,
    encode_frame,
    parse_close_payload,
)

MAX = 64 * 1024
RSV1, RSV2, RSV3 = 0x40, 0x20, 0x10
ZEROS = b"\x00\x00\x00\x00"


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = b"\x37\xfa\x21\x3d",
    length: int | None = None,
) -> bytes:
    """Any frame, valid or not; `length` overrides the declared payload length."""
    size = len(payload) if length is None else length
    first = (0x80 if fin else 0) | rsv | opcode
    mask_bit = 0x80 if mask is not None else 0
    if size < 126:
        header = bytes((first, mask_bit | size))
    elif size < 65536:
        header = bytes((first, mask_bit | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((first, mask_bit | 127)) + size.to_bytes(8, "big")
    if mask is None:
        return header + payload
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def reader(max_size: int = MAX, *, deflate: DeflateParams | None = None) -> MessageReader:
    """A server-side reader (client frames must be masked)."""
    return MessageReader(max_message_size=max_size, inflater=Inflater(deflate) if deflate is not None else None)


def feed_bytewise(r: MessageReader, data: bytes) -> list[Event]:
    """Feed one byte at a time; collect every event."""
    events: list[Event] = []
    for i in range(len(data)):
        events.extend(r.feed(data[i : i + 1]))
    return events


def fail_code(events: list[Event]) -> int:
    """The close code of the FAIL event that must end `events`."""
    assert events, "expected a FAIL event, got nothing"
    assert events[-1][0] == FAIL, f"expected FAIL, got {events[-1]!r}"
    code = events[-1][1]
    assert isinstance(code, int)
    return code


def compress(payload: bytes) -> bytes:
    """One message compressed as a standalone permessage-deflate payload."""
    return Deflater(no_context_takeover=True, window_bits=15).compress(payload)


# ---- encode_frame and lengths ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "header_len"),
    [(0, 2), (1, 2), (125, 2), (126, 4), (65535, 4), (65536, 10), (200_000, 10)],
)
def test_length_encodings_round_trip(size: int, header_len: int) -> None:
    payload = os.urandom(size)
    plain = encode_frame(OP_BINARY, payload)
    assert len(plain) == header_len + size
    assert plain[header_len:] == payload
    masked = encode_frame(OP_BINARY, payload, mask=os.urandom(4))
    assert len(masked) == header_len + 4 + size
    assert reader(max_size=size or 1).feed(masked) == [(OP_BINARY, payload)]
    assert MessageReader(max_message_size=size or 1, masked=False).feed(plain) == [(OP_BINARY, payload)]


def test_encode_frame_sets_fin_rsv1_and_opcode() -> None:
    data = encode_frame(OP_TEXT, b"hi", rsv1=True)
    assert data[0] == 0x80 | 0x40 | OP_TEXT
    assert data[1] == 2
    assert encode_frame(OP_PING, b"")[0] == 0x80 | OP_PING


def test_sixteen_bit_length_fed_in_pieces() -> None:
    payload = b"x" * 300
    data = encode_frame(OP_BINARY, payload, mask=b"abcd")
    r = reader()
    assert r.feed(data[:3]) == []  # half of the 16-bit length
    assert r.feed(data[3:7]) == []  # rest of the header and part of the mask
    assert r.feed(data[7:100]) == []
    assert r.feed(data[100:]) == [(OP_BINARY, payload)]


def test_sixty_four_bit_length_fed_in_pieces() -> None:
    payload = os.urandom(70_000)
    data = encode_frame(OP_BINARY, payload, mask=b"wxyz")
    r = reader(max_size=100_000)
    assert r.feed(data[:9]) == []  # 64-bit length not complete yet
    assert r.feed(data[9:14]) == []
    assert r.feed(data[14:40_000]) == []
    assert r.feed(data[40_000:]) == [(OP_BINARY, payload)]


def test_byte_at_a_time_matches_whole_feed() -> None:
    stream = (
        encode_frame(OP_TEXT, "héllo €".encode(), mask=b"1234")
        + frame(OP_TEXT, b"frag-", fin=False)
        + encode_frame(OP_PING, b"p", mask=b"5678")
        + frame(OP_CONT, "mënt".encode(), fin=True)
        + encode_frame(OP_BINARY, bytes(range(256)) * 2, mask=b"9abc")
        + encode_frame(OP_PONG, b"", mask=b"defg")
        + encode_frame(OP_CLOSE, close_payload(1000, "bye"), mask=b"hijk")
    )
    expected: list[Event] = [
        (OP_TEXT, "héllo €"),
        (OP_PING, b"p"),
        (OP_TEXT, "frag-mënt"),
        (OP_BINARY, bytes(range(256)) * 2),
        (OP_PONG, b""),
        (OP_CLOSE, 1000, "bye"),
    ]
    assert reader().feed(stream) == expected
    assert feed_bytewise(reader(), stream) == expected


_message = st.one_of(
    st.text(max_size=300).map(lambda s: (OP_TEXT, s)),
    st.binary(max_size=300).map(lambda b: (OP_BINARY, b)),
)


@settings(max_examples=60, deadline=None)
@given(
    messages=st.lists(_message, min_size=1, max_size=8),
    pieces=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=6),
    fragment_size=st.integers(min_value=1, max_value=200),
)
def test_any_split_and_fragmentation_gives_the_same_messages(
    messages: list[tuple[int, str | bytes]], pieces: list[int], fragment_size: int
) -> None:
    stream = b""
    for opcode, data in messages:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        chunks = [raw[i : i + fragment_size] for i in range(0, len(raw), fragment_size)] or [b""]
        for i, chunk in enumerate(chunks):
            stream += frame(opcode if i == 0 else OP_CONT, chunk, fin=i == len(chunks) - 1, mask=os.urandom(4))
    r = reader()
    events: list[Event] = []
    pos = 0
    step = 0
    while pos < len(stream):
        size = pieces[step % len(pieces)]
        events.extend(r.feed(stream[pos : pos + size]))
        pos += size
        step += 1
    assert events == messages


# ---- fragmentation and control frames ------------------------------------------------------------


def test_fragmented_text_and_binary() -> None:
    r = reader()
    assert r.feed(frame(OP_TEXT, b"one ", fin=False)) == []
    assert r.feed(frame(OP_CONT, b"two ", fin=False)) == []
    assert r.feed(frame(OP_CONT, b"three")) == [(OP_TEXT, "one two three")]
    data = frame(OP_BINARY, b"\x00\x01", fin=False) + frame(OP_CONT, b"", fin=False) + frame(OP_CONT, b"\x02")
    assert r.feed(data) == [(OP_BINARY, b"\x00\x01\x02")]


def test_control_frames_interleaved_in_a_fragmented_message() -> None:
    r = reader()
    data = (
        frame(OP_TEXT, b"a", fin=False)
        + frame(OP_PING, b"ping-1")
        + frame(OP_CONT, b"b", fin=False)
        + frame(OP_PONG, b"pong-1")
        + frame(OP_CONT, b"c")
    )
    assert r.feed(data) == [(OP_PING, b"ping-1"), (OP_PONG, b"pong-1"), (OP_TEXT, "abc")]


def test_close_inside_a_fragmented_message_is_reported() -> None:
    r = reader()
    data = frame(OP_TEXT, b"partial", fin=False) + frame(OP_CLOSE, close_payload(1001, "away"))
    assert r.feed(data) == [(OP_CLOSE, 1001, "away")]


def test_control_frame_split_byte_by_byte_between_fragments() -> None:
    data = frame(OP_BINARY, b"xy", fin=False) + frame(OP_PING, b"hello") + frame(OP_CONT, b"z")
    assert feed_bytewise(reader(), data) == [(OP_PING, b"hello"), (OP_BINARY, b"xyz")]


def test_partial_frame_yields_nothing_until_complete() -> None:
    data = frame(OP_TEXT, b"complete me")
    r = reader()
    assert r.feed(data[:1]) == []
    assert r.feed(data[1:2]) == []
    assert r.feed(data[2:6]) == []  # mask
    assert r.feed(data[6:10]) == []
    assert r.feed(data[10:]) == [(OP_TEXT, "complete me")]


def test_events_before_a_protocol_error_are_kept_and_reader_stops() -> None:
    r = reader()
    events = r.feed(frame(OP_TEXT, b"good") + frame(3, b"bad") + frame(OP_TEXT, b"never"))
    assert events[0] == (OP_TEXT, "good")
    assert fail_code(events) == CLOSE_PROTOCOL_ERROR
    assert len(events) == 2
    assert r.feed(frame(OP_TEXT, b"after")) == []


def test_ping_payload_up_to_125_bytes() -> None:
    assert reader().feed(frame(OP_PING, b"p" * 125)) == [(OP_PING, b"p" * 125)]


# ---- UTF-8 ---------------------------------------------------------------------------------------


def test_invalid_utf8_in_a_whole_frame() -> None:
    assert fail_code(reader().feed(frame(OP_TEXT, b"ok \xff"))) == CLOSE_INVALID_DATA


def test_invalid_utf8_detected_before_the_frame_is_complete() -> None:
    payload = b"fine so far \xc3\x28" + b"x" * 1000
    data = frame(OP_TEXT, payload)
    r = reader()
    # Header (2 + 2 length + 4 mask) plus the first 14 payload bytes: the invalid pair is in.
    events = r.feed(data[: 8 + 14])
    assert fail_code(events) == CLOSE_INVALID_DATA


def test_invalid_utf8_detected_byte_by_byte_in_a_huge_frame() -> None:
    r = reader(max_size=10_000_000)
    header = frame(OP_TEXT, b"", length=5_000_000)  # the payload never arrives
    mask = header[-4:]
    assert r.feed(header) == []
    sent = b"abc\xc3(xyz"  # 0xc3 must be followed by a continuation byte
    events: list[Event] = []
    for i, byte in enumerate(sent):
        events.extend(r.feed(bytes((byte ^ mask[i % 4],))))
        if events:
            break
    assert fail_code(events) == CLOSE_INVALID_DATA
    assert i == 4  # failed on the byte that made the sequence invalid


def test_utf8_split_across_fragments_is_valid() -> None:
    euro = "€".encode()  # e2 82 ac
    data = frame(OP_TEXT, b"price " + euro[:1], fin=False) + frame(OP_CONT, euro[1:2], fin=False)
    data += frame(OP_CONT, euro[2:] + b" 5")
    assert reader().feed(data) == [(OP_TEXT, "price € 5")]
    assert feed_bytewise(reader(), data) == [(OP_TEXT, "price € 5")]


def test_four_byte_character_split_across_fragments() -> None:
    emoji = "🎉".encode()
    data = b"".join(frame(OP_TEXT if i == 0 else OP_CONT, emoji[i : i + 1], fin=i == 3) for i in range(4))
    assert reader().feed(data) == [(OP_TEXT, "🎉")]


def test_truncated_utf8_at_message_end_is_invalid() -> None:
    data = frame(OP_TEXT, b"cut \xe2\x82", fin=False) + frame(OP_CONT, b"")
    assert fail_code(reader().feed(data)) == CLOSE_INVALID_DATA


def test_binary_messages_are_not_utf8_checked() -> None:
    assert reader().feed(frame(OP_BINARY, b"\xff\xfe")) == [(OP_BINARY, b"\xff\xfe")]


# ---- close frames ---------------------------------------------------------------------------------


def test_empty_close_payload_means_no_status() -> None:
    assert parse_close_payload(b"") == (CLOSE_NO_STATUS, "")
    assert reader().feed(frame(OP_CLOSE)) == [(OP_CLOSE, CLOSE_NO_STATUS, "")]


def test_one_byte_close_body_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_close_payload(b"\x03")
    assert caught.value.code == CLOSE_PROTOCOL_ERROR
    assert fail_code(reader().feed(frame(OP_CLOSE, b"\x03"))) == CLOSE_PROTOCOL_ERROR


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535])
def test_invalid_close_codes(code: int) -> None:
    body = code.to_bytes(2, "big") + b"why"
    with pytest.raises(ProtocolError) as caught:
        parse_close_payload(body)
    assert caught.value.code == CLOSE_PROTOCOL_ERROR
    assert fail_code(reader().feed(frame(OP_CLOSE, body))) == CLOSE_PROTOCOL_ERROR


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999])
def test_valid_close_codes(code: int) -> None:
    assert parse_close_payload(close_payload(code, "ok")) == (code, "ok")
    assert reader().feed(frame(OP_CLOSE, close_payload(code, "ok"))) == [(OP_CLOSE, code, "ok")]


def test_invalid_utf8_close_reason() -> None:
    body = (1000).to_bytes(2, "big") + b"\xc0\xaf"
    with pytest.raises(ProtocolError) as caught:
        parse_close_payload(body)
    assert caught.value.code == CLOSE_INVALID_DATA
    assert fail_code(reader().feed(frame(OP_CLOSE, body))) == CLOSE_INVALID_DATA


def test_close_payload_encoding() -> None:
    assert close_payload(CLOSE_NO_STATUS, "ignored") == b""
    assert close_payload(1000) == b"\x03\xe8"
    assert close_payload(4000, "bye") == b"\x0f\xa0bye"


def test_close_reason_is_cut_to_fit_a_control_frame_without_breaking_utf8() -> None:
    body = close_payload(1001, "é" * 100)  # 200 bytes of 2-byte characters
    assert len(body) <= 125
    code, reason = parse_close_payload(body)
    assert code == 1001
    assert reason == "é" * 61
    assert reader().feed(frame(OP_CLOSE, body)) == [(OP_CLOSE, 1001, "é" * 61)]


# ---- protocol errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(frame(OP_TEXT, b"x", rsv=RSV2), id="rsv2"),
        pytest.param(frame(OP_BINARY, b"x", rsv=RSV3), id="rsv3"),
        pytest.param(frame(OP_TEXT, b"x", rsv=RSV1), id="rsv1-without-deflate"),
        pytest.param(frame(OP_PING, b"x", rsv=RSV2), id="rsv2-on-ping"),
        pytest.param(frame(OP_PING, b"x", fin=False), id="fragmented-ping"),
        pytest.param(frame(OP_CLOSE, b"\x03\xe8", fin=False), id="fragmented-close"),
        pytest.param(frame(OP_PING, b"x" * 126), id="ping-over-125"),
        pytest.param(frame(OP_PONG, b"", length=70_000), id="pong-64bit-length"),
        pytest.param(frame(OP_CONT, b"x"), id="continuation-without-start"),
        pytest.param(frame(OP_TEXT, b"a", fin=False) + frame(OP_TEXT, b"b"), id="new-text-in-fragmented"),
        pytest.param(frame(OP_BINARY, b"a", fin=False) + frame(OP_TEXT, b"b"), id="new-text-in-fragmented-binary"),
        pytest.param(frame(OP_TEXT, b"x", mask=None), id="unmasked-client-frame"),
        pytest.param(frame(OP_PING, b"", mask=None), id="unmasked-ping"),
        *(pytest.param(frame(op, b"x"), id=f"opcode-{op:#x}") for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF)),
    ],
)
def test_protocol_errors_fail_with_1002(data: bytes) -> None:
    assert fail_code(reader().feed(data)) == CLOSE_PROTOCOL_ERROR
    assert fail_code(feed_bytewise(reader(), data)) == CLOSE_PROTOCOL_ERROR


def test_masked_frame_from_a_server_is_an_error_on_the_client() -> None:
    client = MessageReader(max_message_size=MAX, masked=False)
    assert fail_code(client.feed(frame(OP_TEXT, b"x", mask=b"abcd"))) == CLOSE_PROTOCOL_ERROR


@pytest.mark.parametrize("rsv", [RSV1, RSV2])
def test_rsv_on_control_or_continuation_with_deflate(rsv: int) -> None:
    r = reader(deflate=DeflateParams())
    assert fail_code(r.feed(frame(OP_PING, b"", rsv=rsv))) == CLOSE_PROTOCOL_ERROR
    r = reader(deflate=DeflateParams())
    data = frame(OP_TEXT, compress(b"ab"), rsv=RSV1, fin=False) + frame(OP_CONT, b"", rsv=rsv)
    assert fail_code(r.feed(data)) == CLOSE_PROTOCOL_ERROR


# ---- size limits ------------------------------------------------------------------------------------


def test_message_exactly_at_the_limit_passes_and_one_more_byte_fails() -> None:
    assert reader(max_size=100).feed(frame(OP_BINARY, b"x" * 100)) == [(OP_BINARY, b"x" * 100)]
    assert fail_code(reader(max_size=100).feed(frame(OP_BINARY, b"x" * 101))) == CLOSE_TOO_BIG


def test_oversized_frame_rejected_from_its_header_alone() -> None:
    header = frame(OP_TEXT, b"", length=1000)
    assert fail_code(reader(max_size=999).feed(header)) == CLOSE_TOO_BIG


@pytest.mark.parametrize("length", [2**62, 2**63 - 1])
def test_huge_64bit_length_fails_without_allocating(length: int) -> None:
    header = frame(OP_BINARY, b"", length=length)
    assert len(header) == 14
    assert fail_code(reader().feed(header)) == CLOSE_TOO_BIG


def test_64bit_length_with_top_bit_set_is_a_protocol_error() -> None:
    header = frame(OP_BINARY, b"", length=2**63)
    assert fail_code(reader().feed(header)) == CLOSE_PROTOCOL_ERROR


def test_size_limit_across_fragments() -> None:
    r = reader(max_size=100)
    assert r.feed(frame(OP_TEXT, b"a" * 60, fin=False)) == []
    assert r.feed(frame(OP_CONT, b"b" * 40, fin=False)) == []
    # The next fragment's header alone pushes the message over the limit.
    assert fail_code(r.feed(frame(OP_CONT, b"", length=1, fin=True)[:6])) == CLOSE_TOO_BIG


def test_fragments_up_to_the_limit_pass() -> None:
    data = frame(OP_BINARY, b"a" * 60, fin=False) + frame(OP_CONT, b"b" * 40)
    assert reader(max_size=100).feed(data) == [(OP_BINARY, b"a" * 60 + b"b" * 40)]


# ---- permessage-deflate: reading compressed messages --------------------------------------------------


def test_compressed_message_round_trip_through_the_reader() -> None:
    text = "compress me " * 50
    data = frame(OP_TEXT, compress(text.encode()), rsv=RSV1)
    assert reader(deflate=DeflateParams()).feed(data) == [(OP_TEXT, text)]
    assert feed_bytewise(reader(deflate=DeflateParams()), data) == [(OP_TEXT, text)]


def test_compressed_message_in_fragments() -> None:
    payload = os.urandom(500) + b"z" * 3000
    body = compress(payload)
    data = frame(OP_BINARY, body[:10], rsv=RSV1, fin=False)
    data += frame(OP_PING, b"mid")
    data += frame(OP_CONT, body[10:], fin=True)
    assert reader(deflate=DeflateParams()).feed(data) == [(OP_PING, b"mid"), (OP_BINARY, payload)]


def test_zip_bomb_fails_with_1009() -> None:
    bomb = compress(b"\x00" * 20_000_000)
    assert len(bomb) < 50_000
    r = reader(max_size=MAX, deflate=DeflateParams())
    assert fail_code(r.feed(frame(OP_BINARY, bomb, rsv=RSV1))) == CLOSE_TOO_BIG


def test_zip_bomb_across_fragments_fails_with_1009() -> None:
    bomb = compress(b"a" * 1_000_000)
    step = len(bomb) // 4
    r = reader(max_size=MAX, deflate=DeflateParams())
    events = r.feed(frame(OP_TEXT, bomb[:step], rsv=RSV1, fin=False))
    for i in range(1, 4):
        if events:
            break
        events = r.feed(frame(OP_CONT, bomb[i * step : (i + 1) * step], fin=False))
    assert fail_code(events) == CLOSE_TOO_BIG


def test_decompressed_size_exactly_at_the_limit_passes() -> None:
    payload = b"q" * 1000
    data = frame(OP_BINARY, compress(payload), rsv=RSV1)
    assert reader(max_size=1000, deflate=DeflateParams()).feed(data) == [(OP_BINARY, payload)]
    assert fail_code(reader(max_size=999, deflate=DeflateParams()).feed(data)) == CLOSE_TOO_BIG


def test_invalid_compressed_data_fails_with_1007() -> None:
    data = frame(OP_BINARY, b"\xff\xff\xff\xff garbage", rsv=RSV1)
    assert fail_code(reader(deflate=DeflateParams()).feed(data)) == CLOSE_INVALID_DATA


def test_compressed_text_with_invalid_utf8_fails_with_1007() -> None:
    data = frame(OP_TEXT, compress(b"bad \xff text"), rsv=RSV1)
    assert fail_code(reader(deflate=DeflateParams()).feed(data)) == CLOSE_INVALID_DATA


def test_compressed_and_plain_messages_mix() -> None:
    data = frame(OP_TEXT, compress(b"packed"), rsv=RSV1) + frame(OP_TEXT, b"plain")
    assert reader(deflate=DeflateParams()).feed(data) == [(OP_TEXT, "packed"), (OP_TEXT, "plain")]


# ---- permessage-deflate: Deflater / Inflater ----------------------------------------------------------


def test_deflater_round_trip_without_context_takeover() -> None:
    deflater = Deflater(no_context_takeover=True, window_bits=15)
    message = b"the same words again and again " * 20
    first = deflater.compress(message)
    second = deflater.compress(message)
    assert first == second  # nothing carried over
    fresh = Inflater(DeflateParams(client_no_context_takeover=True))
    assert fresh.feed(second, MAX) + fresh.finish(MAX) == message


def test_deflater_round_trip_with_context_takeover() -> None:
    deflater = Deflater(no_context_takeover=False, window_bits=15)
    message = os.urandom(200)
    first = deflater.compress(message)
    second = deflater.compress(message)
    assert len(second) < len(first) // 2  # refers back to the first message
    inflater = Inflater(DeflateParams())
    assert inflater.feed(first, MAX) + inflater.finish(MAX) == message
    assert inflater.feed(second, MAX) + inflater.finish(MAX) == message
    # Without the first message's context the second cannot be decoded.
    with pytest.raises(ProtocolError) as caught:
        alone = Inflater(DeflateParams())
        alone.feed(second, MAX)
        alone.finish(MAX)
    assert caught.value.code == CLOSE_INVALID_DATA


def test_inflater_resets_per_message_when_client_has_no_context_takeover() -> None:
    deflater = Deflater(no_context_takeover=False, window_bits=15)
    message = os.urandom(200)
    deflater.compress(message)
    dependent = deflater.compress(message)
    inflater = Inflater(DeflateParams(client_no_context_takeover=True))
    inflater.feed(compress(message), MAX)
    inflater.finish(MAX)
    with pytest.raises(ProtocolError):
        inflater.feed(dependent, MAX)
        inflater.finish(MAX)


def test_empty_message_compresses_and_round_trips() -> None:
    body = compress(b"")
    assert body
    assert reader(deflate=DeflateParams()).feed(frame(OP_BINARY, body, rsv=RSV1)) == [(OP_BINARY, b"")]


@pytest.mark.parametrize("bits", [9, 10, 12, 15])
def test_deflater_window_bits(bits: int) -> None:
    message = os.urandom(1000) * 3
    deflater = Deflater(no_context_takeover=False, window_bits=bits)
    inflater = Inflater(DeflateParams())
    for _ in range(3):
        assert inflater.feed(deflater.compress(message), len(message)) + inflater.finish(len(message)) == message


def test_message_ended_with_a_final_block_then_another_message() -> None:
    """RFC 7692 7.2.3.4: a sender may end a message with BFINAL=1 instead of an empty stored block."""

    def final(payload: bytes) -> bytes:
        packer = zlib.compressobj(wbits=-15)
        return packer.compress(payload) + packer.flush(zlib.Z_FINISH)

    r = reader(deflate=DeflateParams())
    data = frame(OP_TEXT, final(b"first"), rsv=RSV1) + frame(OP_TEXT, final(b"second"), rsv=RSV1)
    data += frame(OP_TEXT, compress(b"third"), rsv=RSV1)
    assert r.feed(data) == [(OP_TEXT, "first"), (OP_TEXT, "second"), (OP_TEXT, "third")]
    # Anything after the final block of a message is invalid, in the same frame or a later fragment.
    body = final(b"done")
    assert (
        fail_code(reader(deflate=DeflateParams()).feed(frame(OP_TEXT, body + b"\x00", rsv=RSV1))) == CLOSE_INVALID_DATA
    )
    data = frame(OP_TEXT, body, rsv=RSV1, fin=False) + frame(OP_CONT, b"\x02\x00")
    assert fail_code(reader(deflate=DeflateParams()).feed(data)) == CLOSE_INVALID_DATA


@settings(max_examples=40, deadline=None)
@given(
    messages=st.lists(st.binary(max_size=2000) | st.text(max_size=500).map(str.encode), min_size=1, max_size=6),
    takeover=st.booleans(),
    bits=st.integers(min_value=9, max_value=15),
)
def test_deflate_round_trip_property(messages: list[bytes], takeover: bool, bits: int) -> None:
    deflater = Deflater(no_context_takeover=not takeover, window_bits=bits)
    stream = b"".join(frame(OP_BINARY, deflater.compress(m), rsv=RSV1, mask=os.urandom(4)) for m in messages)
    params = DeflateParams(client_no_context_takeover=not takeover)
    assert reader(deflate=params).feed(stream) == [(OP_BINARY, m) for m in messages]


# ---- permessage-deflate: negotiation ----------------------------------------------------------------


def test_no_offer_or_disabled_means_no_compression() -> None:
    assert negotiate([], "shared") is None
    assert negotiate(["x-webkit-deflate-frame"], "shared") is None
    assert negotiate(["permessage-deflate"], "disabled") is None


def test_shared_mode_always_adds_server_no_context_takeover() -> None:
    params = negotiate(["permessage-deflate"], "shared")
    assert params is not None
    assert params.server_no_context_takeover
    assert params.response_header() == "permessage-deflate; server_no_context_takeover"
    offered = negotiate(["permessage-deflate; client_max_window_bits; server_max_window_bits=12"], "shared")
    assert offered is not None
    assert offered.response_header() == "permessage-deflate; server_no_context_takeover; server_max_window_bits=12"


def test_dedicated_mode_keeps_context_unless_asked() -> None:
    params = negotiate(["permessage-deflate; client_max_window_bits"], "dedicated")
    assert params == DeflateParams()
    assert params.response_header() == "permessage-deflate"
    asked = negotiate(["permessage-deflate; server_no_context_takeover; client_no_context_takeover"], "dedicated")
    assert asked is not None
    assert asked.server_no_context_takeover
    assert asked.client_no_context_takeover
    assert asked.response_header() == "permessage-deflate; server_no_context_takeover; client_no_context_takeover"


@pytest.mark.parametrize("bits", [9, 10, 15])
def test_server_max_window_bits_accepted_and_echoed(bits: int) -> None:
    params = negotiate([f"permessage-deflate; server_max_window_bits={bits}"], "dedicated")
    assert params is not None
    assert params.server_max_window_bits == bits
    assert params.response_header() == f"permessage-deflate; server_max_window_bits={bits}"


@pytest.mark.parametrize(
    "offer",
    [
        "permessage-deflate; server_max_window_bits=8",  # zlib cannot do raw deflate with 8 bits
        "permessage-deflate; server_max_window_bits",  # needs a value
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=abc",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits=-9",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=",
        "permessage-deflate; client_max_window_bits=x",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover=yes",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=12",
        "permessage-deflate; unknown_param",
        "permessage-deflate; mux=1",
    ],
)
def test_unacceptable_offers_are_declined(offer: str) -> None:
    assert negotiate([offer], "shared") is None
    assert negotiate([offer], "dedicated") is None


@pytest.mark.parametrize("bits", ["8", "9", "15", '"10"'])
def test_client_max_window_bits_values_accepted(bits: str) -> None:
    assert negotiate([f"permessage-deflate; client_max_window_bits={bits}"], "dedicated") is not None


def test_first_acceptable_offer_wins() -> None:
    offers = [
        "permessage-deflate; server_max_window_bits=8, permessage-deflate; server_max_window_bits=10",
        "permessage-deflate; server_max_window_bits=11",
    ]
    params = negotiate(offers, "dedicated")
    assert params is not None
    assert params.server_max_window_bits == 10
    second_header = negotiate(
        ["x-other, permessage-deflate; bogus", "permessage-deflate; client_no_context_takeover"], "dedicated"
    )
    assert second_header is not None
    assert second_header.client_no_context_takeover


def test_negotiation_is_case_insensitive_and_tolerates_spaces() -> None:
    params = negotiate(
        ["  Permessage-Deflate ;  Server_No_Context_Takeover ; server_max_window_bits = 11 "], "dedicated"
    )
    assert params is not None
    assert params.server_no_context_takeover
    assert params.server_max_window_bits == 11


@pytest.mark.parametrize("mode", ["shared", "dedicated"])
def test_negotiated_params_drive_a_working_codec(mode: CompressionMode) -> None:
    params = negotiate(["permessage-deflate; server_max_window_bits=10; client_no_context_takeover"], mode)
    assert params is not None
    deflater = Deflater(
        no_context_takeover=params.server_no_context_takeover, window_bits=params.server_max_window_bits
    )
    client_side = MessageReader(max_message_size=MAX, masked=False, inflater=Inflater(DeflateParams()))
    messages = [b"hello " * 100, b"hello " * 100, os.urandom(300)]
    stream = b"".join(encode_frame(OP_BINARY, deflater.compress(m), rsv1=True) for m in messages)
    assert client_side.feed(stream) == [(OP_BINARY, m) for m in messages]


def test_zero_mask_is_valid() -> None:
    assert reader().feed(frame(OP_TEXT, b"same", mask=ZEROS)) == [(OP_TEXT, "same")]
