"""DeviceSession: each offset reaches a connection once, and acks stop at the first offset it was not sent.

The connection here is a stand-in that records what was queued and can refuse (as the outbox does
under backpressure): the session's rules are about offsets, not sockets (the sockets are in
test_inbox_e2e.py)."""

from __future__ import annotations

from typing import Any

from hubbub.inbox.session import MAX_AHEAD, DeviceSession
from hubbub.inbox.wire import InboxEnvelope


class Outbox:
    """What a connection queued; `full` makes it refuse, as backpressure's "drop" policy does."""

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.full = False

    def send_nowait(self, message: InboxEnvelope) -> bool:
        if self.full:
            return False
        self.sent.append(message.inbox)
        return True


def message(offset: int) -> InboxEnvelope:
    return InboxEnvelope("n", None, inbox=offset)


def session() -> tuple[DeviceSession, Outbox]:
    outbox = Outbox()
    conn: Any = outbox
    return DeviceSession(conn, "phone"), outbox


def test_live_messages_wait_for_the_backlog_and_overlaps_are_sent_once() -> None:
    device, outbox = session()
    assert device.offer(message(3)) and device.offer(message(4))  # arrived while the backlog loads
    assert outbox.sent == [] and device.loading
    device.replay(2, [message(2), message(3)])
    assert outbox.sent == [2, 3, 4] and not device.loading
    assert device.acked_limit == 4
    assert device.offer(message(5)) and outbox.sent == [2, 3, 4, 5]
    assert not device.offer(message(3))  # a late live copy of what the backlog gave (another node's)
    assert outbox.sent == [2, 3, 4, 5]


def test_an_empty_backlog_starts_after_the_last_offset() -> None:
    device, outbox = session()
    device.offer(message(7))
    device.replay(8, [])  # the store's last offset is 7 and the cursor already at 7: 7 is not sent again
    assert outbox.sent == [] and device.acked_limit == 7


def test_out_of_order_offsets_raise_the_ack_limit_only_when_the_gap_fills() -> None:
    device, outbox = session()
    device.replay(1, [])
    device.offer(message(2))
    assert device.acked_limit == 0
    device.offer(message(1))
    assert device.acked_limit == 2 and outbox.sent == [2, 1]


def test_a_dropped_message_stops_the_ack_limit_before_it() -> None:
    device, outbox = session()
    device.replay(1, [message(1)])
    outbox.full = True
    assert not device.offer(message(2))
    outbox.full = False
    assert device.offer(message(3))
    assert device.acked_limit == 1  # 2 never reached the client: it comes again on the next connect


def test_too_many_offsets_ahead_of_a_gap_stop_the_ack_limit() -> None:
    device, _ = session()
    device.replay(1, [])
    for offset in range(2, MAX_AHEAD + 3):
        device.offer(message(offset))
    device.offer(message(1))
    assert device.acked_limit == 0
