"""A closed connection gives its zlib state back at once, not whenever the garbage collector
reaches the reference cycles a closed connection sits in.

Found by the soak run with `--compression shared`: memory rose and kept creeping under churn.
tracemalloc showed zlib windows (32 KiB inflating, ~260 KiB deflating per connection) held by
connections already closed, freed only by full collections, which churn makes rare."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect as ws_connect

from hubbub import App, Event
from hubbub.testing import serve_app, wait_for

CONNECTIONS = 12


@pytest.fixture
def no_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()
        gc.enable()


def zlib_bytes_held() -> int:
    """Bytes still allocated by hubbub's deflate module (the zlib objects it made)."""
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, "*hubbub/transport/deflate.py")])
    return sum(stat.size for stat in snapshot.statistics("filename"))


@pytest.mark.parametrize("mode", ["shared", "dedicated"])
async def test_closing_compressed_connections_frees_their_zlib_state_without_a_collection(
    mode: str, no_collector: None
) -> None:
    app = App(compression=mode, ping_interval=None)

    @app.websocket("/echo")
    async def echo(event: Event) -> None:
        await event.send(event.data)

    message = "compress me " * 200
    async with serve_app(app) as server:
        for _ in range(CONNECTIONS):
            async with ws_connect(server.url("/echo"), compression="deflate") as ws:
                await ws.send(message)
                assert await ws.recv() == message
        await wait_for(lambda: not server.running.server.websockets)
        await wait_for(lambda: zlib_bytes_held() < 32 * 1024, timeout=2.0)
