"""Registry of servers under test ("peers").

A peer is a command that starts a server on a given port implementing the
bench contract: ``/echo`` sends every message back to its sender, ``/fanout``
broadcasts every message to every ``/fanout`` client (sender included).
Socket.IO peers serve the same contract as events (:mod:`bench.wire`).

Adding a peer = one small file in this package + one line in ``PEERS``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.wire import PLAIN, SOCKETIO, Wire

ALL_SCENARIOS = frozenset({"echo", "fanout", "fanout_10k", "latency", "idle"})


@dataclass(frozen=True)
class Peer:
    """How to start one server under test and what it can be measured on."""

    name: str
    command: Callable[[int], list[str]]
    """Build the argv that serves on ``127.0.0.1:port``."""
    scenarios: frozenset[str] = field(default=ALL_SCENARIOS)
    """Scenario names this peer takes part in."""
    raw_tcp: bool = False
    """True for a plain TCP echo (no WebSocket handshake, no framing)."""
    socketio: bool = False
    """True for a Socket.IO server (Engine.IO v4 over WebSocket)."""
    helpers: bool = False
    """True if the peer's child processes serve it (redis-server): their CPU is reported apart."""

    @property
    def wire(self) -> Wire:
        """How the load generator speaks to this peer."""
        return SOCKETIO if self.socketio else PLAIN


def module(name: str) -> Callable[[int], list[str]]:
    """Command for a peer module under ``bench.peers`` taking ``--port``."""
    return lambda port: [sys.executable, "-m", f"bench.peers.{name}", "--port", str(port)]


def hubbub(port: int) -> list[str]:
    """Command for hubbub itself, serving the bench contract app.

    Logging is set to warnings: like the other peers, no log line per connection.
    """
    return [
        sys.executable, "-m", "hubbub", "run", "examples/echo.py:app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip


REFERENCE = "hubbub"
"""Ratios are reported against this peer."""

PEERS: dict[str, Peer] = {
    p.name: p
    for p in (
        Peer("hubbub", hubbub),
        Peer("hubbub_redis", module("hubbub_redis"), helpers=True),
        Peer("websockets", module("websockets_server")),
        Peer("aiohttp", module("aiohttp_server")),
        Peer("picows", module("picows_server")),
        Peer("starlette", module("starlette_server")),
        Peer("hubbub_asgi", module("hubbub_asgi"), frozenset({"echo", "fanout", "latency"})),
        Peer("socketio", module("socketio_server"), socketio=True),
        Peer("raw_tcp", module("raw_tcp_echo"), frozenset({"echo", "latency"}), raw_tcp=True),
    )
}
