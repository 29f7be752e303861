"""The server freezes connection objects into the permanent generation in batches.

A full collection traverses only generations 0-2, so objects moved into the
permanent generation by `gc.freeze` no longer make its pause grow. The checks
call the freezer directly (no timers), with a small batch, on real upgraded
connections.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from hubbub import App, ConfigurationError, Event
from hubbub.testing import serve_app, wait_for
from hubbub.transport.gcfreeze import GcFreezer
from hubbub.transport.server import Server

BATCH = 20


def echo_app(**options: object) -> App:
    app = App(**options)
    echo = app.websocket("/echo")

    @echo.on_message
    async def back(event: Event) -> None:
        await event.send(event.data)

    return app


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    """Leave the test process's collector as it was."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def in_collected_generations(objects: list[object]) -> int:
    """How many of `objects` a full collection would traverse."""
    wanted = {id(o) for o in objects}
    return sum(id(o) in wanted for o in gc.get_objects())


def manual_freezer(server: Server) -> GcFreezer:
    assert server.gc_freezer is not None  # on by default
    server.gc_freezer.stop()
    server.gc_freezer = GcFreezer(asyncio.get_running_loop(), server, batch=BATCH, interval=3600)
    return server.gc_freezer


async def test_a_batch_of_handshakes_is_frozen() -> None:
    async with serve_app(echo_app()) as srv:
        server = srv.running.server
        freezer = manual_freezer(server)
        clients = [await srv.connect("/echo") for _ in range(BATCH)]
        await wait_for(lambda: server.open_now == BATCH)
        conns = list(server.websockets)
        assert in_collected_generations(conns) == BATCH
        before = gc.get_freeze_count()
        freezer.check()
        assert freezer.freezes == 1
        assert gc.get_freeze_count() > before
        assert in_collected_generations(conns) == 0
        for client in clients:
            await client.close()


async def test_fewer_than_a_batch_is_not_frozen() -> None:
    async with serve_app(echo_app()) as srv:
        server = srv.running.server
        freezer = manual_freezer(server)
        clients = [await srv.connect("/echo") for _ in range(BATCH - 1)]
        await wait_for(lambda: server.open_now == BATCH - 1)
        freezer.check()
        assert freezer.freezes == 0
        assert gc.get_freeze_count() == 0
        assert in_collected_generations(list(server.websockets)) == BATCH - 1
        for client in clients:
            await client.close()


async def test_closes_thaw_and_collect_once_the_population_turned_over() -> None:
    async with serve_app(echo_app()) as srv:
        server = srv.running.server
        freezer = manual_freezer(server)
        clients = [await srv.connect("/echo") for _ in range(2 * BATCH)]
        await wait_for(lambda: server.open_now == 2 * BATCH)
        freezer.check()
        assert freezer.freezes == 1
        for client in clients[: BATCH - 1]:
            await client.close()
        await wait_for(lambda: server.open_now == BATCH + 1)
        freezer.check()
        assert freezer.thaws == 0  # one close short of a batch
        await clients[BATCH - 1].close()
        await wait_for(lambda: server.open_now == BATCH)
        freezer.check()
        assert freezer.thaws == 1
        assert gc.get_freeze_count() > 0  # what is still alive is frozen again
        assert in_collected_generations(list(server.websockets)) == 0
        for client in clients[BATCH:]:
            await client.close()


async def test_none_leaves_the_collector_alone() -> None:
    async with serve_app(echo_app(gc_freeze_batch=None)) as srv:
        assert srv.running.server.gc_freezer is None


@pytest.mark.parametrize("batch", [0, -5])
def test_a_batch_under_one_is_refused(batch: int) -> None:
    with pytest.raises(ConfigurationError, match="gc_freeze_batch"):
        App(gc_freeze_batch=batch)


def test_a_batch_of_one_is_accepted() -> None:
    App(gc_freeze_batch=1)


class Node:
    """A cycle the collector has to find."""

    def __init__(self) -> None:
        self.me = self


async def test_startup_freeze_collects_garbage_then_freezes_what_lives() -> None:
    async with serve_app(echo_app()) as srv:
        server = srv.running.server
        assert server.gc_freezer is not None
        alive = Node()
        garbage = Node()
        gone = weakref.ref(garbage)
        del garbage
        server.gc_freezer.freeze_startup()
        assert gone() is None  # collected, not frozen
        assert in_collected_generations([alive]) == 0
        assert gc.get_freeze_count() > 0
