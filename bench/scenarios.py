"""The three measurements, each run against one started peer.

A scenario returns a flat ``{metric key: value}`` dict; :data:`SCENARIOS`
declares each scenario's metrics so the report can label and compare them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bench import loadgen, wsframe
from bench.peers import Peer
from bench.procs import CpuSnapshot, Server, rss_kib
from bench.settings import Settings

_TEXT = b"hubbub-bench-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def text_payload(size: int, tag: str = "") -> bytes:
    """An ASCII payload of exactly ``size`` bytes, starting with ``tag``."""
    return (tag.encode() + _TEXT * (size // len(_TEXT) + 1))[:size]


@dataclass(frozen=True)
class Metric:
    """One reported number of a scenario."""

    key: str
    label: str
    higher_is_better: bool
    fmt: str = ",.0f"
    compare: bool = True
    """Report a ratio against the reference peer."""
    total: bool = False
    """Aggregate as a sum over rounds (counts such as losses) instead of a median."""


@dataclass(frozen=True)
class Scenario:
    """A named measurement and the metrics it produces."""

    name: str
    title: str
    description: str
    metrics: tuple[Metric, ...]
    run: Callable[[Server, Peer, Settings], Awaitable[dict[str, float]]]

    @property
    def primary(self) -> Metric:
        """The headline metric."""
        return self.metrics[0]


# --------------------------------------------------------------------- echo


async def echo(server: Server, peer: Peer, s: Settings) -> dict[str, float]:
    """Pipelined echo: round trips/s over a fixed window after a warm-up."""
    tally = loadgen.Tally()
    payload = text_payload(s.echo_size)
    frame = wsframe.client_frame(payload)
    clients: list[loadgen.EchoClient] | list[loadgen.RawEchoClient]
    if peer.raw_tcp:
        clients = await loadgen.open_many(
            lambda: loadgen.RawEchoClient(frame, s.echo_depth, tally),
            server.port, s.echo_connections, s.connect_concurrency,
        )  # fmt: skip
    else:
        clients = await loadgen.open_many(
            lambda: loadgen.EchoClient(server.port, "/echo", frame, s.echo_depth, tally),
            server.port, s.echo_connections, s.connect_concurrency,
        )  # fmt: skip
    try:
        for c in clients:
            c.start()
        await asyncio.sleep(s.echo_warmup)
        n0, cpu0 = tally.count, CpuSnapshot.take(server.pid)
        await asyncio.sleep(s.echo_window)
        n1, cpu1 = tally.count, CpuSnapshot.take(server.pid)
    finally:
        for c in clients:
            c.running = False
        loadgen.close_all(clients)
    if not peer.raw_tcp:
        got = sum(c.counter.payload_bytes for c in clients if isinstance(c, loadgen.EchoClient) and c.counter)
        if got != tally.count * len(payload):
            raise RuntimeError(f"echo returned {got} payload bytes for {tally.count} messages")
    return {"round_trips_per_s": (n1 - n0) / (cpu1.wall - cpu0.wall), **cpu1.usage_since(cpu0)}


# ------------------------------------------------------------------- fan-out


async def _sync_fanout(pub: loadgen.FanoutClient, clients: list[loadgen.FanoutClient]) -> None:
    """Publish probes until every client has one (all registered), then zero counts."""
    probe = wsframe.client_frame(b"probe")
    deadline = time.monotonic() + 15
    while any(c.received == 0 for c in clients):
        if time.monotonic() > deadline:
            missing = sum(c.received == 0 for c in clients)
            raise RuntimeError(f"{missing} /fanout clients never received a probe")
        pub.transport.write(probe)
        await asyncio.sleep(0.2)
    await _quiet(clients, 0.3)
    for c in clients:
        c.received = 0


async def _quiet(clients: list[loadgen.FanoutClient], period: float) -> None:
    """Wait until no client receives anything for ``period`` seconds."""
    last = -1
    while (total := sum(c.received for c in clients)) != last:
        last = total
        await asyncio.sleep(period)


async def _await_burst(
    barrier: loadgen.Barrier, clients: list[loadgen.FanoutClient], stall: float
) -> bool:
    """Wait for the barrier; False if deliveries stop for ``stall`` seconds first."""
    last = -1
    while True:
        try:
            await asyncio.wait_for(asyncio.shield(barrier.done), stall)
            return True
        except TimeoutError:
            total = sum(c.received for c in clients)
            if total == last:
                return False
            last = total


async def fanout(server: Server, peer: Peer, s: Settings) -> dict[str, float]:
    """Bursts from one publisher to every /fanout client: rate, CPU cost, losses."""
    barrier = loadgen.Barrier()
    clients = await loadgen.open_many(
        lambda: loadgen.FanoutClient(server.port, "/fanout", barrier),
        server.port, s.fanout_clients, s.connect_concurrency,
    )  # fmt: skip
    pub = clients[0]
    burst = b"".join(
        wsframe.client_frame(text_payload(s.fanout_size, f"{i:06d}:")) for i in range(s.fanout_burst)
    )
    try:
        await _sync_fanout(pub, clients)
        expected = 0
        timed = 0.0
        completed = 0
        cpu0 = cpu1 = CpuSnapshot.take(server.pid)
        loop = asyncio.get_running_loop()
        for k in range(s.fanout_warmup_bursts + s.fanout_bursts):
            if k == s.fanout_warmup_bursts:
                cpu0 = CpuSnapshot.take(server.pid)
            expected += s.fanout_burst
            barrier.reset(expected, clients)
            t0 = loop.time()
            pub.transport.write(burst)
            if not await _await_burst(barrier, clients, s.fanout_stall):
                break
            if k >= s.fanout_warmup_bursts:
                timed += barrier.done_at - t0
                completed += 1
        cpu1 = CpuSnapshot.take(server.pid)
        if completed < s.fanout_bursts:
            await _quiet(clients, 0.5)
        lost = sum(max(0, expected - c.received) for c in clients)
        extra = sum(max(0, c.received - expected) for c in clients)
    finally:
        loadgen.close_all(clients)
    deliveries = completed * s.fanout_burst * len(clients)
    nan = float("nan")
    return {
        "deliveries_per_s": deliveries / timed if timed else nan,
        "cpu_us_per_delivery": 1e6 * (cpu1.server - cpu0.server) / deliveries if deliveries else nan,
        "lost": float(lost),
        "duplicated": float(extra),
        **(cpu1.usage_since(cpu0) if cpu1.wall > cpu0.wall else {}),
    }


# --------------------------------------------------------------- idle memory


async def _warm_echo(server: Server, s: Settings, n: int = 16) -> None:
    """Exercise /echo once on a few connections so lazy imports are paid up front."""
    tally = loadgen.Tally()
    frame = wsframe.client_frame(text_payload(s.echo_size))
    clients = await loadgen.open_many(
        lambda: loadgen.EchoClient(server.port, "/echo", frame, 1, tally), server.port, n
    )
    try:
        for c in clients:
            c.running = False
            c.transport.write(frame)
        deadline = time.monotonic() + 5
        while tally.count < n and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if tally.count < n:
            raise RuntimeError(f"/echo warm-up: {tally.count}/{n} echoes came back")
    finally:
        loadgen.close_all(clients)


async def _settled_rss(pid: int, max_wait: float, step: float = 0.25) -> int:
    """VmRSS once two samples ``step`` apart differ by at most 64 KiB (or at max_wait)."""
    deadline = time.monotonic() + max_wait
    last = rss_kib(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(step)
        now = rss_kib(pid)
        if abs(now - last) <= 64:
            return now
        last = now
    return last


async def idle(server: Server, peer: Peer, s: Settings) -> dict[str, float]:
    """RSS growth per idle, upgraded /echo connection."""
    await _warm_echo(server, s)
    await asyncio.sleep(0.5)
    before = rss_kib(server.pid)
    t0 = time.perf_counter()
    clients = await loadgen.open_many(
        lambda: loadgen.WsClient(server.port, "/echo"),
        server.port, s.idle_connections, s.connect_concurrency,
    )  # fmt: skip
    connect_s = time.perf_counter() - t0
    try:
        after = await _settled_rss(server.pid, s.idle_settle_max)
    finally:
        loadgen.close_all(clients)
    return {
        "kib_per_connection": (after - before) / len(clients),
        "handshakes_per_s": len(clients) / connect_s,
        "rss_before_mib": before / 1024,
        "rss_after_mib": after / 1024,
    }


# ------------------------------------------------------------------ registry

_SERVER_CPU = Metric("server_cpu_pct", "server CPU %", False, ".0f", compare=False)
_GEN_CPU = Metric("loadgen_cpu_pct", "loadgen CPU %", False, ".0f", compare=False)
_OTHER_CPU = Metric("other_cpu_pct", "other CPU %", False, ".0f", compare=False)

SCENARIOS: dict[str, Scenario] = {
    sc.name: sc
    for sc in (
        Scenario(
            "echo",
            "Echo throughput",
            "{echo_connections} connections x {echo_depth} pipelined {echo_size}-byte text "
            "messages; round trips/s over {echo_window:g} s after {echo_warmup:g} s warm-up. "
            "raw_tcp is a plain TCP echo of the same frames: the load generator's ceiling.",
            (
                Metric("round_trips_per_s", "round trips/s", True),
                _SERVER_CPU,
                _GEN_CPU,
                _OTHER_CPU,
            ),
            echo,
        ),
        Scenario(
            "fanout",
            "Fan-out",
            "{fanout_clients} connections on /fanout, one of which publishes; "
            "{fanout_bursts} timed bursts of {fanout_burst} {fanout_size}-byte messages after "
            "{fanout_warmup_bursts} warm-up burst, each burst drained before the next. "
            "CPU = server utime+stime per delivery; lost = messages some client never got.",
            (
                Metric("deliveries_per_s", "deliveries/s", True),
                Metric("cpu_us_per_delivery", "server CPU µs/delivery", False, ".2f"),
                Metric("lost", "lost", False, ",.0f", compare=False, total=True),
                _SERVER_CPU,
                _GEN_CPU,
                _OTHER_CPU,
            ),
            fanout,
        ),
        Scenario(
            "idle",
            "Idle memory",
            "{idle_connections} idle upgraded /echo connections; server VmRSS growth per "
            "connection once settled (after a small /echo warm-up); handshakes/s while opening "
            "them {connect_concurrency} at a time.",
            (
                Metric("kib_per_connection", "KiB/connection", False, ".1f"),
                Metric("handshakes_per_s", "handshakes/s", True),
            ),
            idle,
        ),
    )
}
