"""The run loop: rounds x scenarios x peers, one fresh peer process per cell.

Rounds are interleaved (round 1 measures every peer, then round 2, ...) and
the peer order rotates each round so no peer always goes first. A peer that
fails to start is reported and skipped from then on; a scenario that fails on
a peer is recorded for that cell and the run goes on.

Setup (scale-out) scenarios take the place of peers with their own hubbub
deployments, started fresh for every cell and rotated the same way; they run
when the hubbub peer is selected. A setup that fails to start, or does not
stop cleanly, is an error for that cell only.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop

from bench.deploy import Setup
from bench.peers import REFERENCE, Peer
from bench.procs import CpuPlan, ProcessSet, StartError, free_port, raise_nofile_limit
from bench.scenarios import PeerScenario, Scenario, SetupScenario
from bench.settings import Settings
from bench.stats import Cell, Results


class Skipped(RuntimeError):
    """A cell given up on (over its scenario's time limit); its message is the whole report."""


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, Skipped):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def run(
    peers: list[Peer],
    scenarios: list[Scenario],
    settings: Settings,
    root: Path,
    cpus: CpuPlan,
    log: Callable[[str], None] = print,
) -> Results:
    """Measure every scenario on every peer for ``settings.rounds`` rounds.

    This process is the load generator; it should already be pinned (``cpus.pin_self``).
    """
    raise_nofile_limit()
    results = Results()
    log_dir = root / "bench" / "results" / "logs"
    with ProcessSet(log_dir, root, cpus.server) as procs:
        for rnd in range(1, settings.rounds + 1):
            shift = (rnd - 1) % len(peers)
            order = peers[shift:] + peers[:shift]
            for sc in scenarios:
                if rnd > sc.rounds(settings):
                    continue
                if isinstance(sc, SetupScenario):
                    if any(p.name == REFERENCE for p in peers):
                        _run_setups(sc, rnd, procs, cpus, settings, results, log)
                    continue
                assert isinstance(sc, PeerScenario)
                for peer in order:
                    if peer.name in results.failed_peers or sc.name not in peer.scenarios:
                        continue
                    port = free_port()
                    try:
                        server = procs.start(peer.name, peer.command(port), port, settings.start_timeout)
                    except StartError as e:
                        tail = procs.log_tail(peer.name, 3).replace("\n", " / ")
                        why = f"round {rnd}, {sc.name}: {e}" + (f" ({tail})" if tail else "")
                        results.failed_peers[peer.name] = why
                        log(f"[round {rnd}] {peer.name}: failed to start ({why}); skipped from now on")
                        continue
                    limit = sc.cell_timeout(settings)
                    try:
                        metrics = uvloop.run(_bounded(sc.run(server, peer, settings), limit))
                        if server.proc.poll() is not None:
                            raise RuntimeError(f"peer exited with code {server.proc.returncode}")
                        results.add(sc.name, peer.name, Cell(rnd, metrics=metrics))
                        log(f"[round {rnd}] {sc.name:<6} {peer.name:<12} {_shown(sc, metrics)}")
                    except Exception as e:  # any failure is a result
                        results.add(sc.name, peer.name, Cell(rnd, error=_one_line(e)))
                        failed = "" if isinstance(e, Skipped) else "FAILED "
                        log(f"[round {rnd}] {sc.name:<6} {peer.name:<12} {failed}{_one_line(e)}")
                    finally:
                        procs.stop(server)
                    sys.stdout.flush()
    return results


async def _bounded(run: Awaitable[dict[str, float]], limit: float) -> dict[str, float]:
    """``run`` within ``limit`` seconds; :class:`Skipped` when over."""
    try:
        return await asyncio.wait_for(run, limit)
    except TimeoutError:
        raise Skipped(f"skipped: not done within the {limit:g} s time limit") from None


def _shown(sc: Scenario, metrics: dict[str, float]) -> str:
    return ", ".join(f"{m.label} {metrics[m.key]:{m.fmt}}" for m in sc.metrics if m.key in metrics)


def _run_setups(
    sc: SetupScenario,
    rnd: int,
    procs: ProcessSet,
    cpus: CpuPlan,
    settings: Settings,
    results: Results,
    log: Callable[[str], None],
) -> None:
    """One round of a setup scenario: each setup started, measured and stopped in turn."""
    shift = (rnd - 1) % len(sc.setups)
    for setup in sc.setups[shift:] + sc.setups[:shift]:
        if not setup.pinned:
            cpus.unpin_self()
        try:
            cell = _setup_cell(sc, setup, rnd, procs, cpus, settings)
        finally:
            cpus.pin_self()
        results.add(sc.name, setup.name, cell)
        shown = _shown(sc, cell.metrics) if cell.metrics else f"FAILED {cell.error}"
        log(f"[round {rnd}] {sc.name} {setup.name:<14} {shown}")
        sys.stdout.flush()


def _setup_cell(
    sc: SetupScenario, setup: Setup, rnd: int, procs: ProcessSet, cpus: CpuPlan, settings: Settings
) -> Cell:
    try:
        deployment = setup.start(procs, cpus, settings)
    except StartError as e:
        return Cell(rnd, error=f"failed to start: {_one_line(e)}")
    cell: Cell
    try:
        metrics = uvloop.run(asyncio.wait_for(sc.run(deployment, settings), sc.cell_timeout(settings)))
        deployment.check_alive()
        cell = Cell(rnd, metrics=metrics)
    except Exception as e:  # any failure is a result
        cell = Cell(rnd, error=_one_line(e))
    finally:
        problems = deployment.stop(procs)
    if problems:
        # Not stopping cleanly fails the cell even when the measurement itself worked.
        before = f"measured: {_shown(sc, cell.metrics)}" if cell.metrics else cell.error
        cell = Cell(rnd, error="stop: " + "; ".join(problems) + f" ({before})")
    return cell
