"""The scale-out measurements: fan-out across Redis-brokered nodes, echo on ``--workers``.

Each runs against a :class:`~bench.deploy.Deployment` (several processes)
rather than one peer, with the same load methods as the single-process
scenarios (:mod:`bench.measure`).
"""

from __future__ import annotations

from bench import measure, procfs
from bench.deploy import Deployment
from bench.settings import Settings


async def cross_node_fanout(dep: Deployment, s: Settings) -> dict[str, float]:
    """Fan-out bursts with the clients spread over the nodes, the publisher on the first.

    Server CPU is summed over the node processes; redis-server's is reported on its own.
    """
    result = await measure.fanout(dep.ports, dep.server_pids, s, helpers=dep.helper_pids)
    return result.metrics


async def workers_echo(dep: Deployment, s: Settings) -> dict[str, float]:
    """Pipelined echo on one port served by one or more worker processes.

    Also reports how the connections and the CPU spread over the workers, and fails
    the cell if some worker got no connection (SO_REUSEPORT did not spread them).
    """
    pids = dep.server_pids
    holders = [w.pid for w in dep.workers] or [server.pid for server in dep.servers]
    counts: dict[int, int] = {}

    def count_connections() -> None:
        counts.update(procfs.sockets_by_pid(dep.ports[0], holders))

    result = await measure.echo(dep.ports[0], pids, s, helpers=dep.helper_pids, while_open=count_connections)
    if sum(counts.values()) != s.echo_connections:
        raise RuntimeError(f"found {sum(counts.values())} of {s.echo_connections} connections on the workers")
    idle = [pid for pid, n in counts.items() if n == 0]
    if idle:
        raise RuntimeError(f"worker(s) {idle} got no connection: {counts}")
    wall = result.end.wall - result.start.wall
    cpu = [100 * (result.end.each[pids.index(p)] - result.start.each[pids.index(p)]) / wall for p in holders]
    return {
        **result.metrics,
        "worker_conns_min": float(min(counts.values())),
        "worker_cpu_min_pct": min(cpu),
    }
