"""An app for the shutdown tests: a handler that takes a while and leaves marker files.

A message "<seconds> <name>" makes the handler answer "started <name>", sleep, then
write <name>.done in $HUBBUB_TEST_MARKERS (or <name>.cancelled if it is cancelled); the
disconnect handler, queued behind it, then writes <name>.disconnect. GET /slow is an
HTTP request that takes half a second.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from hubbub import App, Event, Request

MARKERS = Path(os.environ.get("HUBBUB_TEST_MARKERS", "."))

app = App(
    shutdown_timeout=float(os.environ.get("HUBBUB_TEST_SHUTDOWN_TIMEOUT", "3")),
    shutdown_message="server going away",
    close_timeout=1.0,
)


work = app.websocket("/work")


@work.on_message
async def run_job(event: Event) -> None:
    """Sleep as asked, then leave a marker."""
    seconds, name = event.text.split()
    event.connection.state["name"] = name
    await event.send(f"started {name}")
    try:
        await asyncio.sleep(float(seconds))
    except asyncio.CancelledError:
        (MARKERS / f"{name}.cancelled").write_text("cancelled")
        raise
    (MARKERS / f"{name}.done").write_text("done")


@work.on_disconnect
async def goodbye(event: Event) -> None:
    """After a short wait, leave <name>.disconnect holding the close code."""
    name = event.connection.state.get("name")
    if name is not None:
        await asyncio.sleep(0.1)
        (MARKERS / f"{name}.disconnect").write_text(str(event.close_code))


@app.get("/slow")
async def slow_page(request: Request) -> dict[str, str]:
    """An HTTP request that takes a while; leaves http.started when it begins."""
    (MARKERS / "http.started").write_text("started")
    await asyncio.sleep(0.5)
    return {"finished": "yes"}


@app.on_shutdown
def hook() -> None:
    """Leave a marker that shutdown hooks ran."""
    (MARKERS / "shutdown-hook").write_text("ran")
