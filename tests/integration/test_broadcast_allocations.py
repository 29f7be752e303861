"""A broadcast queues frames without making objects the garbage collector must track per member.

At 10,000 members, a tracked object per member alive until the flush (a fresh outbox list each
time) was promoted by the collections it set off and soon forced full collections, 70-100 ms
each, in the middle of broadcasts.
"""

from __future__ import annotations

import gc

from hubbub import App, Event
from hubbub.testing import serve_app, wait_for

MEMBERS = 300


def room_app() -> App:
    app = App()
    route = app.websocket("/room")

    @route.on_connect
    async def join(event: Event) -> None:
        await event.hub.join("r", event.client_id)

    return app


async def test_a_broadcast_allocates_no_tracked_object_per_member() -> None:
    app = room_app()
    async with serve_app(app) as server:
        clients = [await server.connect("/room") for _ in range(MEMBERS)]
        try:
            await wait_for(lambda: _count_is(app, MEMBERS), timeout=10)
            assert await app.hub.room_broadcast("r", "warm-up") == MEMBERS
            for client in clients:
                assert await client.recv() == "warm-up"
            gc.collect()
            gc.disable()  # keep a collection from resetting the count mid-way
            try:
                before = gc.get_count()[0]
                sent = await app.hub.room_broadcast("r", "counted")  # queued; flushed at the end of the iteration
                grown = gc.get_count()[0] - before
            finally:
                gc.enable()
            assert sent == MEMBERS
            assert grown < MEMBERS // 10, f"{grown} tracked objects still alive for {MEMBERS} deliveries"
            for client in clients:
                assert await client.recv() == "counted"
        finally:
            for client in clients:
                await client.close()


async def _count_is(app: App, members: int) -> bool:
    return await app.hub.room_count("r") == members
