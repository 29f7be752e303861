"""The app of the hold scenarios: /echo with a heartbeat fast enough to watch.

The server's timer sweep pings every connection that has been silent for
``PING_INTERVAL`` seconds and drops one whose ping is not answered within
``PING_TIMEOUT``; with these values a bounded hold window sees several rounds.
``app`` runs with hubbub's default collector freezing (``gc_freeze_batch``);
``app_unfrozen`` leaves CPython's collector alone, for the before/after figures.

With ``HUBBUB_BENCH_GC_LOG`` set to a directory, every process serving the app
(each worker of ``--workers``) appends one line per full (generation 2)
collection to ``<directory>/<pid>.gc``: the wall-clock time it ended and its
pause in ms, timed by ``gc.callbacks``.

Run: hubbub run bench/apps/hold.py:app --port 8000
"""

import gc
import os
import time
from pathlib import Path
from typing import Any, TextIO

from hubbub import App, Event

PING_INTERVAL = 5.0
PING_TIMEOUT = 10.0
GC_LOG_ENV = "HUBBUB_BENCH_GC_LOG"


def log_full_collections(directory: Path) -> None:
    """Time every generation-2 collection of this process (and of its forks) into ``directory``."""
    logs: dict[int, TextIO] = {}
    started = 0.0

    def timed(phase: str, info: dict[str, Any]) -> None:
        nonlocal started
        if info["generation"] != 2:
            return
        if phase == "start":
            started = time.perf_counter()
            return
        pause_ms = (time.perf_counter() - started) * 1000
        pid = os.getpid()
        if pid not in logs:
            logs[pid] = (directory / f"{pid}.gc").open("a", buffering=1)
        logs[pid].write(f"{time.time():.3f} {pause_ms:.3f}\n")

    gc.callbacks.append(timed)


def echo_app(**options: Any) -> App:
    """/echo with the hold heartbeat and ``options``."""
    app = App(ping_interval=PING_INTERVAL, ping_timeout=PING_TIMEOUT, **options)
    echo = app.websocket("/echo")

    @echo.on_message
    async def echo_back(event: Event) -> None:
        """Send every message back to its sender."""
        await event.send(event.data)

    return app


if GC_LOG_ENV in os.environ:
    log_full_collections(Path(os.environ[GC_LOG_ENV]))

app = echo_app()
app_unfrozen = echo_app(gc_freeze_batch=None)
