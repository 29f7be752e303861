"""Reconnect delays: exponential backoff with full jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Attempt N waits a uniformly random time in [0, min(maximum, initial * factor**(N-1))]
    seconds ("full jitter"), so clients cut off together do not come back together."""

    initial: float = 0.25
    maximum: float = 10.0
    factor: float = 2.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.factor < 1:
            raise ValueError("backoff needs 0 < initial <= maximum and factor >= 1")

    def ceiling(self, attempt: int) -> float:
        """The longest delay of attempt `attempt` (1 for the first retry)."""
        return min(self.maximum, self.initial * self.factor ** min(max(0, attempt - 1), 64))

    def delay(self, attempt: int) -> float:
        """A random delay for attempt `attempt`."""
        return random.uniform(0.0, self.ceiling(attempt))
