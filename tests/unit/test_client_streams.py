"""The client's per-room positions: every publication once, in offset order, across joins,
reconnects and gaps; and the reconnect backoff's full jitter."""

from __future__ import annotations

import random

import pytest

from hubbub.client import Backoff
from hubbub.client.streams import MAX_HELD, RoomStream


def pub(offset: int, room: str = "r") -> dict[str, object]:
    return {"type": "chat", "data": {"room": room, "n": offset}, "offset": offset}


def offsets(items: list[dict[str, object]]) -> list[object]:
    return [item["offset"] for item in items]


def joined(offset: int = 5, epoch: str = "e1") -> RoomStream:
    stream = RoomStream("r")
    stream.settle({"room": "r", "offset": offset, "epoch": epoch}, recovering=False)
    return stream


def test_first_join_delivers_what_was_held_after_its_position() -> None:
    stream = RoomStream("r")
    assert stream.live(pub(5), 5) == [] and stream.live(pub(6), 6) == []
    settled = stream.settle({"room": "r", "offset": 5, "epoch": "e1"}, recovering=False)
    assert offsets(settled.deliver) == [6] and settled.recovered is None
    assert (stream.offset, stream.since()) == (6, {"offset": 6, "epoch": "e1"})


def test_history_on_join_then_live_in_order_once() -> None:
    stream = RoomStream("r")
    stream.live(pub(10), 10)
    reply = {"room": "r", "offset": 10, "epoch": "e1", "recovered": True, "publications": [pub(9), pub(10)]}
    assert offsets(stream.settle(reply, recovering=False).deliver) == [9, 10]
    assert stream.live(pub(10), 10) == []
    assert offsets(stream.live(pub(11), 11) or []) == [11]


def test_a_gap_is_held_and_recovered_with_since() -> None:
    stream = joined(5)
    assert offsets(stream.live(pub(6), 6) or []) == [6]
    assert stream.live(pub(9), 9) is None  # 7 and 8 were dropped
    assert stream.since() == {"offset": 6, "epoch": "e1"} and stream.joining
    assert stream.live(pub(10), 10) == []
    reply = {"room": "r", "offset": 9, "epoch": "e1", "recovered": True, "publications": [pub(7), pub(8), pub(9)]}
    settled = stream.settle(reply, recovering=True)
    assert offsets(settled.deliver) == [7, 8, 9, 10] and settled.missed == 3 and settled.recovered is True
    assert stream.offset == 10 and not stream.joining


def test_not_recovered_skips_to_the_new_position() -> None:
    stream = joined(5)
    stream.live(pub(7), 7)
    settled = stream.settle({"room": "r", "offset": 40, "epoch": "e2", "recovered": False}, recovering=True)
    assert settled.recovered is False and settled.deliver == [] and stream.since() == {"offset": 40, "epoch": "e2"}


def test_held_past_a_missing_one_asks_for_another_recovery() -> None:
    stream = joined(5)
    stream.live(pub(8), 8)
    stream.held = [pub(9), pub(12)]  # 8, 10 and 11 fell off the held list
    settled = stream.settle(
        {"room": "r", "offset": 7, "epoch": "e1", "recovered": True, "publications": [pub(6), pub(7)]}, recovering=True
    )
    assert offsets(settled.deliver) == [6, 7]
    assert settled.gap and stream.joining and offsets(stream.held) == [9, 12] and stream.offset == 7


def test_held_list_is_bounded() -> None:
    stream = RoomStream("r")
    for offset in range(MAX_HELD + 5):
        stream.live(pub(offset), offset)
    assert len(stream.held) == MAX_HELD and offsets(stream.held)[0] == 5


def test_rooms_without_history_are_not_tracked() -> None:
    stream = RoomStream("r")
    stream.settle({"room": "r", "offset": 0, "epoch": ""}, recovering=False)
    assert stream.since() is None and stream.offset is None
    assert stream.live(pub(3), 3) == [pub(3)]


def test_backoff_full_jitter_stays_under_its_ceiling() -> None:
    backoff = Backoff(initial=0.5, maximum=4.0, factor=2.0)
    assert [backoff.ceiling(n) for n in (1, 2, 3, 4, 5, 1000)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    random.seed(7)
    delays = [backoff.delay(3) for _ in range(500)]
    assert all(0.0 <= d <= 2.0 for d in delays) and min(delays) < 0.2 and max(delays) > 1.8
    with pytest.raises(ValueError):
        Backoff(initial=0)
