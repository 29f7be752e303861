"""Run sizes: the default (full) run and the ``--quick`` smoke run."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Settings:
    """Every knob of a run; scenarios read only from here."""

    rounds: int = 3
    # echo throughput
    echo_connections: int = 64
    echo_depth: int = 16
    """Messages in flight per connection."""
    echo_size: int = 64
    echo_warmup: float = 1.0
    echo_window: float = 3.0
    # fan-out
    fanout_clients: int = 1000
    """Connections on /fanout, the publisher included."""
    fanout_burst: int = 200
    fanout_warmup_bursts: int = 1
    fanout_bursts: int = 4
    fanout_size: int = 64
    fanout_stall: float = 5.0
    """Give up on a burst after this long without any delivery (then count losses)."""
    fanout_paced: int = 100
    """Messages published one at a time after the bursts, for publish-to-last-delivery latency."""
    # fan-out to 10,000 subscribers (one round; bursts kept small so slow peers finish)
    fanout_10k_clients: int = 10_000
    fanout_10k_burst: int = 10
    fanout_10k_bursts: int = 2
    fanout_10k_paced: int = 20
    fanout_10k_limit: float = 90.0
    """Time limit for one peer's cell; a peer over it is reported as skipped."""
    # latency
    latency_warmup: int = 1000
    """Round trips sent and thrown away before the timed ones."""
    latency_round_trips: int = 5000
    # idle memory
    idle_connections: int = 10_000
    """Held open at once: the peer and the load generator each need that many open files."""
    idle_settle_max: float = 5.0
    # hold: many idle connections with the heartbeat running (bench.hold)
    hold_connections: int = 100_000
    """Target; the count actually held is capped by the open-file limits (see bench.hold.Plan)."""
    hold_window: float = 15.0
    """Seconds the connections are held and watched: two heartbeat rounds of bench/apps/hold.py
    (a ping every ping_interval + one sweep tick, 6 s) with room to spare."""
    hold_probe_interval: float = 0.01
    """Pause between two round trips of the /echo probe during the hold window."""
    hold_limit: float = 600.0
    """Time limit for one hold cell, opening and closing the connections included."""
    # general
    connect_concurrency: int = 64
    """Connection attempts in flight while opening many (below listen backlogs)."""
    start_timeout: float = 20.0
    cell_timeout: float = 120.0
    """Upper bound for one scenario on one peer in one round."""


FULL = Settings()
QUICK = replace(
    FULL,
    rounds=1,
    echo_warmup=0.5,
    echo_window=1.0,
    fanout_clients=200,
    fanout_warmup_bursts=1,
    fanout_bursts=2,
    fanout_10k_clients=2000,
    fanout_10k_burst=5,
    fanout_10k_bursts=1,
    fanout_paced=30,
    fanout_10k_paced=10,
    fanout_10k_limit=45.0,
    latency_warmup=200,
    latency_round_trips=2000,
    idle_connections=1000,
    idle_settle_max=2.0,
    hold_connections=2000,
    hold_limit=90.0,
)
