"""The history conformance suite: every engine (memory, SQLite, Redis) must pass every case."""

from __future__ import annotations

import asyncio

import pytest

from hubbub.history.base import HistoryPolicy
from hubbub.history.store import Store
from tests.history.conftest import Engine, OpenStore

POLICY = HistoryPolicy(size=100, ttl=60)


def envelope(n: int) -> dict[str, object]:
    return {"type": "said", "data": {"n": n, "text": f"message {n} ✓"}}


async def publish(store: Store, room: str, count: int, policy: HistoryPolicy = POLICY, start: int = 1) -> list[int]:
    offsets = []
    for n in range(start, start + count):
        offsets.append((await store.history.append(room, envelope(n), policy)).offset)
    return offsets


async def test_offsets_grow_by_one_per_publication_and_rooms_are_apart(store: Store) -> None:
    assert await publish(store, "a", 5) == [1, 2, 3, 4, 5]
    assert await publish(store, "b", 2) == [1, 2]
    a = await store.history.read("a", POLICY)
    b = await store.history.read("b", POLICY)
    assert (a.offset, b.offset) == (5, 2)
    assert a.epoch and b.epoch and a.entries == []


async def test_the_epoch_is_stable_while_the_stream_lives(store: Store) -> None:
    before = await store.history.read("r", POLICY)
    appended = await store.history.append("r", envelope(1), POLICY)
    assert appended.epoch == before.epoch == (await store.history.read("r", POLICY)).epoch


async def test_last_n_returns_the_latest_oldest_first(store: Store) -> None:
    await publish(store, "r", 30)
    page = await store.history.read("r", POLICY, last=20)
    assert [e.offset for e in page.entries] == list(range(11, 31))
    assert page.entries[0].payload == envelope(11)
    assert page.complete and page.offset == 30
    whole = await store.history.read("r", POLICY, last=50)
    assert [e.offset for e in whole.entries] == list(range(1, 31)) and whole.complete


async def test_since_returns_everything_after_a_position_with_its_epoch(store: Store) -> None:
    await publish(store, "r", 10)
    epoch = (await store.history.read("r", POLICY)).epoch
    page = await store.history.read("r", POLICY, since=7, epoch=epoch)
    assert [e.offset for e in page.entries] == [8, 9, 10] and page.complete
    caught_up = await store.history.read("r", POLICY, since=10, epoch=epoch)
    assert caught_up.entries == [] and caught_up.complete


async def test_pages_walk_the_stream(store: Store) -> None:
    await publish(store, "r", 25)
    seen: list[int] = []
    since = 0
    while True:
        page = await store.history.read("r", POLICY, since=since, limit=10)
        assert page.complete
        if not page.entries:
            break
        seen += [e.offset for e in page.entries]
        since = page.entries[-1].offset
    assert seen == list(range(1, 26))


async def test_a_wrong_epoch_is_not_recovered(store: Store) -> None:
    await publish(store, "r", 3)
    page = await store.history.read("r", POLICY, since=1, epoch="not-the-epoch")
    assert not page.complete and page.entries == []


async def test_a_position_ahead_of_the_stream_is_not_recovered(store: Store) -> None:
    await publish(store, "r", 3)
    epoch = (await store.history.read("r", POLICY)).epoch
    assert not (await store.history.read("r", POLICY, since=4, epoch=epoch)).complete


async def test_size_trims_and_a_position_trimmed_past_is_not_recovered(store: Store) -> None:
    small = HistoryPolicy(size=5, ttl=60)
    await publish(store, "r", 12, small)
    epoch = (await store.history.read("r", small)).epoch
    kept = await store.history.read("r", small, since=7, epoch=epoch)  # 8..12: exactly what is kept
    assert [e.offset for e in kept.entries] == [8, 9, 10, 11, 12] and kept.complete
    lost = await store.history.read("r", small, since=6, epoch=epoch)  # 7 was trimmed
    assert not lost.complete and [e.offset for e in lost.entries] == [8, 9, 10, 11, 12]
    last = await store.history.read("r", small, last=10)
    assert [e.offset for e in last.entries] == [8, 9, 10, 11, 12] and not last.complete


async def test_publications_expire_after_the_ttl_and_an_expired_stream_gets_a_new_epoch(store: Store) -> None:
    short = HistoryPolicy(size=100, ttl=0.4)
    await publish(store, "r", 3, short)
    epoch = (await store.history.read("r", short)).epoch
    await asyncio.sleep(0.25)
    await publish(store, "r", 1, short, start=4)
    await asyncio.sleep(0.25)  # 1..3 are older than the TTL now, 4 is not
    page = await store.history.read("r", short, since=0, epoch=epoch)
    assert [e.offset for e in page.entries] == [4] and not page.complete
    assert (await store.history.read("r", short, since=3, epoch=epoch)).complete
    await asyncio.sleep(0.5)  # everything expired
    after = await store.history.append("r", envelope(5), short)
    assert after.epoch != epoch and after.offset == 1


async def test_an_idempotency_key_is_applied_once(store: Store) -> None:
    first = await store.history.append("r", envelope(1), POLICY, key="k-1")
    again = await store.history.append("r", envelope(1), POLICY, key="k-1")
    other = await store.history.append("r", envelope(2), POLICY, key="k-2")
    assert (first.offset, first.duplicate) == (1, False)
    assert (again.offset, again.duplicate, again.epoch) == (1, True, first.epoch)
    assert (other.offset, other.duplicate) == (2, False)
    page = await store.history.read("r", POLICY, last=10)
    assert [e.offset for e in page.entries] == [1, 2]


async def test_the_same_key_in_another_room_is_another_publication(store: Store) -> None:
    assert not (await store.history.append("a", envelope(1), POLICY, key="k")).duplicate
    assert not (await store.history.append("b", envelope(1), POLICY, key="k")).duplicate


async def test_concurrent_appends_get_distinct_consecutive_offsets(store: Store) -> None:
    results = await asyncio.gather(*(store.history.append("r", envelope(n), POLICY) for n in range(50)))
    assert sorted(r.offset for r in results) == list(range(1, 51))
    page = await store.history.read("r", POLICY, since=0)
    assert [e.offset for e in page.entries] == list(range(1, 51))


async def test_remove_starts_a_new_epoch(store: Store) -> None:
    await publish(store, "r", 3)
    epoch = (await store.history.read("r", POLICY)).epoch
    await store.history.remove("r")
    page = await store.history.read("r", POLICY, since=0, epoch=epoch)
    assert page.epoch != epoch and page.offset == 0 and not page.complete


async def test_bad_read_arguments_are_refused(store: Store) -> None:
    with pytest.raises(ValueError):
        await store.history.read("r", POLICY, since=1, last=1)
    with pytest.raises(ValueError):
        await store.history.read("r", POLICY, last=-1)


async def test_durable_engines_keep_streams_across_a_reopen(engine: Engine, open_store: OpenStore) -> None:
    if engine == "memory":
        pytest.skip("the memory engine lives and dies with its process")
    store = await open_store()
    assert store.history.durable
    await publish(store, "r", 4)
    await store.history.append("r", envelope(5), POLICY, key="k")
    epoch = (await store.history.read("r", POLICY)).epoch
    await store.close()
    reopened = await open_store()
    page = await reopened.history.read("r", POLICY, since=2, epoch=epoch)
    assert page.complete and page.epoch == epoch
    assert [e.payload for e in page.entries] == [envelope(3), envelope(4), envelope(5)]
    assert (await reopened.history.append("r", envelope(5), POLICY, key="k")).duplicate
    assert (await reopened.history.append("r", envelope(6), POLICY)).offset == 6
