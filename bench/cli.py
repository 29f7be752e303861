"""Command line of ``python -m bench``."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

from bench import machine, plot, report, runner
from bench.peers import PEERS, REFERENCE
from bench.procs import CpuPlan, machine_busy_pct
from bench.scenarios import SCENARIOS
from bench.settings import FULL, QUICK

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
BUSY_WARNING_PCT = 15.0
"""Warn when the machine is busier than this (% of one core) before the run."""


def _names(value: str, known: dict[str, object], what: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument(
        "--peers",
        type=lambda v: _names(v, dict(PEERS), "peer"),
        default=list(PEERS),
        help=f"comma-separated peers (default: {','.join(PEERS)})",
    )
    p.add_argument(
        "--scenarios",
        type=lambda v: _names(v, dict(SCENARIOS), "scenario"),
        default=list(SCENARIOS),
        help=f"comma-separated scenarios (default: {','.join(SCENARIOS)})",
    )
    p.add_argument("--quick", action="store_true", help="smoke run: 1 round, short windows, fewer connections")
    p.add_argument("--rounds", type=int, help="override the number of rounds")
    p.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "latest.json", help="results JSON path")
    p.add_argument(
        "--docs",
        type=Path,
        help=f"markdown page to (re)generate (default: {DOCS.relative_to(ROOT)}, not written by --quick runs)",
    )
    p.add_argument("--no-docs", action="store_true", help="do not touch the markdown page")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the process exit status."""
    args = parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.rounds:
        settings = replace(settings, rounds=args.rounds)
    peers = [PEERS[n] for n in args.peers]
    scenarios = [SCENARIOS[n] for n in args.scenarios]
    command = shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)])
    host = machine.describe()  # before pinning narrows our own CPU set
    cpus = CpuPlan.split()
    cpus.pin_self()
    pinning = cpus.describe()
    started = time.monotonic()
    print(
        f"bench: peers {','.join(args.peers)}; scenarios {','.join(args.scenarios)}; "
        f"{settings.rounds} round(s); {pinning}",
        flush=True,
    )
    try:
        busy = machine_busy_pct()
        if busy > BUSY_WARNING_PCT:
            print(
                f"bench: warning: other processes already use {busy:.0f}% of a core; "
                "results will be noisy (see the 'other CPU %' columns)",
                flush=True,
            )
        results = runner.run(peers, scenarios, settings, ROOT, cpus)
    except KeyboardInterrupt:
        print("\nbench: interrupted; every peer stopped", file=sys.stderr)
        return 130
    run = report.Run(
        command=command,
        date=time.strftime("%Y-%m-%d %H:%M %Z"),
        machine=host,
        pinning=pinning,
        busy_before_pct=busy,
        settings=settings,
        reference=REFERENCE,
        peers=args.peers,
        scenarios=scenarios,
        results=results,
    )
    print(report.console(run))
    report.write_json(run, args.json)
    written = [str(args.json)]
    docs = args.docs or (None if args.quick else DOCS)
    if docs is not None and not args.no_docs:
        report.write_markdown(run, docs)
        written.append(str(docs))
        written += [str(p) for p in plot.write(run, docs.parent)]
    print(f"\nbench: {time.monotonic() - started:.0f} s; wrote {', '.join(written)}")
    measured = any(c.metrics for by_peer in results.cells.values() for cells in by_peer.values() for c in cells)
    return 0 if measured else 1
