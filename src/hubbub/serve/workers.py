"""`hubbub run --workers N`: N processes serving one port (SO_REUSEPORT), supervised.

The supervisor starts each worker as `python -m hubbub run ... --reuse-port`,
forwards SIGTERM/SIGINT to them, restarts a worker that dies unexpectedly (at
most `max_restarts` times a minute), and exits 0 once all have stopped cleanly.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from types import FrameType

logger = logging.getLogger("hubbub.workers")


def worker_command(argv: list[str]) -> list[str]:
    """The command line of one worker, from the supervisor's own arguments."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--workers":
            skip = True
            continue
        if arg.startswith("--workers="):
            continue
        out.append(arg)
    return [sys.executable, "-m", "hubbub", *out, "--reuse-port"]


def supervise(command: list[str], count: int, max_restarts: int = 10) -> int:
    """Run `count` workers until a signal asks them to stop; return the exit status."""
    procs: dict[int, subprocess.Popen[bytes]] = {}
    stopping = False
    restarts: list[float] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for index in range(count):
            procs[index] = subprocess.Popen(command)
        logger.info("started %d workers: %s", count, ", ".join(str(p.pid) for p in procs.values()))
        status = 0
        while procs:
            for index, proc in list(procs.items()):
                code = proc.poll()
                if code is None:
                    continue
                del procs[index]
                if stopping:
                    status = status or code
                    continue
                now = time.monotonic()
                restarts[:] = [t for t in restarts if now - t < 60]
                if len(restarts) >= max_restarts:
                    logger.error("worker %d exited with %s; too many restarts, stopping", proc.pid, code)
                    stop(signal.SIGTERM, None)
                    status = 1
                    continue
                restarts.append(now)
                logger.warning("worker %d exited with %s; restarting", proc.pid, code)
                procs[index] = subprocess.Popen(command)
            time.sleep(0.1)
        return status
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
