"""Multi-process hubbub deployments for the scale-out scenarios.

A :class:`Setup` starts one deployment through the harness's
:class:`~bench.procs.ProcessSet`: a private redis-server on a free port
(nothing kept on disk), hubbub nodes using it as their broker, or a
``--workers`` supervisor whose workers share one port. :meth:`Deployment.stop`
stops everything by PID and reports anything that did not stop cleanly,
including a worker that outlived its supervisor.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench import peers, procfs
from bench.procs import CpuPlan, ProcessSet, Server, StartError, free_port
from bench.settings import Settings
from hubbub.testing import RedisClusterServer

APP = "examples/echo.py:app"
NAMESPACE = "bench"
STOP_GRACE = 10.0
"""Seconds a hubbub process gets to shut down gracefully on SIGTERM before SIGKILL."""


@dataclass
class Deployment:
    """What a started setup offers the load generator, and what to stop afterwards."""

    ports: list[int]
    """Where clients connect: one port per node."""
    servers: list[Server]
    """hubbub processes the harness started (nodes, or one ``--workers`` supervisor)."""
    workers: list[procfs.ProcessId] = field(default_factory=list)
    """The supervisor's worker processes, if any."""
    redis: Server | None = None
    redis_dir: str | None = None
    redis_cluster: RedisClusterServer | None = None
    """A private Redis Cluster the nodes use instead of ``redis``, if any."""

    @property
    def server_pids(self) -> list[int]:
        """Every hubbub process: whose CPU counts as server CPU."""
        return [s.pid for s in self.servers] + [w.pid for w in self.workers]

    @property
    def helper_pids(self) -> list[int]:
        """redis-server, or every redis-server of the Redis Cluster, if any."""
        pids = [self.redis.pid] if self.redis is not None else []
        if self.redis_cluster is not None:
            pids += [node.process.pid for node in self.redis_cluster.nodes if node.process is not None]
        return pids

    def check_alive(self) -> None:
        """Raise if any process of the deployment exited (or a worker was replaced)."""
        for s in [*self.servers, *([self.redis] if self.redis else [])]:
            if s.proc.poll() is not None:
                raise RuntimeError(f"{s.name} exited with code {s.proc.returncode}")
        if self.redis_cluster is not None and not all(node.alive for node in self.redis_cluster.nodes):
            raise RuntimeError("a redis-server of the Redis Cluster exited")
        for w in self.workers:
            if not w.alive():
                raise RuntimeError(f"worker {w.pid} exited during the measurement")

    def stop(self, procs: ProcessSet) -> list[str]:
        """Stop hubbub (SIGTERM, graceful), then redis-server; return what went wrong."""
        problems: list[str] = []
        for s in self.servers:
            status = procs.terminate(s.pid, STOP_GRACE)
            if status != 0:
                problems.append(f"{s.name} exited with {status} after SIGTERM")
            left = [w for w in self.workers if w.alive()]
            for w in left:
                with contextlib.suppress(ProcessLookupError):  # it may have exited just now
                    os.kill(w.pid, signal.SIGKILL)
            if left:
                problems.append(f"workers {', '.join(str(w.pid) for w in left)} outlived {s.name}; killed")
            procs.stop_pid(s.pid)
        if self.redis is not None:
            procs.stop_pid(self.redis.pid)
        if self.redis_cluster is not None:
            self.redis_cluster.stop()
        if self.redis_dir is not None:
            shutil.rmtree(self.redis_dir, ignore_errors=True)
        return problems


StartFn = Callable[[ProcessSet, CpuPlan, Settings], Deployment]


@dataclass(frozen=True)
class Setup:
    """One deployment of hubbub a scale-out scenario measures: a row of its table."""

    name: str
    start: StartFn
    pinned: bool = True
    """True: hubbub and redis-server on the server CPU, the load generator on its own
    (as for peers). False: every process and the load generator on every allowed CPU."""


def _cpus(plan: CpuPlan, pinned: bool) -> frozenset[int] | None:
    """CPUs for a setup's processes."""
    return plan.server if pinned else plan.allowed


def redis_command(port: int, workdir: str) -> list[str]:
    """A private redis-server on 127.0.0.1:``port`` that keeps nothing on disk (``workdir``: its directory)."""
    return [
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", workdir, "--loglevel", "warning",
    ]  # fmt: skip


def broker_url(redis_port: int) -> str:
    """The ``--broker`` URL of the Redis on ``redis_port``, in the bench namespace."""
    return f"redis://127.0.0.1:{redis_port}/0?namespace={NAMESPACE}"


def _start_redis(procs: ProcessSet, cpus: frozenset[int] | None, s: Settings) -> tuple[Server, str]:
    """A private redis-server on a free port that keeps nothing on disk."""
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    try:
        return procs.start("redis-server", redis_command(port, workdir), port, s.start_timeout, cpus), workdir
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def node_command(port: int, redis_port: int, *extra: str) -> list[str]:
    """``python -m hubbub run`` of the bench app on ``port``, brokered by the Redis on ``redis_port``."""
    return node_command_for(port, broker_url(redis_port), *extra)


def node_command_for(port: int, broker: str, *extra: str) -> list[str]:
    """``python -m hubbub run`` of the bench app on ``port`` with the ``--broker`` URL ``broker``."""
    return [
        sys.executable, "-m", "hubbub", "run", APP, "--host", "127.0.0.1", "--port", str(port),
        "--broker", broker, "--log-level", "warning", *extra,
    ]  # fmt: skip


def _start_redis_cluster(cpus: frozenset[int] | None, masters: int) -> RedisClusterServer:
    """A private Redis Cluster of ``masters`` masters and no replica, keeping nothing on disk, on ``cpus``."""
    cluster = RedisClusterServer(masters=masters, replicas=0)
    try:
        cluster.start()
        if cpus is not None:
            for node in cluster.nodes:
                if node.process is not None:
                    os.sched_setaffinity(node.process.pid, cpus)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _start_all(procs: ProcessSet, dep: Deployment, body: Callable[[], None]) -> Deployment:
    """Run ``body`` (which adds processes to ``dep``); on any failure stop what it started."""
    try:
        body()
    except BaseException:
        dep.stop(procs)
        raise
    return dep


def _single(procs: ProcessSet, plan: CpuPlan, s: Settings) -> Deployment:
    port = free_port()
    return Deployment([port], [procs.start("hubbub", peers.hubbub(port), port, s.start_timeout, plan.server)])


SINGLE = Setup("1 node", _single)
"""Plain hubbub, one process, in-memory broker: the same command as the ``hubbub`` peer, pinned alike."""


def nodes(count: int, pinned: bool = True) -> Setup:
    """``count`` hubbub nodes sharing a private Redis (``count`` = 1: one node on the Redis broker)."""

    def start(procs: ProcessSet, plan: CpuPlan, s: Settings) -> Deployment:
        cpus = _cpus(plan, pinned)
        dep = Deployment([], [])

        def body() -> None:
            dep.redis, dep.redis_dir = _start_redis(procs, cpus, s)
            for i in range(count):
                port = free_port()
                label = f"hubbub-node-{chr(ord('a') + i)}"
                dep.servers.append(procs.start(label, node_command(port, dep.redis.port), port, s.start_timeout, cpus))
                dep.ports.append(port)

        return _start_all(procs, dep, body)

    return Setup(f"{count} node{'s' if count > 1 else ''} + Redis", start, pinned)


def cluster_nodes(count: int, masters: int = 3) -> Setup:
    """``count`` hubbub nodes on a private Redis Cluster of ``masters`` masters (sharded pub/sub)."""

    def start(procs: ProcessSet, plan: CpuPlan, s: Settings) -> Deployment:
        dep = Deployment([], [])

        def body() -> None:
            dep.redis_cluster = _start_redis_cluster(plan.server, masters)
            url = f"{dep.redis_cluster.url}?namespace={NAMESPACE}"
            for i in range(count):
                port = free_port()
                label = f"hubbub-node-{chr(ord('a') + i)}"
                dep.servers.append(procs.start(label, node_command_for(port, url), port, s.start_timeout, plan.server))
                dep.ports.append(port)

        return _start_all(procs, dep, body)

    return Setup(f"{count} node{'s' if count > 1 else ''} + Redis Cluster ({masters} masters)", start)


def workers(count: int) -> Setup:
    """``hubbub run --workers count`` on a private Redis; unpinned (see :class:`Setup`)."""

    def start(procs: ProcessSet, plan: CpuPlan, s: Settings) -> Deployment:
        cpus = _cpus(plan, pinned=False)
        dep = Deployment([], [])

        def body() -> None:
            dep.redis, dep.redis_dir = _start_redis(procs, cpus, s)
            port = free_port()
            argv = node_command(port, dep.redis.port, "--workers", str(count))
            server = procs.start(f"hubbub-workers-{count}", argv, port, s.start_timeout, cpus)
            dep.servers.append(server)
            dep.ports.append(port)
            if count > 1:
                dep.workers = _await_workers(server, count, s.start_timeout)

        return _start_all(procs, dep, body)

    return Setup(f"{count} worker{'s' if count > 1 else ''}", start, pinned=False)


def _await_workers(supervisor: Server, count: int, timeout: float) -> list[procfs.ProcessId]:
    """The supervisor's ``count`` workers, once each one listens on the port itself."""
    deadline = time.monotonic() + timeout
    while True:
        if supervisor.proc.poll() is not None:
            raise StartError(f"supervisor exited with code {supervisor.proc.returncode}")
        kids = procfs.children(supervisor.pid)
        if len(kids) == count:
            listening = procfs.sockets_by_pid(supervisor.port, [k.pid for k in kids], procfs.TCP_LISTEN)
            if all(listening.values()):
                return kids
        if time.monotonic() > deadline:
            raise StartError(f"{len(kids)}/{count} workers listening after {timeout:.0f} s")
        time.sleep(0.05)


HISTORY_APP = "bench/apps/history.py"


def history(name: str, target: str, *, store: str | None = None, redis: bool = False) -> Setup:
    """One hubbub process of the history app (``target``: ``app`` keeps history, ``plain`` does not),
    with ``store`` ("sqlite": a SQLite file in a fresh directory) or on a private Redis."""

    def start(procs: ProcessSet, plan: CpuPlan, s: Settings) -> Deployment:
        dep = Deployment([], [])

        def body() -> None:
            port = free_port()
            argv = [
                sys.executable, "-m", "hubbub", "run", f"{HISTORY_APP}:{target}", "--host", "127.0.0.1",
                "--port", str(port), "--log-level", "warning",
            ]  # fmt: skip
            if redis:
                dep.redis, dep.redis_dir = _start_redis(procs, plan.server, s)
                argv += ["--broker", broker_url(dep.redis.port)]
            elif store == "sqlite":
                dep.redis_dir = tempfile.mkdtemp(prefix="bench-history-")
                argv += ["--store", f"sqlite:///{dep.redis_dir}/history.db"]
            dep.servers.append(procs.start(f"hubbub-{target}", argv, port, s.start_timeout, plan.server))
            dep.ports.append(port)

        return _start_all(procs, dep, body)

    return Setup(name, start)
