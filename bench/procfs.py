"""Process trees and socket ownership, read from /proc (Linux).

Used to see a ``--workers`` supervisor's children, to tell a process from a
later one that reused its PID, to count which process holds each TCP
socket on a port (``/proc/net/tcp`` inodes matched against ``/proc/PID/fd``),
and to read another process's open-file limit.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

TCP_ESTABLISHED = "01"
TCP_LISTEN = "0A"
TCP_CLOSE_WAIT = "08"
"""The peer has closed; the process holding the socket has not yet."""


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state first); None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat[stat.rindex(")") + 2 :].split()


@dataclass(frozen=True)
class ProcessId:
    """A PID together with its start time, so a reused PID is not mistaken for it."""

    pid: int
    started: int

    @classmethod
    def of(cls, pid: int) -> ProcessId | None:
        """The running process ``pid`` now; None if there is none."""
        fields = _stat_fields(pid)
        return None if fields is None else cls(pid, int(fields[19]))

    def alive(self) -> bool:
        """Whether this very process still runs (a zombie counts as exited)."""
        fields = _stat_fields(self.pid)
        return fields is not None and fields[0] != "Z" and int(fields[19]) == self.started


def children(pid: int) -> list[ProcessId]:
    """Running child processes of ``pid``, by PID."""
    out: list[ProcessId] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None and fields[0] != "Z" and int(fields[1]) == pid:
            out.append(ProcessId(int(entry), int(fields[19])))
    return sorted(out, key=lambda p: p.pid)


def _tcp_inodes(port: int, state: str) -> set[int]:
    """Inodes of IPv4 TCP sockets in ``state`` whose local port is ``port``."""
    inodes: set[int] = set()
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            if fields[3] == state and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(int(fields[9]))
    return inodes


def _socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets ``pid`` has open."""
    inodes: set[int] = set()
    fd_dir = f"/proc/{pid}/fd"
    with contextlib.suppress(FileNotFoundError):
        for fd in os.listdir(fd_dir):
            with contextlib.suppress(OSError):
                target = os.readlink(f"{fd_dir}/{fd}")
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def sockets_by_pid(port: int, pids: list[int], state: str = TCP_ESTABLISHED) -> dict[int, int]:
    """How many TCP sockets with local port ``port`` in ``state`` each of ``pids`` holds."""
    wanted = _tcp_inodes(port, state)
    return {pid: len(wanted & _socket_inodes(pid)) for pid in pids}


def _limit(value: str) -> int:
    return 1 << 62 if value == "unlimited" else int(value)


def nofile_limits(pid: int) -> tuple[int, int]:
    """Soft and hard RLIMIT_NOFILE of ``pid`` (from /proc/PID/limits; unlimited as a large number)."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return _limit(soft), _limit(hard)
    raise RuntimeError(f"no open-file limit for pid {pid}")
