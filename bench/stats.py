"""Results of a run, and their summary: medians, ranges, ratios within a round."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from bench.scenarios import Scenario


@dataclass
class Cell:
    """One scenario on one peer in one round: metrics, or the error instead."""

    round: int
    metrics: dict[str, float] | None = None
    error: str | None = None


@dataclass
class Results:
    """Everything measured in a run, keyed by scenario name, then peer name."""

    cells: dict[str, dict[str, list[Cell]]] = field(default_factory=dict)
    failed_peers: dict[str, str] = field(default_factory=dict)
    """Peers that could not be started, with the reason."""

    def add(self, scenario: str, peer: str, cell: Cell) -> None:
        """Record one cell."""
        self.cells.setdefault(scenario, {}).setdefault(peer, []).append(cell)


@dataclass
class Summary:
    """One metric of one peer over the rounds."""

    median: float
    low: float
    high: float
    ratio: float | None
    """Median over rounds of value / reference value in the same round."""
    rounds: int


def _finite(x: float | None) -> bool:
    return x is not None and not math.isnan(x)


def summarize(results: Results, scenario: Scenario, reference: str) -> dict[str, dict[str, Summary]]:
    """Per peer, per metric key: the summary over that peer's successful rounds."""
    by_peer = results.cells.get(scenario.name, {})
    ref_rounds = {c.round: c.metrics for c in by_peer.get(reference, []) if c.metrics}
    out: dict[str, dict[str, Summary]] = {}
    for peer, cells in by_peer.items():
        ok = [c for c in cells if c.metrics]
        if not ok:
            continue
        out[peer] = {}
        for m in scenario.metrics:
            pairs = [(c.round, c.metrics[m.key]) for c in ok if c.metrics and _finite(c.metrics.get(m.key))]
            values = [v for _, v in pairs]
            if not values:
                continue
            ratios = [
                v / ref[m.key]
                for r, v in pairs
                if (ref := ref_rounds.get(r)) is not None and _finite(ref.get(m.key)) and ref[m.key]
            ]
            center = float(sum(values)) if m.total else statistics.median(values)
            out[peer][m.key] = Summary(
                median=center,
                low=min(values),
                high=max(values),
                ratio=statistics.median(ratios) if ratios and m.compare else None,
                rounds=len(values),
            )
    return out
