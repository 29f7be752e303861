"""Child processes of the harness: start, pin, observe through /proc, stop by PID.

Every process started through :class:`ProcessSet` is stopped when the set
exits (normal exit, exception, Ctrl-C or SIGTERM); peers also get
``PR_SET_PDEATHSIG`` so they die if the harness itself is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

CLK_TCK = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1


class StartError(RuntimeError):
    """A peer exited or did not accept connections in time."""


def raise_nofile_limit() -> int:
    """Raise this process's RLIMIT_NOFILE soft limit to the hard limit; return it.

    Children inherit it, so peers get the raised limit too.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass(frozen=True)
class CpuPlan:
    """Which CPUs peers and the load generator (this process) run on; None: anywhere."""

    server: frozenset[int] | None
    loadgen: frozenset[int] | None
    allowed: frozenset[int] | None = None
    """Every CPU the harness may use (for unpinned measurements); None: not known."""

    @classmethod
    def split(cls) -> CpuPlan:
        """First allowed CPU for peers, second for the load generator (needs two)."""
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return cls(None, None, frozenset(cpus))
        return cls(frozenset({cpus[0]}), frozenset({cpus[1]}), frozenset(cpus))

    def unpin_self(self) -> None:
        """Let this process run on every allowed CPU (until the next ``pin_self``)."""
        if self.allowed is not None:
            os.sched_setaffinity(0, self.allowed)

    def pin_self(self) -> None:
        """Move this process to the load-generator CPUs."""
        if self.loadgen is not None:
            os.sched_setaffinity(0, self.loadgen)

    def describe(self) -> str:
        """Human-readable summary."""
        if self.server is None or self.loadgen is None:
            return "none (fewer than 2 CPUs available)"
        return f"server on CPU {min(self.server)}, load generator on CPU {min(self.loadgen)}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (its threads included), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid: int) -> int:
    """Resident set size (VmRSS) of ``pid`` in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpus_busy_seconds(cpus: set[int] | None = None) -> float:
    """User + nice + system time of ``cpus`` (default: all), from /proc/stat, in seconds.

    Interrupt and softirq time are left out: loopback networking lands there and
    belongs to the measured processes rather than to anyone else.
    """
    total = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        if cpus is not None and int(name[3:]) not in cpus:
            continue
        total += int(fields[0]) + int(fields[1]) + int(fields[2])
    return total / CLK_TCK


def machine_busy_pct(seconds: float = 1.0) -> float:
    """CPU in use across the machine over ``seconds`` (% of one core), before we load it."""
    start = cpus_busy_seconds()
    time.sleep(seconds)
    return 100 * (cpus_busy_seconds() - start) / seconds


def self_cpu_seconds() -> float:
    """User + system CPU time of this process (microsecond resolution), in seconds."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds used so far by the server, by this process, and by the machine.

    The server may be several processes (cluster nodes, a supervisor and its
    workers): ``server`` is their sum, ``each`` their own counters in order.
    ``helper`` is CPU of processes that serve the server (redis-server): kept
    out of both ``server`` and the everything-else figure.
    """

    server: float
    loadgen: float
    machine: float
    wall: float
    each: tuple[float, ...] = ()
    helper: float | None = None

    @classmethod
    def take(cls, *server_pids: int, helpers: Sequence[int] = ()) -> CpuSnapshot:
        """Read every counter now."""
        each = tuple(cpu_seconds(pid) for pid in server_pids)
        helper = sum(cpu_seconds(pid) for pid in helpers) if helpers else None
        return cls(sum(each), self_cpu_seconds(), cpus_busy_seconds(), time.perf_counter(), each, helper)

    def usage_since(self, start: CpuSnapshot) -> dict[str, float]:
        """Server, load-generator, helper (if any) and everything-else CPU, in % of one core."""
        wall = self.wall - start.wall
        server = self.server - start.server
        loadgen = self.loadgen - start.loadgen
        helper = self.helper - start.helper if self.helper is not None and start.helper is not None else None
        other = max(0.0, self.machine - start.machine - server - loadgen - (helper or 0.0))
        usage = {
            "server_cpu_pct": 100 * server / wall,
            "loadgen_cpu_pct": 100 * loadgen / wall,
            "other_cpu_pct": 100 * other / wall,
        }
        if helper is not None:
            usage["helper_cpu_pct"] = 100 * helper / wall
        return usage


def die_with_parent() -> None:
    """Ask the kernel to SIGTERM this process when its parent exits (``PR_SET_PDEATHSIG``).

    Meant for a child between fork and exec; does nothing where prctl is unavailable.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _child_setup(cpus: frozenset[int] | None) -> Callable[[], None]:
    """What a peer does between fork and exec: pin itself, die with the harness."""

    def setup() -> None:
        if cpus is not None:
            os.sched_setaffinity(0, cpus)  # before exec: every later thread inherits it
        die_with_parent()

    return setup


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait until 127.0.0.1:port accepts a TCP connection, or raise StartError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StartError(f"exited with code {proc.returncode} before listening")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise StartError(f"not listening on port {port} after {timeout:.0f} s")


@dataclass
class Server:
    """A started peer process."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        """The peer's process id."""
        return self.proc.pid


class ProcessSet:
    """Context manager owning every process the harness starts."""

    def __init__(self, log_dir: Path, cwd: Path, cpus: frozenset[int] | None) -> None:
        self.log_dir = log_dir
        self.cwd = cwd
        self.cpus = cpus
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    def __enter__(self) -> ProcessSet:
        # Ctrl-C and SIGTERM both unwind through __exit__ (SIGINT is set explicitly
        # because a shell starting us in the background may have ignored it).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for pid in list(self._procs):
            self.stop_pid(pid)

    def _popen(
        self,
        name: str,
        argv: list[str],
        cpus: frozenset[int] | None,
        piped: bool,
        extra_env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` logging to ``name``.log (stderr only when ``piped``: stdin and stdout are pipes)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log: IO[bytes]
        with open(self.log_dir / f"{name}.log", "ab") as log:
            log.write(f"\n=== {time.strftime('%F %T')} {' '.join(argv)}\n".encode())
            log.flush()
            env = dict(os.environ)
            src = str(self.cwd / "src")
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(self.cwd), src, env.get("PYTHONPATH", "")) if p)
            env.update(extra_env or {})
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=self.cwd,
                    env=env,
                    stdin=subprocess.PIPE if piped else subprocess.DEVNULL,
                    stdout=subprocess.PIPE if piped else log,
                    stderr=log if piped else subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_child_setup(cpus if cpus is not None else self.cpus),
                )
            except OSError as e:
                raise StartError(str(e)) from e
        self._procs[proc.pid] = proc
        return proc

    def spawn(self, name: str, argv: list[str], cpus: frozenset[int] | None = None) -> subprocess.Popen[bytes]:
        """Start a helper that talks over pipes (stdin and stdout; stderr to its log), pinned as ``start`` does.

        It is stopped like every other process of the set.
        """
        return self._popen(name, argv, cpus, piped=True)

    def start(
        self,
        name: str,
        argv: list[str],
        port: int,
        timeout: float = 20.0,
        cpus: frozenset[int] | None = None,
        env: dict[str, str] | None = None,
    ) -> Server:
        """Start ``argv`` (with ``env`` added to the environment), pin it (to ``cpus``, default the set's),
        wait for its port; StartError on failure."""
        proc = self._popen(name, argv, cpus, piped=False, extra_env=env)
        try:
            wait_for_port(port, proc, timeout)
        except StartError:
            self.stop_pid(proc.pid)
            raise
        return Server(name, port, proc)

    def stop(self, server: Server) -> None:
        """Stop one server."""
        self.stop_pid(server.pid)

    def terminate(self, pid: int, grace: float = 3.0) -> int | None:
        """SIGTERM ``pid`` (one we started), SIGKILL after ``grace`` s; reap it; its exit status.

        Negative status: killed by that signal. None: not one of ours (or already stopped).
        The process stays in the set: ``stop_pid`` then cleans up its session.
        """
        proc = self._procs.get(pid)
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()
        return proc.returncode

    def stop_pid(self, pid: int, grace: float = 3.0) -> int | None:
        """``terminate`` ``pid``, then kill anything left in the session created for it.

        Returns the exit status as ``terminate`` does.
        """
        status = self.terminate(pid, grace)
        if self._procs.pop(pid, None) is None:
            return None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)  # the session start_new_session made for it
        return status

    def log_tail(self, name: str, lines: int = 5) -> str:
        """Last lines of a peer's log, for error messages."""
        path = self.log_dir / f"{name}.log"
        try:
            text = path.read_text(errors="replace").rstrip().splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


def _sigterm_to_interrupt(signum: int, frame: object) -> None:
    """Handle SIGTERM exactly like Ctrl-C, so cleanup runs the same way.

    Re-raising as SIGINT (rather than raising here) lets a running event loop
    cancel its main task cleanly instead of the exception surfacing inside
    some protocol callback.
    """
    print(f"bench: signal {signum}, stopping", file=sys.stderr)
    signal.raise_signal(signal.SIGINT)
