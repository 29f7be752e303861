"""The timer sweep visits every connection once per tick, a bounded slice at a time."""

from __future__ import annotations

import asyncio
import itertools

from hubbub.transport import sweep
from hubbub.transport.sweep import Sweep

TICK = 0.06


async def visits_until(members: set[int], passes: int) -> tuple[list[tuple[int, float]], Sweep[int]]:
    """Run a sweep until it has made `passes` whole passes; return (member, time) per visit."""
    loop = asyncio.get_running_loop()
    seen: list[tuple[int, float]] = []
    done = loop.create_future()

    def visit(member: int, now: float) -> None:
        seen.append((member, now))
        if len(seen) >= passes * len(members) and not done.done():
            done.set_result(None)

    s = Sweep(loop, TICK, members, visit)
    s.start()
    await asyncio.wait_for(done, 5)
    s.stop()
    return seen, s


async def test_a_small_set_is_visited_whole_once_per_tick() -> None:
    members = set(range(10))
    seen, _ = await visits_until(members, 3)
    passes = [seen[i : i + 10] for i in range(0, 30, 10)]
    for one in passes:
        assert {m for m, _ in one} == members
        assert len({t for _, t in one}) == 1  # one slice: all in the same call
    starts = [one[0][1] for one in passes]
    assert all(b - a >= TICK * 0.9 for a, b in itertools.pairwise(starts))


async def test_a_big_set_is_cut_into_slices_spread_over_the_tick() -> None:
    members = set(range(sweep.SLICE * 3))
    seen, _ = await visits_until(members, 1)
    assert sorted(m for m, _ in seen) == sorted(members)  # each exactly once
    times = sorted({t for _, t in seen})
    assert len(times) == 3
    assert all(sum(1 for _, t in seen if t == at) == sweep.SLICE for at in times)
    assert all(b - a >= TICK / 3 * 0.9 for a, b in itertools.pairwise(times))


async def test_slices_never_exceed_the_cap() -> None:
    members = set(range(sweep.SLICE * sweep.MAX_SLICES * 2))
    loop = asyncio.get_running_loop()
    calls: dict[float, int] = {}
    first_pass = loop.create_future()

    def visit(member: int, now: float) -> None:
        calls[now] = calls.get(now, 0) + 1
        if sum(calls.values()) == len(members):
            first_pass.set_result(None)

    s = Sweep(loop, 0.01, members, visit)
    s.start()
    await asyncio.wait_for(first_pass, 10)
    s.stop()
    assert len(calls) == sweep.MAX_SLICES
    assert set(calls.values()) == {len(members) // sweep.MAX_SLICES}


async def test_members_joining_later_are_seen_on_the_next_pass_and_stop_ends_it() -> None:
    loop = asyncio.get_running_loop()
    members = {1}
    seen: list[int] = []
    got_new = loop.create_future()

    def visit(member: int, now: float) -> None:
        seen.append(member)
        members.add(2)
        if member == 2 and not got_new.done():
            got_new.set_result(None)

    s = Sweep(loop, 0.01, members, visit)
    s.start()
    s.start()  # idempotent
    await asyncio.wait_for(got_new, 5)
    s.stop()
    count = len(seen)
    stopped = loop.create_future()
    loop.call_later(0.05, stopped.set_result, None)
    await stopped
    assert len(seen) == count
