"""How long handlers run, as a histogram kept in plain lists (read by the metrics at scrape time).

Timing every handler run would cost two clock reads and a bucket search per
message; one run in `every` is timed instead and counted `every` times, so the
counts and the sum estimate all runs while the message path pays a countdown.
"""

from __future__ import annotations

from bisect import bisect_left
from time import perf_counter

DEFAULT_BOUNDS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Bucket upper bounds in seconds (a run longer than the last lands in +Inf)."""


class HandlerLatency:
    """A sampled histogram of handler run times (from the event's dispatch to the handler's end)."""

    __slots__ = ("bounds", "counts", "sum", "every", "_countdown")

    def __init__(self, bounds: tuple[float, ...] = DEFAULT_BOUNDS, every: int = 8) -> None:
        if every < 1:
            raise ValueError("every must be at least 1")
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        """Runs per bucket (not cumulative); the last one is +Inf."""
        self.sum = 0.0
        """Seconds spent in handlers (estimated like the counts)."""
        self.every = every
        self._countdown = 0

    def start(self) -> float:
        """A start time if this run is to be timed, else 0.0."""
        if self._countdown:
            self._countdown -= 1
            return 0.0
        self._countdown = self.every - 1
        return perf_counter()

    def stop(self, started: float) -> None:
        """A run that `start` returned `started` for has ended."""
        if started:
            self.observe(perf_counter() - started, self.every)

    def observe(self, seconds: float, weight: int = 1) -> None:
        """Count `weight` runs of `seconds`."""
        self.counts[bisect_left(self.bounds, seconds)] += weight
        self.sum += seconds * weight

    @property
    def count(self) -> int:
        """Runs counted so far."""
        return sum(self.counts)
