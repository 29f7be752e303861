"""The hold scenario: many idle connections on one hubbub process with its heartbeat running.

The target is ``hold_connections`` (100,000 in a full run). One process can
hold only as many sockets as its open-file limit allows, and one source
address only as many outgoing connections as the ephemeral port range, so
the count actually used is the target capped by the server's RLIMIT_NOFILE
(the harness raises the soft limit to the hard one; children inherit it),
and the client side is spread over as many load-generator processes as
needed, each on its own source address 127.0.0.2, 127.0.0.3, ...
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.measure import spread

FD_RESERVE = 100
"""Open files a process keeps for everything but held connections (listener, epoll, modules, logs, pipes)."""
PER_CLIENT_MAX = 25_000
"""Most connections one client process holds."""
PORT_MARGIN = 1_000
"""Ephemeral ports of a source address left unused by its client process."""
FIRST_SOURCE = 2
"""Client process ``i`` connects from 127.0.0.(FIRST_SOURCE + i)."""
SOURCES = 253
"""Source addresses available: 127.0.0.2 to 127.0.0.254."""


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
    def make(cls, target: int, server_nofile: int, client_nofile: int, ports: int) -> Plan:
        """The target capped by the server's limit; as few client processes as their limits allow."""
        per_client_cap = min(PER_CLIENT_MAX, client_nofile - FD_RESERVE, ports - PORT_MARGIN)
        count = min(target, server_nofile - FD_RESERVE, max(0, per_client_cap) * SOURCES)
        if count <= 0:
            raise RuntimeError(
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
