"""Micro-benchmark of RFC 6455 parsing candidates, in-process, no sockets.

Feeds batches of 16 masked 64-byte text frames (what one read holds under the
echo load) to each parser and reports frames parsed per second, plus the cost
of building one unmasked 64-byte server frame. Run: python -m bench.framing_candidates
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side, State

from hubbub.transport.framing import OP_TEXT, MessageReader, encode_frame

BATCH = 16
ROUNDS = 20_000
PAYLOAD = b"x" * 64


def _client_frames() -> bytes:
    return b"".join(encode_frame(OP_TEXT, PAYLOAD, mask=os.urandom(4)) for _ in range(BATCH))


def parse_hubbub(data: bytes) -> Callable[[], int]:
    reader = MessageReader(max_message_size=1 << 20)

    def run() -> int:
        return len(reader.feed(data))

    return run


def parse_websockets(data: bytes) -> Callable[[], int]:
    proto = Protocol(Side.SERVER, state=State.OPEN, max_size=1 << 20)

    def run() -> int:
        proto.receive_data(data)
        return len(proto.events_received())

    return run


def build_hubbub() -> Callable[[], int]:
    def run() -> int:
        return len(encode_frame(OP_TEXT, PAYLOAD))

    return run


def build_websockets() -> Callable[[], int]:
    def run() -> int:
        return len(Frame(Opcode.TEXT, PAYLOAD).serialize(mask=False))

    return run


def _rate(fn: Callable[[], int], items_per_call: int) -> float:
    assert fn() == items_per_call or items_per_call == 1
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(ROUNDS):
            fn()
        best = max(best, ROUNDS * items_per_call / (time.perf_counter() - start))
    return best


def main() -> None:
    """Print frames/s for each candidate."""
    data = _client_frames()
    rows = [
        ("parse: hubbub MessageReader", _rate(parse_hubbub(data), BATCH)),
        ("parse: websockets Protocol (sans-I/O)", _rate(parse_websockets(data), BATCH)),
        ("build: hubbub encode_frame", _rate(build_hubbub(), 1)),
        ("build: websockets Frame.serialize", _rate(build_websockets(), 1)),
    ]
    for name, rate in rows:
        print(f"{name:46s} {rate / 1e6:6.2f} M frames/s  ({1e6 / rate:.2f} µs/frame)")


if __name__ == "__main__":
    main()
