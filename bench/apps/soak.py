"""The app of the soak run: rooms with broadcasts, and a stats route to sample.

- /soak/{room}: joins `room` on connect; every message is broadcast to the room.
- GET /_soak/stats: open WebSocket connections, asyncio tasks, and (when the
  process was started with SOAK_TRACEMALLOC=1) the Python heap in use and the
  allocation sites that grew most since the first sample.

Run: hubbub run bench/apps/soak.py:app --port 8000 [--compression shared] [--broker redis://...]
"""

from __future__ import annotations

import asyncio
import gc
import os
import tracemalloc
from typing import Any

from hubbub import App, Event

app = App(ping_interval=5.0, ping_timeout=10.0)
TRACE = os.environ.get("SOAK_TRACEMALLOC") == "1"
_baseline: list[tracemalloc.Snapshot] = []

rooms = app.websocket("/soak/{room}")


@rooms.on_connect
async def join_room(event: Event) -> None:
    """Every connection joins the room its path names."""
    await event.hub.join(event.params["room"], event.client_id)


@rooms.on_message
async def broadcast(event: Event) -> None:
    """Every message goes to everyone in the sender's room."""
    await event.hub.room_broadcast(event.params["room"], event.data)


@app.on_startup
def start_tracing() -> None:
    """Trace Python allocations when asked (costs CPU; for leak hunting only)."""
    if TRACE:
        tracemalloc.start(8)


@app.get("/_soak/stats")
async def stats(request: Any) -> dict[str, Any]:
    """Counts that must stay flat under churn."""
    out: dict[str, Any] = {
        "websockets": await app.hub.connection_count(),
        "tasks": len(asyncio.all_tasks()),
    }
    if TRACE:
        out["collected"] = gc.collect()  # count only what is still reachable
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen *>")]
        )
        out["traced_bytes"] = tracemalloc.get_traced_memory()[0]
        if not _baseline:
            _baseline.append(snapshot)
        growth = snapshot.compare_to(_baseline[0], "traceback")[:5]
        out["top_growth"] = [
            {"bytes": stat.size_diff, "count": stat.count_diff, "where": stat.traceback.format()[-6:]}
            for stat in growth
        ]
    return out
