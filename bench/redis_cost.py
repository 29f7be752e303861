"""Redis's own CPU per room publication: one Redis beside a Redis Cluster of 3 masters.

Two Redis broker nodes run in this process: node B has one member in each of ``--rooms``
rooms (so it subscribes to every room's channel), node A publishes ``--publications``
room publications, ``--concurrency`` at a time, spread round-robin over the rooms. Once B
has received every one, the redis-server processes' CPU (utime + stime, from /proc) is
divided by the count: what one publication costs Redis, the figure that sizes Redis shards
(docs/benchmarks.md, "From these figures to 1,000,000 connections"). On the cluster the
rooms' channels hash to every master; the busiest master's share is reported too. Node A
sends a batch only once B has every publication of the batch before it: both nodes share this
process's loop, and a subscriber left more than ``publish_timeout`` behind drops what is stale.

    python -m bench.redis_cost [--publications 100000] [--rooms 300] [--concurrency 200]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from bench.procs import cpu_seconds
from hubbub.broker.base import Member, Publication
from hubbub.broker.redis import RedisBroker
from hubbub.testing import RedisClusterServer, RedisServer

T = TypeVar("T")


class Counting:
    """Node B's listener: counts the publications it is handed."""

    def __init__(self) -> None:
        self.received = 0
        self._target = 0
        self._reached = asyncio.Event()

    def deliver(self, publication: Publication) -> None:
        self.received += 1
        if self.received >= self._target:
            self._reached.set()

    async def reach(self, count: int, timeout: float) -> None:
        """Wait until ``count`` publications were received."""
        self._target = count
        self._reached.clear()
        if self.received < count:
            try:
                await asyncio.wait_for(self._reached.wait(), timeout)
            except TimeoutError:
                raise RuntimeError(f"{self.received} of {count} received") from None

    def user_online(self, user_id: str) -> None:
        """Presence is not measured here."""

    def user_offline(self, user_id: str) -> None:
        """Presence is not measured here."""

    def drain_dropped(self) -> int:
        """No connection here drops anything."""
        return 0


class Silent(Counting):
    """Node A's listener: it publishes and expects nothing."""


@dataclass
class Cost:
    """One measurement."""

    setup: str
    publications: int
    seconds: float
    redis_cpu_s: float
    busiest_share: float

    def line(self) -> str:
        """A table row."""
        return (
            f"| {self.setup} | {self.publications:,} | {self.publications / self.seconds:,.0f} | "
            f"{1e6 * self.redis_cpu_s / self.publications:.1f} | {100 * self.busiest_share:.0f} |"
        )


async def measure(setup: str, url: str, redis_pids: list[int], args: argparse.Namespace) -> Cost:
    """Publish ``args.publications`` from node A to node B's rooms through the Redis at ``url``."""
    namespace = f"cost{uuid.uuid4().hex[:6]}"
    sink = Counting()
    a, b = RedisBroker(url, namespace=namespace), RedisBroker(url, namespace=namespace)
    await a.start(Silent())
    await b.start(sink)
    try:
        rooms = [f"room-{i}" for i in range(args.rooms)]
        for i, room in enumerate(rooms):
            member = Member(f"c{i}", b.node_id)
            await b.register(member)
            await b.join(room, member)
        await asyncio.sleep(0.5)  # the subscriptions settle
        before = [cpu_seconds(pid) for pid in redis_pids]
        started = time.perf_counter()
        payload = "x" * args.size
        for first in range(0, args.publications, args.concurrency):
            batch = range(first, min(first + args.concurrency, args.publications))
            await sink.reach(first - args.concurrency, 30)
            await asyncio.gather(
                *(a.publish(Publication(kind="room", target=rooms[i % len(rooms)], data=payload)) for i in batch)
            )
        await sink.reach(args.publications, 30)
        seconds = time.perf_counter() - started
        used = [cpu_seconds(pid) - was for pid, was in zip(redis_pids, before, strict=True)]
        return Cost(setup, args.publications, seconds, sum(used), max(used) / max(sum(used), 1e-9))
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}; lost by A {a.lost_publications}, stale at B {b.stale_publications}") from None
    finally:
        await a.stop()
        await b.stop()


Measure = Callable[[str, str, list[int], argparse.Namespace], Awaitable[T]]


async def on_each_redis(measure: Measure[T], args: argparse.Namespace) -> list[T]:
    """Run ``measure(setup, url, redis_pids, args)`` on one Redis, then on a Redis Cluster of 3 masters (no
    replica), ``args.rounds`` times each."""
    results = []
    with RedisServer() as single:
        assert single.process is not None
        for _ in range(args.rounds):
            results.append(await measure("1 Redis", single.url, [single.process.pid], args))
    with RedisClusterServer(masters=3, replicas=0) as cluster:
        pids = [node.process.pid for node in cluster.nodes if node.process is not None]
        for _ in range(args.rounds):
            results.append(await measure("Redis Cluster, 3 masters", cluster.url, pids, args))
    return results


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--publications", type=int, default=100_000)
    parser.add_argument("--rooms", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--size", type=int, default=64, help="payload bytes")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    costs = asyncio.run(on_each_redis(measure, args))
    print("| setup | publications | publications/s | Redis CPU µs/publication | busiest redis-server % of it |")
    print("|---|---:|---:|---:|---:|")
    for cost in costs:
        print(cost.line())


if __name__ == "__main__":
    main()
