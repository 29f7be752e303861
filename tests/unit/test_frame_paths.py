"""The C and Python frame paths agree byte for byte.

`MessageReader` takes whole, final, uncompressed data frames through the C fast path
(`read_data_frames`) and everything else in Python. With the fast path switched off every
frame goes through Python; for any byte stream, in any chunking, both readers must give the
same events (messages, control frames, and the same FAIL code). `build_frame` (C) must write
the bytes of the RFC 6455 layout for any payload, as the Python encoder of masked frames does.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubbub.transport import framing
from hubbub.transport._speedups import apply_mask, build_frame
from hubbub.transport.deflate import DeflateParams, Inflater
from hubbub.transport.framing import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, MessageReader
from tests.unit.test_framing import frame
from tests.unit.test_speedups import reference_frame

FAST = framing.read_data_frames


def python_only(data: bytes, pos: int, max_size: int, masked: bool, events: list[Any]) -> int:
    return pos


def read_all(data: bytes, cuts: list[int], *, fast: bool, max_size: int, masked: bool, deflate: bool) -> list[Any]:
    inflater = Inflater(DeflateParams(client_no_context_takeover=True)) if deflate else None
    reader = MessageReader(max_message_size=max_size, masked=masked, inflater=inflater)
    events: list[Any] = []
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        events += reader.feed(data[start:cut])
        start = cut
    return events


def both_paths(data: bytes, cuts: list[int], **kwargs: Any) -> tuple[list[Any], list[Any]]:
    with pytest.MonkeyPatch.context() as patch:
        fast = read_all(data, cuts, fast=True, **kwargs)
        patch.setattr(framing, "read_data_frames", python_only)
        slow = read_all(data, cuts, fast=False, **kwargs)
    return fast, slow


MASKS = st.one_of(st.just(b"\x00\x00\x00\x00"), st.binary(min_size=4, max_size=4))


@st.composite
def frame_streams(draw: st.DrawFn) -> bytes:
    """Streams of frames that are mostly valid: the fast path's cases and its edges."""
    parts = []
    for _ in range(draw(st.integers(0, 8))):
        opcode = draw(st.sampled_from([OP_TEXT, OP_BINARY, OP_CONT, OP_PING, OP_PONG, OP_CLOSE, 0x3]))
        payload = draw(
            st.one_of(
                st.text(max_size=200).map(str.encode),
                st.binary(max_size=200),
                st.binary(min_size=126, max_size=300),
                st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82", b"ok\xed\xa0\x80"]),
            )
        )
        fin = draw(st.booleans()) if opcode in (OP_TEXT, OP_BINARY, OP_CONT) else True
        rsv = draw(st.sampled_from([0, 0, 0, 0x40, 0x20]))
        mask = draw(st.one_of(MASKS, st.none())) if draw(st.integers(0, 9)) == 0 else draw(MASKS)
        parts.append(frame(opcode, payload, fin=fin, rsv=rsv, mask=mask))
    return b"".join(parts)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(frame_streams(), st.lists(st.integers(0, 4000), max_size=4), st.sampled_from([16, 150, 1 << 16]))
def test_fast_and_python_paths_give_the_same_events_for_frame_streams(
    data: bytes, cuts: list[int], max_size: int
) -> None:
    cuts = [c % (len(data) + 1) for c in cuts]
    fast, slow = both_paths(data, cuts, max_size=max_size, masked=True, deflate=False)
    assert fast == slow


@settings(max_examples=300)
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=3), st.booleans(), st.booleans())
def test_fast_and_python_paths_give_the_same_events_for_any_bytes(
    data: bytes, cuts: list[int], masked: bool, deflate: bool
) -> None:
    cuts = [c % (len(data) + 1) for c in cuts]
    fast, slow = both_paths(data, cuts, max_size=4096, masked=masked, deflate=deflate)
    assert fast == slow


@given(st.sampled_from([OP_TEXT, OP_BINARY, OP_PING, OP_PONG, OP_CLOSE]), st.binary(max_size=70000), st.booleans())
@settings(max_examples=150)
def test_build_frame_matches_the_rfc_layout_byte_for_byte(opcode: int, payload: bytes, rsv1: bool) -> None:
    assert build_frame(opcode, payload, rsv1) == reference_frame(opcode, payload, rsv1)
    assert build_frame(opcode, bytearray(payload), rsv1) == reference_frame(opcode, payload, rsv1)


@given(st.text(max_size=2000), st.binary(min_size=4, max_size=4))
def test_a_server_frame_and_a_client_frame_carry_the_same_payload(text: str, mask: bytes) -> None:
    server = build_frame(OP_TEXT, text)
    client = framing.encode_frame(OP_TEXT, text.encode(), mask=mask)
    header = len(server) - len(text.encode())
    assert client[0] == server[0]
    assert apply_mask(client[header + 4 :], mask) == server[header:]
    assert MessageReader(max_message_size=1 << 20, masked=False).feed(server) == [(OP_TEXT, text)]
    assert MessageReader(max_message_size=1 << 20).feed(client) == [(OP_TEXT, text)]
