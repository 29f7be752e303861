"""The inbox conformance suite: every engine (memory, SQLite, Redis) must pass every case."""

from __future__ import annotations

import asyncio

from tests.inbox.conftest import Clock, StoreFactory


def bodies(backlog_messages: list) -> list[tuple[int, bytes]]:  # type: ignore[type-arg]
    return [(m.offset, m.body) for m in backlog_messages]


async def test_offsets_grow_by_one_per_user(open_store: StoreFactory) -> None:
    store = await open_store()
    assert await store.last("alice") == 0
    assert [await store.append("alice", b"a%d" % i) for i in range(3)] == [1, 2, 3]
    assert await store.append("bob", b"b") == 1
    assert await store.last("alice") == 3 and await store.last("bob") == 1


async def test_appends_of_one_iteration_get_offsets_in_call_order(open_store: StoreFactory) -> None:
    store = await open_store(size=500)
    offsets = await asyncio.gather(*(store.append("alice", b"%d" % i) for i in range(200)))
    assert offsets == list(range(1, 201))
    backlog = await store.backlog("alice", "phone")
    assert bodies(backlog.messages) == [(i + 1, b"%d" % i) for i in range(200)]


async def test_a_new_device_gets_every_retained_message_in_order(open_store: StoreFactory) -> None:
    store = await open_store()
    for i in range(5):
        await store.append("alice", b'{"n": %d}' % i)
    await store.append("bob", b"not alice's")
    backlog = await store.backlog("alice", "phone")
    assert bodies(backlog.messages) == [(i + 1, b'{"n": %d}' % i) for i in range(5)]
    assert backlog.last == 5 and backlog.missed == 0
    assert await store.cursor("alice", "phone") == 0


async def test_a_new_device_of_an_empty_inbox_starts_at_the_end(open_store: StoreFactory) -> None:
    store = await open_store()
    backlog = await store.backlog("carol", "phone")
    assert backlog.messages == [] and backlog.last == 0 and backlog.missed == 0
    assert await store.cursor("carol", "phone") == 0
    assert await store.cursor("carol", "laptop") is None


async def test_an_ack_moves_the_cursor_of_that_device_only_and_never_back(open_store: StoreFactory) -> None:
    store = await open_store()
    for i in range(4):
        await store.append("alice", b"%d" % i)
    await store.backlog("alice", "phone")
    await store.backlog("alice", "laptop")
    assert await store.ack("alice", "phone", 3) == 3
    assert [m.offset for m in (await store.backlog("alice", "phone")).messages] == [4]
    assert [m.offset for m in (await store.backlog("alice", "laptop")).messages] == [1, 2, 3, 4]
    assert await store.ack("alice", "phone", 1) == 3  # an older ack changes nothing
    assert await store.cursor("alice", "phone") == 3
    assert await store.ack("alice", "phone", 4) == 4
    assert (await store.backlog("alice", "phone")).messages == []


async def test_the_size_bound_drops_the_oldest_and_reports_them_missed(open_store: StoreFactory) -> None:
    store = await open_store(size=3)
    await store.backlog("alice", "phone")  # a known device, cursor 0
    for i in range(4):
        await store.append("alice", b"%d" % i)
    behind = await store.backlog("alice", "phone")
    assert [m.offset for m in behind.messages] == [2, 3, 4]
    assert behind.missed == 1 and behind.last == 4
    fresh = await store.backlog("alice", "laptop")  # a new device is told of nothing missed
    assert [m.offset for m in fresh.messages] == [2, 3, 4] and fresh.missed == 0


async def test_exactly_size_messages_are_all_kept(open_store: StoreFactory) -> None:
    store = await open_store(size=3)
    await store.backlog("alice", "phone")
    for i in range(3):
        await store.append("alice", b"%d" % i)
    backlog = await store.backlog("alice", "phone")
    assert [m.offset for m in backlog.messages] == [1, 2, 3] and backlog.missed == 0


async def test_messages_expire_after_the_ttl(open_store: StoreFactory, clock: Clock) -> None:
    store = await open_store(ttl=100)
    await store.backlog("alice", "phone")
    await store.append("alice", b"old")
    clock.advance(60)
    await store.append("alice", b"new")
    clock.advance(39)  # "old" is 99 s old: still kept
    assert [m.body for m in (await store.backlog("alice", "phone")).messages] == [b"old", b"new"]
    clock.advance(2)  # "old" is 101 s old
    backlog = await store.backlog("alice", "phone")
    assert bodies(backlog.messages) == [(2, b"new")] and backlog.missed == 1
    clock.advance(99)  # "new" expired; the cursor (seen 99 s ago) is still kept
    backlog = await store.backlog("alice", "phone")
    assert backlog.messages == [] and backlog.missed == 2 and backlog.last == 2


async def test_offsets_are_not_reused_after_everything_expired(open_store: StoreFactory, clock: Clock) -> None:
    store = await open_store(ttl=10)
    await store.append("alice", b"1")
    await store.append("alice", b"2")
    clock.advance(1000)
    assert await store.append("alice", b"3") == 3
    fresh = await store.backlog("alice", "tablet")
    assert bodies(fresh.messages) == [(3, b"3")] and fresh.missed == 0


async def test_a_device_cursor_is_forgotten_after_the_ttl_without_activity(
    open_store: StoreFactory, clock: Clock
) -> None:
    store = await open_store(ttl=100)
    await store.append("alice", b"1")
    await store.backlog("alice", "phone")
    await store.backlog("alice", "laptop")
    clock.advance(90)
    await store.ack("alice", "laptop", 1)  # an ack counts as activity
    clock.advance(20)
    assert await store.cursor("alice", "phone") is None
    assert await store.cursor("alice", "laptop") == 1


async def test_the_least_recently_seen_device_is_forgotten_beyond_max_devices(
    open_store: StoreFactory, clock: Clock
) -> None:
    store = await open_store(max_devices=2)
    await store.append("alice", b"1")
    await store.backlog("alice", "a")
    clock.advance(1)
    await store.backlog("alice", "b")
    clock.advance(1)
    await store.ack("alice", "a", 1)  # "a" is now the most recently seen
    clock.advance(1)
    await store.backlog("alice", "b")  # a known device: nobody is forgotten
    assert await store.cursor("alice", "a") == 1 and await store.cursor("alice", "b") == 0
    clock.advance(1)
    await store.backlog("alice", "c")  # a third device: "a" (seen before "b" was) is forgotten
    kept = {device: await store.cursor("alice", device) for device in ("a", "b", "c")}
    assert kept == {"a": None, "b": 0, "c": 0}


async def test_an_inbox_survives_reopening_the_store(open_store: StoreFactory) -> None:
    first = await open_store()
    await first.append("alice", b"kept")
    await first.backlog("alice", "phone")
    await first.append("alice", b"also kept")
    await first.ack("alice", "phone", 1)
    await first.close()
    second = await open_store()
    backlog = await second.backlog("alice", "phone")
    assert bodies(backlog.messages) == [(2, b"also kept")]
    assert await second.append("alice", b"next") == 3


async def test_bodies_are_kept_byte_for_byte(open_store: StoreFactory) -> None:
    store = await open_store()
    body = '{"text": "héllo: a:b:c \\u0000 ✓"}'.encode()
    await store.append("user:with:colons", body)
    backlog = await store.backlog("user:with:colons", "dev:1")
    assert bodies(backlog.messages) == [(1, body)]
