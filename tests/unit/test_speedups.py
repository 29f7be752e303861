"""The C accelerators of framing: `read_data_frames` takes only frames it may, and
`build_frame` writes the same bytes the RFC 6455 layout asks for."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubbub.transport._speedups import apply_mask, build_frame, read_data_frames
from hubbub.transport.framing import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, MessageReader
from tests.unit.test_framing import RSV1, frame

MAX = 64 * 1024


def read(data: bytes, pos: int = 0, *, max_size: int = MAX, masked: bool = True) -> tuple[int, list[Any]]:
    events: list[Any] = []
    return read_data_frames(data, pos, max_size, masked, events), events


def test_reads_every_whole_data_frame_and_returns_the_end() -> None:
    data = frame(OP_TEXT, b"hello") + frame(OP_BINARY, b"\x00\xff") + frame(OP_TEXT, "é€😀".encode())
    assert read(data) == (len(data), [(OP_TEXT, "hello"), (OP_BINARY, b"\x00\xff"), (OP_TEXT, "é€😀")])


@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 125, 126, 2048, 2049, 65535, 65536, 70000])
def test_every_length_encoding_and_unmasking_width(size: int) -> None:
    text = bytes(ord("a") + i % 26 for i in range(size))
    data = frame(OP_TEXT, text) + frame(OP_BINARY, text)
    assert read(data, max_size=1 << 20) == (len(data), [(OP_TEXT, text.decode()), (OP_BINARY, text)])


@pytest.mark.parametrize(
    "stopper",
    [
        frame(OP_PING, b"p"),
        frame(OP_CLOSE, b"\x03\xe8"),
        frame(OP_TEXT, b"part", fin=False),
        frame(OP_CONT, b"x"),
        frame(OP_TEXT, b"deflated", rsv=RSV1),
        frame(OP_TEXT, b"unmasked", mask=None),
        frame(OP_TEXT, b"\xff\xfe"),  # invalid UTF-8: the Python reader says 1007
        frame(OP_BINARY, b"x" * 11),  # over max_size below: the Python reader says 1009
        frame(0x3, b"reserved opcode"),
    ],
)
def test_stops_at_the_first_frame_it_must_not_take(stopper: bytes) -> None:
    first = frame(OP_TEXT, b"ok")
    data = first + stopper + frame(OP_TEXT, b"after")
    assert read(data, max_size=10) == (len(first), [(OP_TEXT, "ok")])


@pytest.mark.parametrize(
    "partial",
    [
        frame(OP_TEXT, b"x" * 300)[:-1],  # payload
        frame(OP_TEXT, b"x" * 300)[:3],  # 16-bit length
        frame(OP_BINARY, b"x" * 70000)[:9],  # 64-bit length
        frame(OP_TEXT, b"abc")[:5],  # mask
        b"\x81",
    ],
)
def test_leaves_an_incomplete_frame_for_later(partial: bytes) -> None:
    first = frame(OP_BINARY, b"ok")
    assert read(first + partial, max_size=1 << 20) == (len(first), [(OP_BINARY, b"ok")])


def test_starts_at_pos_and_reads_unmasked_frames_for_a_client() -> None:
    data = b"junk" + frame(OP_TEXT, b"hi", mask=None)
    assert read(data, 4, masked=False) == (len(data), [(OP_TEXT, "hi")])
    assert read(frame(OP_TEXT, b"masked"), masked=False) == (0, [])


def test_64bit_length_with_the_top_bit_is_left_to_the_python_reader() -> None:
    data = b"\x82\xff" + b"\x80" + b"\x00" * 7 + b"\x00" * 4
    assert read(data, max_size=1 << 62) == (0, [])


def test_bad_position_is_refused() -> None:
    with pytest.raises(ValueError):
        read(b"abc", 4)


@given(st.lists(st.one_of(st.text(max_size=300), st.binary(max_size=300)), max_size=20), st.integers(1, 64))
def test_reader_gives_the_sent_messages_for_any_chunking(messages: list[str | bytes], chunk: int) -> None:
    data = b"".join(frame(OP_TEXT, m.encode()) if isinstance(m, str) else frame(OP_BINARY, m) for m in messages)
    reader = MessageReader(max_message_size=MAX)
    got: list[Any] = []
    for i in range(0, len(data), chunk):
        got += reader.feed(data[i : i + chunk])
    assert got == [(OP_TEXT if isinstance(m, str) else OP_BINARY, m) for m in messages]


def reference_frame(opcode: int, payload: bytes, rsv1: bool = False) -> bytes:
    n = len(payload)
    first = 0x80 | (0x40 if rsv1 else 0) | opcode
    if n < 126:
        return bytes((first, n)) + payload
    if n < 65536:
        return bytes((first, 126)) + n.to_bytes(2, "big") + payload
    return bytes((first, 127)) + n.to_bytes(8, "big") + payload


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_build_frame_lengths(size: int) -> None:
    payload = b"z" * size
    assert build_frame(OP_BINARY, payload) == reference_frame(OP_BINARY, payload)
    assert build_frame(OP_TEXT, payload.decode()) == reference_frame(OP_TEXT, payload)


def test_build_frame_accepts_text_and_any_buffer() -> None:
    assert build_frame(OP_TEXT, "héllo €") == reference_frame(OP_TEXT, "héllo €".encode())
    assert build_frame(OP_BINARY, bytearray(b"ab")) == reference_frame(OP_BINARY, b"ab")
    assert build_frame(OP_BINARY, memoryview(b"xabx")[1:3]) == reference_frame(OP_BINARY, b"ab")
    assert build_frame(OP_BINARY, memoryview(b"a-b-c")[::2]) == reference_frame(OP_BINARY, b"abc")  # not contiguous
    assert build_frame(OP_TEXT, b"deflated", True) == reference_frame(OP_TEXT, b"deflated", rsv1=True)


def test_build_frame_refuses_text_that_cannot_be_utf8() -> None:
    with pytest.raises(UnicodeEncodeError):
        build_frame(OP_TEXT, "lone surrogate \ud800")
    with pytest.raises(TypeError):
        build_frame(OP_BINARY, 42)  # type: ignore[arg-type]


@given(st.binary(max_size=100), st.binary(min_size=4, max_size=4), st.integers(0, 7))
def test_apply_mask_matches_the_definition(data: bytes, mask: bytes, offset: int) -> None:
    assert apply_mask(data, mask, offset) == bytes(b ^ mask[(i + offset) % 4] for i, b in enumerate(data))
