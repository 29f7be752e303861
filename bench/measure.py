"""The load methods shared by scenarios: pipelined echo, fan-out bursts, one-at-a-time latency.

Both take the ports clients connect to and the PIDs whose CPU counts as server
CPU, so the same method measures one peer process, cluster nodes, or a
supervisor and its workers. Each returns its metrics with the CPU snapshots
that bound the measured window. ``wire`` says whether the peer is spoken to
in plain WebSocket messages or in Socket.IO events (:mod:`bench.wire`).
"""

from __future__ import annotations

import asyncio
import functools
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench import loadgen, wsframe
from bench.procs import CpuSnapshot, rss_kib
from bench.settings import Settings
from bench.wire import PLAIN, Wire

_TEXT = b"hubbub-bench-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def text_payload(size: int, tag: str = "") -> bytes:
    """An ASCII payload of exactly ``size`` bytes, starting with ``tag``."""
    return (tag.encode() + _TEXT * (size // len(_TEXT) + 1))[:size]


@dataclass
class Measured:
    """A method's metrics and the CPU snapshots at the start and end of its timed window."""

    metrics: dict[str, float]
    start: CpuSnapshot
    end: CpuSnapshot


def spread(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` counts differing by at most one, largest first."""
    return [total // parts + (i < total % parts) for i in range(parts)]


async def settled_rss(pid: int, max_wait: float, step: float = 0.25) -> int:
    """VmRSS of ``pid`` once two samples ``step`` apart differ by at most 64 KiB (or at max_wait), in KiB."""
    deadline = time.monotonic() + max_wait
    last = rss_kib(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(step)
        now = rss_kib(pid)
        if abs(now - last) <= 64:
            return now
        last = now
    return last


# --------------------------------------------------------------------- echo


async def echo(
    port: int,
    server_pids: Sequence[int],
    s: Settings,
    *,
    raw_tcp: bool = False,
    helpers: Sequence[int] = (),
    while_open: Callable[[], None] | None = None,
    wire: Wire = PLAIN,
) -> Measured:
    """Pipelined echo on ``port``: round trips/s over a fixed window after a warm-up.

    ``while_open`` is called once after the window, every connection still open.
    """
    tally = loadgen.Tally()
    payload = wire.message("echo", text_payload(s.echo_size))
    frame = wsframe.client_frame(payload)
    clients: list[loadgen.EchoClient] | list[loadgen.RawEchoClient]
    if raw_tcp:
        clients = await loadgen.open_many(
            lambda: loadgen.RawEchoClient(frame, s.echo_depth, tally), port, s.echo_connections, s.connect_concurrency
        )
    else:
        clients = await loadgen.open_many(
            lambda: loadgen.EchoClient(
                port, wire.path("echo"), frame, s.echo_depth, tally, sio_connect=wire.connect_packet("echo")
            ),
            port, s.echo_connections, s.connect_concurrency,
        )  # fmt: skip
    try:
        for c in clients:
            c.start()
        await asyncio.sleep(s.echo_warmup)
        n0, cpu0 = tally.count, CpuSnapshot.take(*server_pids, helpers=helpers)
        await asyncio.sleep(s.echo_window)
        n1, cpu1 = tally.count, CpuSnapshot.take(*server_pids, helpers=helpers)
        if while_open is not None:
            while_open()
    finally:
        for c in clients:
            c.running = False
        loadgen.close_all(clients)
    if not raw_tcp:
        got = sum(c.counter.payload_bytes for c in clients if isinstance(c, loadgen.EchoClient) and c.counter)
        if got != tally.count * len(payload):
            raise RuntimeError(f"echo returned {got} payload bytes for {tally.count} messages")
    metrics = {"round_trips_per_s": (n1 - n0) / (cpu1.wall - cpu0.wall), **cpu1.usage_since(cpu0)}
    return Measured(metrics, cpu0, cpu1)


# ------------------------------------------------------------------- fan-out


async def _sync_fanout(pub: loadgen.FanoutClient, clients: list[loadgen.FanoutClient], wire: Wire) -> None:
    """Publish probes until every client has one (all registered), then zero counts."""
    probe = wire.frame("fanout", b"probe")
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


async def _await_burst(barrier: loadgen.Barrier, clients: list[loadgen.FanoutClient], stall: float) -> bool:
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


async def _paced(
    pub: loadgen.FanoutClient,
    clients: list[loadgen.FanoutClient],
    barrier: loadgen.Barrier,
    expected: int,
    s: Settings,
    wire: Wire,
    laps_ms: list[float],
) -> int:
    """Publish ``fanout_paced`` messages one at a time, appending each publish-to-last-delivery time.

    Each message is written once every client has the previous one; the series
    stops at the first stall. Returns the number of messages every client should
    now have received.
    """
    frame = wire.frame("fanout", text_payload(s.fanout_size, "paced:"))
    for _ in range(s.fanout_paced):
        expected += 1
        barrier.reset(expected, clients)
        t0 = time.perf_counter()
        pub.transport.write(frame)
        if not await _await_burst(barrier, clients, s.fanout_stall):
            break
        laps_ms.append(1000 * (barrier.done_at - t0))
    return expected


async def fanout(
    ports: Sequence[int],
    server_pids: Sequence[int],
    s: Settings,
    *,
    helpers: Sequence[int] = (),
    wire: Wire = PLAIN,
) -> Measured:
    """Bursts from one publisher to every /fanout client: rate, CPU cost, losses; then paced latency.

    The ``fanout_clients`` connections are spread evenly over ``ports`` (one per
    node); the publisher is the first connection on the first port. After the
    bursts, on the same connections, ``fanout_paced`` messages are published one
    at a time, each once every client has the one before: publish-to-last-delivery
    percentiles in ms. A stall ends the bursts or the paced series; every message
    some client never got counts as lost.
    """
    barrier = loadgen.Barrier()
    clients: list[loadgen.FanoutClient] = []
    path, join = wire.path("fanout"), wire.connect_packet("fanout")
    try:
        for port, count in zip(ports, spread(s.fanout_clients, len(ports)), strict=True):
            clients += await loadgen.open_many(
                functools.partial(loadgen.FanoutClient, port, path, barrier, sio_connect=join),
                port, count, s.connect_concurrency,
            )  # fmt: skip
    except BaseException:
        loadgen.close_all(clients)
        raise
    pub = clients[0]
    burst = b"".join(wire.frame("fanout", text_payload(s.fanout_size, f"{i:06d}:")) for i in range(s.fanout_burst))
    try:
        await _sync_fanout(pub, clients, wire)
        expected = 0
        timed = 0.0
        completed = 0
        cpu0 = cpu1 = CpuSnapshot.take(*server_pids, helpers=helpers)
        for k in range(s.fanout_warmup_bursts + s.fanout_bursts):
            if k == s.fanout_warmup_bursts:
                cpu0 = CpuSnapshot.take(*server_pids, helpers=helpers)
            expected += s.fanout_burst
            barrier.reset(expected, clients)
            t0 = time.perf_counter()
            pub.transport.write(burst)
            if not await _await_burst(barrier, clients, s.fanout_stall):
                break
            if k >= s.fanout_warmup_bursts:
                timed += barrier.done_at - t0
                completed += 1
        cpu1 = CpuSnapshot.take(*server_pids, helpers=helpers)
        paced_ms: list[float] = []
        if completed == s.fanout_bursts:
            expected = await _paced(pub, clients, barrier, expected, s, wire, paced_ms)
        if completed < s.fanout_bursts or len(paced_ms) < s.fanout_paced:
            await _quiet(clients, 0.5)
        lost = sum(max(0, expected - c.received) for c in clients)
        extra = sum(max(0, c.received - expected) for c in clients)
    finally:
        loadgen.close_all(clients)
    deliveries = completed * s.fanout_burst * len(clients)
    nan = float("nan")
    metrics = {
        "deliveries_per_s": deliveries / timed if timed else nan,
        "cpu_us_per_delivery": 1e6 * (cpu1.server - cpu0.server) / deliveries if deliveries else nan,
        "p50_ms": percentile(paced_ms, 50) if len(paced_ms) > 1 else nan,
        "p99_ms": percentile(paced_ms, 99) if len(paced_ms) > 1 else nan,
        "lost": float(lost),
        "duplicated": float(extra),
        **(cpu1.usage_since(cpu0) if cpu1.wall > cpu0.wall else {}),
    }
    return Measured(metrics, cpu0, cpu1)


# ------------------------------------------------------------------- latency


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``samples``, by linear interpolation."""
    return statistics.quantiles(samples, n=100, method="inclusive")[round(q) - 1] if q < 100 else max(samples)


async def latency(
    port: int,
    server_pids: Sequence[int],
    s: Settings,
    *,
    raw_tcp: bool = False,
    helpers: Sequence[int] = (),
    wire: Wire = PLAIN,
) -> Measured:
    """One connection, one ``echo_size``-byte message at a time: round-trip percentiles in µs.

    ``latency_warmup`` round trips are sent first and thrown away, then
    ``latency_round_trips`` are timed one by one.
    """
    frame = wire.frame("echo", text_payload(s.echo_size))
    client: loadgen.LatencyClient | loadgen.RawLatencyClient
    if raw_tcp:
        (client,) = await loadgen.open_many(lambda: loadgen.RawLatencyClient(frame), port, 1)
    else:
        (client,) = await loadgen.open_many(
            lambda: loadgen.LatencyClient(port, wire.path("echo"), frame, sio_connect=wire.connect_packet("echo")),
            port, 1,
        )  # fmt: skip
    try:
        for count in (s.latency_warmup, s.latency_round_trips):
            cpu0 = CpuSnapshot.take(*server_pids, helpers=helpers)
            done = client.laps.arm(count)
            client.send()
            await asyncio.wait_for(done, 10 + count / 500)
            cpu1 = CpuSnapshot.take(*server_pids, helpers=helpers)
    finally:
        client.close()
    us = [ns / 1000 for ns in client.laps.samples]
    metrics = {
        "p50_us": percentile(us, 50),
        "p99_us": percentile(us, 99),
        "round_trips_per_s": len(us) / (cpu1.wall - cpu0.wall),
        **cpu1.usage_since(cpu0),
    }
    return Measured(metrics, cpu0, cpu1)
