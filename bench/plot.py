"""Charts of a run for docs/benchmarks.md: echo throughput bars and fan-out against subscribers.

Drawn at the end of a full run, or again from a results JSON with
``python -m bench.plot [bench/results/latest.json] [--out docs]``. matplotlib is
imported only when drawing (Agg backend, no display).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from bench.stats import summarize

if TYPE_CHECKING:
    from bench.report import Run

ECHO_PNG = "benchmarks-echo.png"
FANOUT_PNG = "benchmarks-fanout.png"
_FANOUT_SCENARIOS = (("fanout", "fanout_clients"), ("fanout_10k", "fanout_10k_clients"))
"""Fan-out scenarios and the Settings field holding their subscriber count."""
_REFERENCE_COLOR = "#d62728"
_CEILING_COLOR = "#7f7f7f"
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
"""Other peers' colors (no red or grey: those are the reference's and raw_tcp's)."""

Spread = dict[str, tuple[float, float, float]]
"""Per peer, in run order: (median, min, max) of one metric."""


def _spreads_of_run(run: Run, name: str, key: str) -> Spread:
    sc = next((s for s in run.scenarios if s.name == name), None)
    if sc is None:
        return {}
    summary = summarize(run.results, sc, sc.reference(run.reference))
    out: Spread = {}
    for peer in sc.rows(run.peers):
        s = summary.get(peer, {}).get(key)
        if s is not None:
            out[peer] = (s.median, s.low, s.high)
    return out


def _spreads_of_json(data: dict[str, Any], name: str, key: str) -> Spread:
    out: Spread = {}
    for peer, entry in data["scenarios"].get(name, {}).get("peers", {}).items():
        s = entry["summary"].get(key)
        if s is not None and s.get("median") is not None:
            out[peer] = (s["median"], s["min"], s["max"])
    return out


def write(run: Run, directory: Path) -> list[Path]:
    """Write the charts the run has data for into ``directory``; return their paths."""
    fanout = {
        int(getattr(run.settings, field)): _spreads_of_run(run, name, "deliveries_per_s")
        for name, field in _FANOUT_SCENARIOS
    }
    caption = f"{run.date}; {run.pinning}; median of {run.settings.rounds} round(s)"
    return draw(_spreads_of_run(run, "echo", "round_trips_per_s"), fanout, run.reference, caption, directory)


def write_from_json(path: Path, directory: Path) -> list[Path]:
    """Write the charts from a results JSON written by ``python -m bench``."""
    data = orjson.loads(path.read_bytes())
    fanout = {
        int(data["settings"][field]): _spreads_of_json(data, name, "deliveries_per_s")
        for name, field in _FANOUT_SCENARIOS
    }
    caption = f"{data['date']}; {data['pinning']}; median of {data['settings']['rounds']} round(s)"
    return draw(_spreads_of_json(data, "echo", "round_trips_per_s"), fanout, data["reference"], caption, directory)


def draw(echo: Spread, fanout: dict[int, Spread], reference: str, caption: str, directory: Path) -> list[Path]:
    """Echo bars, and fan-out lines over subscriber counts; a chart without data is skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    thousands = FuncFormatter(lambda v, _: f"{v:,.0f}")
    written: list[Path] = []
    peers = list(dict.fromkeys([*echo, *(p for spread in fanout.values() for p in spread)]))
    others = iter(_COLORS * 2)
    color = {
        p: _REFERENCE_COLOR if p == reference else _CEILING_COLOR if p == "raw_tcp" else next(others) for p in peers
    }

    if echo:
        fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
        names = list(echo)
        med = [echo[n][0] for n in names]
        err = [[echo[n][0] - echo[n][1] for n in names], [echo[n][2] - echo[n][0] for n in names]]
        bars = ax.bar(names, med, yerr=err, capsize=4, color=[color[n] for n in names])
        ax.bar_label(bars, labels=[f"{m:,.0f}" for m in med], padding=3, fontsize=8)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(thousands)
        ax.set_ylabel("round trips/s (log scale)")
        ax.tick_params(axis="x", labelrotation=20)
        fig.suptitle("Echo throughput (raw_tcp = load generator ceiling)")
        ax.set_title(caption + "; whiskers = min-max", fontsize=7, color="#555555")
        path = directory / ECHO_PNG
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    series: dict[str, list[tuple[int, float]]] = {}
    for subscribers, spread in sorted(fanout.items()):
        for peer, (median, _, _) in spread.items():
            series.setdefault(peer, []).append((subscribers, median))
    if series:
        fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
        for peer, points in series.items():
            xs, ys = zip(*points, strict=True)
            label = f"{peer}: " + " / ".join(f"{y:,.0f}" for y in ys)
            ax.plot(xs, ys, marker="o", label=label, color=color[peer], linewidth=2.5 if peer == reference else 1.5)
        ticks = sorted({x for points in series.values() for x, _ in points})
        ax.set_xscale("log")
        ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(thousands)
        ax.set_xlabel("subscribers (log scale)")
        ax.set_ylabel("deliveries/s (log scale)")
        fig.suptitle("Fan-out: messages delivered per second")
        ax.set_title(caption, fontsize=7, color="#555555")
        title = "deliveries/s at " + " / ".join(f"{t:,}" for t in ticks)
        ax.legend(title=title, fontsize=8, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        path = directory / FANOUT_PNG
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Redraw the charts from a results JSON."""
    root = Path(__file__).resolve().parent.parent
    p = argparse.ArgumentParser(prog="python -m bench.plot", description=__doc__)
    p.add_argument("json", type=Path, nargs="?", default=root / "bench" / "results" / "latest.json")
    p.add_argument("--out", type=Path, default=root / "docs", help="directory for the PNGs (default: docs)")
    args = p.parse_args(argv)
    for path in write_from_json(args.json, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
