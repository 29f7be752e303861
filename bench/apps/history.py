"""The app of the history scenario: /fanout publishes envelopes to one room, kept or not.

Every message a client sends on /fanout is published to the "fanout" room as an
envelope `{"type": "m", "data": <message>}`, through `room_broadcast`, and every
/fanout client is in that room (members on this raw route get the JSON envelope).
`app` keeps the room's history (its publications get offsets and are appended to
the store: memory by default, `--store sqlite:///...`, or Redis with `--broker`);
`plain` is the same app without history, the baseline. `relay` keeps history but
its handler does not wait for each publication to be kept before taking the next
message (it starts the publish as a task): with a durable store, the publications
of one loop iteration then share one commit (SQLite) or one pipeline (Redis), and
their deliveries one write per connection.

Run: hubbub run bench/apps/history.py:app --port 8000 [--store URL | --broker URL]
"""

import asyncio
from typing import Any

from hubbub import App, Event
from hubbub.protocol.envelope import Envelope

HISTORY_SIZE = 10_000
HISTORY_TTL = 600.0


def make_app(*, history: bool, wait: bool = True) -> App:
    """The /fanout app, with or without history in its room; `wait=False`: the handler does not wait for
    the publication to be kept."""
    made = App()
    pending: set[asyncio.Task[Any]] = set()
    if history:
        made.history("fanout", size=HISTORY_SIZE, ttl=HISTORY_TTL)
    fanout = made.websocket("/fanout")

    @fanout.on_connect
    async def join(event: Event) -> None:
        await event.hub.join("fanout", event.client_id)

    @fanout.on_message
    async def publish(event: Event) -> None:
        sent = event.hub.room_broadcast("fanout", Envelope("m", event.data))
        if wait:
            await sent
            return
        task = asyncio.ensure_future(sent)
        pending.add(task)
        task.add_done_callback(pending.discard)

    return made


app = make_app(history=True)
plain = make_app(history=False)
relay = make_app(history=True, wait=False)
