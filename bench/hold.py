"""The hold scenarios: many idle connections on hubbub with its heartbeat running.

``hold`` uses one hubbub process (with hubbub's collector freezing, and without);
``hold_workers`` uses ``hubbub run --workers N`` on a private Redis, N chosen so
each worker stays under its open-file limit (see :func:`workers_for`).

The target is ``hold_connections`` (100,000 in a full run). One process can
hold only as many sockets as its open-file limit allows, and one source
address can open only so many connections to one server port quickly (half
its ephemeral port range, see :meth:`Plan.make`), so the count actually used
is the target capped by the server's RLIMIT_NOFILE (the harness raises the
soft limit to the hard one; children inherit it), and the client side is
spread over as many :mod:`bench.holdclient` processes as needed, each on its
own source address 127.0.0.2, 127.0.0.3, ...
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import deploy, loadgen, measure, procfs, wsframe
from bench.apps.hold import GC_LOG_ENV
from bench.deploy import Deployment, Setup
from bench.holdclient import Loader, ask_all, open_timeout
from bench.measure import percentile, spread, text_payload
from bench.procs import CpuPlan, CpuSnapshot, ProcessSet, StartError, cpu_seconds, free_port, rss_kib
from bench.settings import Settings

APP = "bench/apps/hold.py:app"
APP_UNFROZEN = "bench/apps/hold.py:app_unfrozen"
PATH = "/echo"

FD_RESERVE = 100
"""Open files a process keeps for everything but held connections (listener, epoll, modules, logs, pipes)."""
PER_CLIENT_MAX = 25_000
"""Most connections one client process holds."""
PORT_MARGIN = 500
"""Ports of the usable half of a source address's ephemeral range left unused (see :meth:`Plan.make`)."""
FIRST_SOURCE = 2
"""Client process ``i`` connects from 127.0.0.(FIRST_SOURCE + i)."""
SOURCES = 253
"""Source addresses available: 127.0.0.2 to 127.0.0.254."""
WORKER_FILL = 0.85
"""Share of a worker's open-file limit the planned connections may fill on average
(SO_REUSEPORT spreads them by hash, so some workers get more than the mean)."""


def workers_for(target: int, nofile: int) -> int:
    """Workers needed to hold ``target`` connections with ``nofile`` open files each (at least 2)."""
    return max(2, math.ceil(target / (WORKER_FILL * (nofile - FD_RESERVE))))


def ephemeral_ports() -> int:
    """How many ports the kernel hands out to outgoing connections from one address."""
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return int(high) - int(low) + 1


def source(i: int) -> str:
    """The source address of client process ``i``."""
    return f"127.0.0.{FIRST_SOURCE + i}"


@dataclass(frozen=True)
class Plan:
    """How many connections to hold and how they are split over client processes."""

    target: int
    server_nofile: int
    """The server's open-file limit (its soft limit, raised to the hard limit by the harness)."""
    client_nofile: int
    """Each client process's open-file limit (inherited from the harness, raised the same way)."""
    per_client: tuple[int, ...]
    """Connections each client process opens, process ``i`` from :func:`source` ``(i)``."""

    @classmethod
    def make(cls, target: int, server_nofile: int, client_nofile: int, ports: int, servers: int = 1) -> Plan:
        """The target capped by the servers' limits; as few client processes as their limits allow.

        With several ``servers`` (workers sharing one port), each may be filled to
        :data:`WORKER_FILL` of its limit on average.

        One client process (one source address) opens at most half its ``ports``:
        the kernel hands out ports of one parity first, and once that half is used
        every further connect scans it all first (measured here: from about 30,000
        to about 1,000 connects/s past 14,000 connections from one address).
        """
        per_client_cap = min(PER_CLIENT_MAX, client_nofile - FD_RESERVE, ports // 2 - PORT_MARGIN)
        server_cap = (
            server_nofile - FD_RESERVE if servers == 1 else int(servers * WORKER_FILL * (server_nofile - FD_RESERVE))
        )
        count = min(target, server_cap, max(0, per_client_cap) * SOURCES)
        if count <= 0:
            raise StartError(
                f"no connection to hold: open-file limits {server_nofile} (server), {client_nofile} (client), "
                f"{ports} ephemeral ports"
            )
        processes = -(-count // per_client_cap)
        return cls(target, server_nofile, client_nofile, tuple(spread(count, processes)))

    @property
    def count(self) -> int:
        """Connections held in all."""
        return sum(self.per_client)


def note(metrics: dict[str, float]) -> str:
    """One line saying how many connections were held, of what target, and what capped the count."""
    held, target = int(metrics["held"]), int(metrics["target"])
    processes = int(metrics["client_processes"])
    last = source(processes - 1)
    spread_over = f"{processes} client process{'es' if processes > 1 else ''} on 127.0.0.{FIRST_SOURCE}" + (
        f"-{last.rsplit('.', 1)[1]}" if processes > 1 else ""
    )
    text = f"held {held:,} of the {target:,} target ({spread_over})"
    if held < target:
        text += (
            f", limited by RLIMIT_NOFILE hard limit {int(metrics['server_nofile']):,} (server) / "
            f"{int(metrics['client_nofile']):,} (per client process), less {FD_RESERVE} kept for other files"
        )
    return text


def note_workers(metrics: dict[str, float]) -> str:
    """One line saying how many connections the workers held and how SO_REUSEPORT spread them."""
    processes = int(metrics["client_processes"])
    return (
        f"held {int(metrics['held']):,} of the {int(metrics['target']):,} target on {int(metrics['workers'])} workers "
        f"({int(metrics['worker_conns_min']):,}-{int(metrics['worker_conns_max']):,} each, open-file limit "
        f"{int(metrics['server_nofile']):,} per worker), from {processes} client processes on 127.0.0.{FIRST_SOURCE}-"
        f"{source(processes - 1).rsplit('.', 1)[1]}; worker VmRSS {metrics['rss_after_mib']:,.0f} MiB in all, "
        f"redis-server {metrics['redis_rss_mib']:,.1f} MiB"
    )


# ------------------------------------------------------------------- the setup


@dataclass
class HoldDeployment(Deployment):
    """One hubbub process on the heartbeat app, and the client processes that will hold connections on it."""

    plan: Plan | None = None
    loaders: list[Loader] = field(default_factory=list)
    gc_dir: str | None = None
    """Where the serving processes log their full collections (see bench/apps/hold.py)."""

    @property
    def holder_pids(self) -> list[int]:
        """The processes holding connections: the workers, else the one server."""
        return [w.pid for w in self.workers] or [s.pid for s in self.servers]

    @property
    def client_pids(self) -> list[int]:
        """The client processes: their CPU is reported on its own."""
        return [loader.pid for loader in self.loaders]

    def check_alive(self) -> None:
        """Raise if the server exited, or a client process failed."""
        super().check_alive()
        for loader in self.loaders:
            status = loader.proc.poll()
            if status not in (None, 0):
                raise RuntimeError(f"client {loader.address} exited with status {status}")

    def stop(self, procs: ProcessSet) -> list[str]:
        """Stop the client processes, then the server.

        Each client's stdin is closed first: one still running then closes its
        connections and exits by itself; any left after ``CLIENT_EXIT_GRACE``
        is stopped by PID.
        """
        for loader in self.loaders:
            with contextlib.suppress(OSError):
                if loader.proc.stdin is not None:
                    loader.proc.stdin.close()
        deadline = time.monotonic() + CLIENT_EXIT_GRACE
        problems: list[str] = []
        for loader in self.loaders:
            with contextlib.suppress(subprocess.TimeoutExpired):
                loader.proc.wait(max(0.0, deadline - time.monotonic()))
            status = procs.stop_pid(loader.pid)
            if status not in (None, 0, -signal.SIGTERM):
                problems.append(f"client {loader.address} exited with {status}")
            with contextlib.suppress(OSError):
                if loader.proc.stdout is not None:
                    loader.proc.stdout.close()
        problems += super().stop(procs)
        if self.gc_dir is not None:
            shutil.rmtree(self.gc_dir, ignore_errors=True)
        return problems


CLIENT_EXIT_GRACE = 5.0
"""Seconds the client processes get to exit by themselves before they are stopped."""


def server_command(port: int, app: str = APP, *extra: str) -> list[str]:
    """``python -m hubbub run`` of the heartbeat ``app`` on ``port``."""
    return [
        sys.executable, "-m", "hubbub", "run", app, "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "warning", *extra,
    ]  # fmt: skip


def client_command(port: int, count: int, address: str, s: Settings) -> list[str]:
    """``python -m bench.holdclient`` holding ``count`` connections from ``address``."""
    return [
        sys.executable, "-m", "bench.holdclient", "--port", str(port), "--count", str(count),
        "--source", address, "--concurrency", str(s.connect_concurrency),
        "--max-seconds", str(s.start_timeout + s.hold_limit + 30),
    ]  # fmt: skip


def _start_clients(
    dep: HoldDeployment, procs: ProcessSet, cpus: frozenset[int] | None, s: Settings, servers: int
) -> None:
    """Plan the connections over the client processes and start them (not yet connecting)."""
    client_nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]  # what the client processes inherit
    server_nofile = procfs.nofile_limits(dep.holder_pids[0])[0]
    dep.plan = Plan.make(s.hold_connections, server_nofile, client_nofile, ephemeral_ports(), servers)
    for i, count in enumerate(dep.plan.per_client):
        address = source(i)
        proc = procs.spawn(f"holdclient-{address}", client_command(dep.ports[0], count, address, s), cpus)
        dep.loaders.append(Loader(proc, address))


def one_process(app: str, name: str) -> Setup:
    """One hubbub process serving ``app``, pinned to the server CPU; the clients on the load generator's."""

    def start(procs: ProcessSet, cpus: CpuPlan, s: Settings) -> Deployment:
        port = free_port()
        gc_dir = tempfile.mkdtemp(prefix="bench-gc-")
        dep = HoldDeployment([port], [], gc_dir=gc_dir)
        try:
            env = {GC_LOG_ENV: gc_dir}
            dep.servers.append(
                procs.start("hubbub-hold", server_command(port, app), port, s.start_timeout, cpus.server, env=env)
            )
            _start_clients(dep, procs, cpus.loadgen, s, 1)
        except BaseException:
            dep.stop(procs)
            raise
        return dep

    return Setup(name, start)


SETUP = one_process(APP, "1 process")
"""hubbub on bench/apps/hold.py pinned to the server CPU; the client processes on the load-generator CPU."""
SETUP_UNFROZEN = one_process(APP_UNFROZEN, "1 process, gc_freeze_batch=None")
"""The same with hubbub's collector freezing switched off: the before figures."""


def _start_workers(procs: ProcessSet, cpus: CpuPlan, s: Settings) -> Deployment:
    port = free_port()
    gc_dir = tempfile.mkdtemp(prefix="bench-gc-")
    dep = HoldDeployment([port], [], gc_dir=gc_dir)
    try:
        count = workers_for(s.hold_connections, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        dep.redis, dep.redis_dir = deploy._start_redis(procs, cpus.allowed, s)
        extra = ("--broker", deploy.broker_url(dep.redis.port), "--workers", str(count))
        argv = server_command(port, APP, *extra)
        server = procs.start("hubbub-hold-workers", argv, port, s.start_timeout, cpus.allowed, env={GC_LOG_ENV: gc_dir})
        dep.servers.append(server)
        dep.workers = deploy._await_workers(server, count, s.start_timeout)
        _start_clients(dep, procs, cpus.allowed, s, count)
    except BaseException:
        dep.stop(procs)
        raise
    return dep


WORKERS_SETUP = Setup("workers + Redis", _start_workers, pinned=False)
"""``hubbub run --workers N`` on a private Redis, N from :func:`workers_for` (the harness's open-file
limit, which the workers inherit); every process on every allowed CPU, as in ``workers_echo``."""


# ----------------------------------------------------------------- measuring
# ----------------------------------------------------------------- measuring

MIN_PINGS = 2
"""Pings every connection must get during the hold window (else the cell fails)."""
ASK_TIMEOUT = 30.0
"""Seconds a client process gets to answer reset, report and close."""
PROBE_TIMEOUT = 5.0
"""An echo probe round trip longer than this fails the cell."""
PROBE_WARMUP = 200
"""Probe round trips before the RSS baseline, so lazy imports are paid up front."""


async def _paced_round_trips(probe: loadgen.LatencyClient, window: float, pause: float) -> list[float]:
    """One message at a time, ``pause`` s apart, for ``window`` s; round trips in ms."""
    loop = asyncio.get_running_loop()
    end = loop.time() + window
    samples: list[float] = []
    while loop.time() < end:
        done = probe.laps.arm(1)
        probe.send()
        try:
            await asyncio.wait_for(done, PROBE_TIMEOUT)
        except TimeoutError:
            raise RuntimeError(f"echo probe: no reply within {PROBE_TIMEOUT:g} s during the hold") from None
        samples.append(probe.laps.samples[0] / 1e6)
        await asyncio.sleep(pause)
    return samples


def _merged(reports: list[dict[str, Any]], key: str) -> Counter[int]:
    merged: Counter[int] = Counter()
    for report in reports:
        merged.update({int(k): v for k, v in report[key].items()})
    return merged


def _rss_kib(pids: list[int]) -> int:
    return sum(rss_kib(pid) for pid in pids)


async def _settled_rss(pids: list[int], max_wait: float) -> int:
    """Summed VmRSS of ``pids`` once each has settled (see :func:`measure.settled_rss`), in KiB."""
    return sum(await asyncio.gather(*(measure.settled_rss(pid, max_wait) for pid in pids)))


def full_collections(gc_dir: str, pids: list[int], start: float, end: float) -> list[float]:
    """Pauses (ms) of the generation-2 collections ``pids`` logged between ``start`` and ``end`` (wall clock)."""
    pauses: list[float] = []
    for pid in pids:
        path = Path(gc_dir) / f"{pid}.gc"
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            ended, pause_ms = (float(v) for v in line.split())
            if start <= ended <= end:
                pauses.append(pause_ms)
    return pauses


async def _measure(dep: HoldDeployment, plan: Plan, s: Settings) -> dict[str, float]:
    port, loaders, holders = dep.ports[0], dep.loaders, dep.holder_pids
    frame = wsframe.client_frame(text_payload(s.echo_size))
    (probe,) = await loadgen.open_many(lambda: loadgen.LatencyClient(port, PATH, frame), port, 1)
    try:
        warm = probe.laps.arm(PROBE_WARMUP)
        probe.send()
        await asyncio.wait_for(warm, PROBE_TIMEOUT)
        await asyncio.sleep(0.5)
        before = _rss_kib(holders)
        redis_before = rss_kib(dep.redis.pid) if dep.redis is not None else 0
        fill_start = time.time()
        t0 = time.perf_counter()
        await ask_all(loaders, "open", 20 + open_timeout(max(plan.per_client)))
        connect_s = time.perf_counter() - t0
        settled = await _settled_rss(holders, s.idle_settle_max)
        fill_end = time.time()
        await ask_all(loaders, "reset", ASK_TIMEOUT)
        cpu0 = CpuSnapshot.take(*holders, helpers=dep.client_pids)
        redis_cpu0 = cpu_seconds(dep.redis.pid) if dep.redis is not None else 0.0
        rtt_ms = await _paced_round_trips(probe, s.hold_window, s.hold_probe_interval)
        cpu1 = CpuSnapshot.take(*holders, helpers=dep.client_pids)
        redis_cpu1 = cpu_seconds(dep.redis.pid) if dep.redis is not None else 0.0
        hold_end = time.time()
        reports = await ask_all(loaders, "report", ASK_TIMEOUT)
        after = _rss_kib(holders)
        redis_after = rss_kib(dep.redis.pid) if dep.redis is not None else 0
        per_holder = procfs.sockets_by_pid(port, holders)
    finally:
        probe.close()
    held = sum(r["open"] for r in reports)
    pings = _merged(reports, "pings")
    closes = _merged(reports, "close_codes")
    dropped = sum(r["dropped"] for r in reports)
    if closes:
        codes = ", ".join(f"{code} x{n}" for code, n in sorted(closes.items()))
        raise RuntimeError(f"the server closed {closes.total()} of {plan.count} held connections (codes {codes})")
    if dropped or held != plan.count:
        raise RuntimeError(f"{held} of {plan.count} connections still open, {dropped} lost without a close frame")
    short = sum(n for k, n in pings.items() if k < MIN_PINGS)
    if short:
        raise RuntimeError(
            f"{short} of {held} connections got fewer than {MIN_PINGS} pings in {s.hold_window:g} s "
            f"(fewest {min(pings)}); heartbeat behind?"
        )
    usage = cpu1.usage_since(cpu0)
    assert dep.gc_dir is not None
    fill_pauses = full_collections(dep.gc_dir, holders, fill_start, fill_end)
    hold_pauses = full_collections(dep.gc_dir, holders, fill_end, hold_end)
    return {
        "held": float(held),
        "target": float(plan.target),
        "workers": float(len(dep.workers) or 1),
        "kib_per_connection": (after - before) / held,
        "handshakes_per_s": plan.count / connect_s,
        "pings_min": float(min(pings)),
        "pings_max": float(max(pings)),
        "server_closes": float(closes.total()),
        "server_cpu_pct": usage["server_cpu_pct"],
        "echo_p99_ms": percentile(rtt_ms, 99),
        "echo_max_ms": max(rtt_ms),
        "echo_p50_ms": percentile(rtt_ms, 50),
        "echo_round_trips": float(len(rtt_ms)),
        "gc_full_fill_count": float(len(fill_pauses)),
        "gc_full_fill_max_ms": max(fill_pauses, default=0.0),
        "gc_full_hold_count": float(len(hold_pauses)),
        "gc_full_hold_max_ms": max(hold_pauses, default=0.0),
        "client_cpu_pct": usage["helper_cpu_pct"],
        "loadgen_cpu_pct": usage["loadgen_cpu_pct"],
        "other_cpu_pct": max(0.0, usage["other_cpu_pct"] - 100 * (redis_cpu1 - redis_cpu0) / s.hold_window),
        "redis_cpu_pct": 100 * (redis_cpu1 - redis_cpu0) / s.hold_window,
        "redis_rss_mib": redis_after / 1024,
        "redis_rss_growth_mib": (redis_after - redis_before) / 1024,
        "server_nofile": float(plan.server_nofile),
        "client_nofile": float(plan.client_nofile),
        "client_processes": float(len(plan.per_client)),
        "server_sockets": float(sum(per_holder.values())),
        "worker_conns_min": float(min(per_holder.values())),
        "worker_conns_max": float(max(per_holder.values())),
        "rss_before_mib": before / 1024,
        "rss_settled_mib": settled / 1024,
        "rss_after_mib": after / 1024,
    }


async def hold(dep: Deployment, s: Settings) -> dict[str, float]:
    """Open every planned connection, hold them through heartbeat rounds, and report what held.

    The client processes open their connections all at once (handshakes/s over
    all of them); once the server's VmRSS settles their ping counts are zeroed
    and the window starts: server CPU, and an /echo probe paced one message at
    a time. Any connection closed or dropped, or one with fewer than
    :data:`MIN_PINGS` pings in the window, fails the cell. Every client
    process is told to close its connections at the end, and the servers get
    up to :data:`DRAIN_TIMEOUT` to see them all go before they are stopped.
    """
    assert isinstance(dep, HoldDeployment) and dep.plan is not None
    for loader in dep.loaders:
        loader.attach()
    try:
        return await _measure(dep, dep.plan, s)
    finally:
        with contextlib.suppress(RuntimeError):  # a client that cannot answer is stopped with the deployment
            await ask_all(dep.loaders, "close", ASK_TIMEOUT)
        for loader in dep.loaders:
            loader.detach()
        await _drained(dep)


DRAIN_TIMEOUT = 60.0
"""Seconds the servers get to process the clients' closes (tens of thousands per worker on shared CPUs)."""


async def _drained(dep: HoldDeployment) -> None:
    """Wait until the serving processes hold no open or half-closed connection on the port, or
    :data:`DRAIN_TIMEOUT` passed."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while time.monotonic() < deadline:
        held = [
            n
            for state in (procfs.TCP_ESTABLISHED, procfs.TCP_CLOSE_WAIT)
            for n in procfs.sockets_by_pid(dep.ports[0], dep.holder_pids, state).values()
        ]
        if not any(held):
            return
        await asyncio.sleep(0.5)
