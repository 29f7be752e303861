"""Charts of a run for docs/benchmarks.md: echo throughput bars and fan-out against subscribers.

matplotlib is imported only here (Agg backend, no display), so runs that do not
plot do not need it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bench.stats import summarize

if TYPE_CHECKING:
    from bench.report import Run

ECHO_PNG = "benchmarks-echo.png"
FANOUT_PNG = "benchmarks-fanout.png"
_FANOUT_SCENARIOS = (("fanout", "fanout_clients"), ("fanout_10k", "fanout_10k_clients"))
"""Fan-out scenarios and the Settings field holding their subscriber count."""


def _medians(run: Run, name: str, key: str) -> dict[str, tuple[float, float, float]]:
    """Per peer of scenario ``name``: (median, min, max) of metric ``key``, in run order."""
    sc = next((s for s in run.scenarios if s.name == name), None)
    if sc is None:
        return {}
    summary = summarize(run.results, sc, sc.reference(run.reference))
    out: dict[str, tuple[float, float, float]] = {}
    for peer in sc.rows(run.peers):
        s = summary.get(peer, {}).get(key)
        if s is not None:
            out[peer] = (s.median, s.low, s.high)
    return out


def write(run: Run, directory: Path) -> list[Path]:
    """Write the charts the run has data for into ``directory``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    thousands = FuncFormatter(lambda v, _: f"{v:,.0f}")
    written: list[Path] = []
    caption = f"{run.date}; {run.pinning}; median of {run.settings.rounds} round(s), bars/whiskers = min-max"

    echo = _medians(run, "echo", "round_trips_per_s")
    if echo:
        fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
        names = list(echo)
        med = [echo[n][0] for n in names]
        err = [
            [m - echo[n][1] for n, m in zip(names, med, strict=True)],
            [echo[n][2] - m for n, m in zip(names, med, strict=True)],
        ]
        colors = ["#d62728" if n == run.reference else "#7f7f7f" if n == "raw_tcp" else "#1f77b4" for n in names]
        bars = ax.bar(names, med, yerr=err, capsize=4, color=colors)
        ax.bar_label(bars, labels=[f"{m:,.0f}" for m in med], padding=3, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("round trips/s (log scale)")
        fig.suptitle("Echo throughput (raw_tcp = load generator ceiling)")
        ax.set_title(caption, fontsize=7, color="#555555")
        ax.yaxis.set_major_formatter(thousands)
        path = directory / ECHO_PNG
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    series: dict[str, list[tuple[int, float]]] = {}
    for name, field in _FANOUT_SCENARIOS:
        for peer, (median, _, _) in _medians(run, name, "deliveries_per_s").items():
            series.setdefault(peer, []).append((int(getattr(run.settings, field)), median))
    if series:
        fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
        for peer, points in series.items():
            xs, ys = zip(*sorted(points), strict=True)
            ref = peer == run.reference
            ax.plot(xs, ys, marker="o", label=peer, linewidth=2.5 if ref else 1.5, color="#d62728" if ref else None)
            for x, y in zip(xs, ys, strict=True):
                ax.annotate(f"{y:,.0f}", (x, y), textcoords="offset points", xytext=(6, 0), fontsize=7)
        ticks = sorted({x for points in series.values() for x, _ in points})
        ax.set_xscale("log")
        ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(thousands)
        ax.set_xlabel("subscribers (log scale)")
        ax.set_ylabel("deliveries/s (log scale)")
        fig.suptitle("Fan-out: messages delivered per second")
        ax.set_title(caption.replace(", bars/whiskers = min-max", ""), fontsize=7, color="#555555")
        ax.legend(fontsize=8, loc="best")
        path = directory / FANOUT_PNG
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
