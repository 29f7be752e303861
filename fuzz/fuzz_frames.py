"""Fuzz the frame reader: any bytes, in any chunking, with and without permessage-deflate.

Differential: the reader with the C fast path (`read_data_frames`) and the reader with the
fast path switched off (every frame parsed in Python) must give the same events. A protocol
error must be a FAIL event, never an exception; nothing after a FAIL.
"""

from __future__ import annotations

from typing import Any

from fuzz.runner import fuzz, instrumented

with instrumented():
    from hubbub.transport import framing
    from hubbub.transport._speedups import read_data_frames as _FAST
    from hubbub.transport.deflate import DeflateParams, Inflater
    from hubbub.transport.framing import FAIL, MessageReader


def _no_fast_path(data: bytes, pos: int, max_size: int, masked: bool, events: list[Any]) -> int:
    return pos


def _read(data: bytes, cuts: list[int], *, max_size: int, masked: bool, deflate: bool, fast: bool) -> list[Any]:
    inflater = Inflater(DeflateParams(client_no_context_takeover=True)) if deflate else None
    reader = MessageReader(max_message_size=max_size, masked=masked, inflater=inflater)
    setattr(framing, "read_data_frames", _FAST if fast else _no_fast_path)  # noqa: B010
    try:
        events: list[Any] = []
        start = 0
        for cut in [*cuts, len(data)]:
            events.extend(reader.feed(data[start:cut]))
            start = cut
        return events
    finally:
        setattr(framing, "read_data_frames", _FAST)  # noqa: B010


def test_one_input(data: bytes) -> None:
    if len(data) < 3:
        return
    flags, cut_seed, size_seed = data[0], data[1], data[2]
    body = data[3:]
    masked = not flags & 1
    deflate = bool(flags & 2)
    max_size = 1 << 16 if flags & 4 else 1 + size_seed * 4
    cuts = sorted({(cut_seed * (i + 1) * 7) % (len(body) + 1) for i in range(flags >> 5)})
    fast = _read(body, cuts, max_size=max_size, masked=masked, deflate=deflate, fast=True)
    slow = _read(body, cuts, max_size=max_size, masked=masked, deflate=deflate, fast=False)
    if fast != slow:
        raise AssertionError(f"C and Python readers disagree: {fast!r} != {slow!r}")
    for index, event in enumerate(fast):
        if event[0] == FAIL and index != len(fast) - 1:
            raise AssertionError("events after a FAIL")


if __name__ == "__main__":
    fuzz(test_one_input)
