"""Redis's own CPU per connection's membership: one Redis beside a Redis Cluster of 3 masters.

``--nodes`` Redis broker nodes run in this process (as the workers of a deployment would, each
with its own node id). Together they open ``--connections`` connections, each of its own user;
each joins two of ``--rooms`` rooms, leaves one, and closes: register, 2 joins, a leave and an
unregister, ``--concurrency`` at a time. The redis-server processes' CPU (utime + stime, from
/proc) divided by the connections is what one connection's bookkeeping costs Redis; on the
cluster the busiest master's share of it says whether that work spreads over the masters (the
membership sharded by node, room and user) or falls on one (docs/benchmarks.md).

    python -m bench.membership_cost [--connections 20000] [--nodes 6] [--rooms 500] [--concurrency 500]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from dataclasses import dataclass

from bench.procs import cpu_seconds
from bench.redis_cost import Silent, on_each_redis
from hubbub.broker.base import Member
from hubbub.broker.redis import RedisBroker


@dataclass
class Cost:
    """One measurement."""

    setup: str
    connections: int
    seconds: float
    redis_cpu_s: list[float]

    def line(self) -> str:
        """A table row."""
        total = sum(self.redis_cpu_s)
        return (
            f"| {self.setup} | {self.connections:,} | {self.connections / self.seconds:,.0f} | "
            f"{1e6 * total / self.connections:.1f} | {100 * max(self.redis_cpu_s) / max(total, 1e-9):.0f} |"
        )


async def lifecycle(node: RedisBroker, member: Member, rooms: tuple[str, str]) -> None:
    """One connection: open, join two rooms, leave one, close."""
    await node.register(member)
    for room in rooms:
        await node.join(room, member)
    await node.leave(rooms[1], member)
    await node.unregister(member, [rooms[0]])


async def measure(setup: str, url: str, redis_pids: list[int], args: argparse.Namespace) -> Cost:
    """Run ``args.connections`` lifecycles over ``args.nodes`` nodes sharing the Redis at ``url``."""
    namespace = f"mc{uuid.uuid4().hex[:6]}"
    nodes = [RedisBroker(url, namespace=namespace, presence_grace=0) for _ in range(args.nodes)]
    for node in nodes:
        await node.start(Silent())
    try:
        before = [cpu_seconds(pid) for pid in redis_pids]
        started = time.perf_counter()
        for first in range(0, args.connections, args.concurrency):
            batch = range(first, min(first + args.concurrency, args.connections))
            await asyncio.gather(
                *(
                    lifecycle(
                        nodes[i % len(nodes)],
                        Member(f"c{i}", nodes[i % len(nodes)].node_id, f"user-{i}"),
                        (f"room-{i % args.rooms}", f"room-{(i * 7 + 1) % args.rooms}"),
                    )
                    for i in batch
                )
            )
        seconds = time.perf_counter() - started
        used = [cpu_seconds(pid) - was for pid, was in zip(redis_pids, before, strict=True)]
        return Cost(setup, args.connections, seconds, used)
    finally:
        for node in nodes:
            await node.stop()


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=20_000)
    parser.add_argument("--nodes", type=int, default=6)
    parser.add_argument("--rooms", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    costs = asyncio.run(on_each_redis(measure, args))
    print("| setup | connections | connections/s | Redis CPU µs/connection | busiest redis-server % of it |")
    print("|---|---:|---:|---:|---:|")
    for cost in costs:
        print(cost.line())


if __name__ == "__main__":
    main()
