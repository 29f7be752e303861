"""An app for the memory tests, run as a child process so its RSS can be measured alone.

- /fanout/close and /fanout/drop: every message is broadcast to the route's room
  (policy "close" or "drop"), the sender included.
- /ask (channel route): the event "start" makes the server ask the client "question"
  and wait for the answer; once answered it sends the event "answered".
- GET /healthz (built in): the pipelining target.
"""

from __future__ import annotations

from typing import Any

from hubbub import App, Event

app = App()

for policy in ("close", "drop"):
    route = app.websocket(f"/fanout/{policy}", backpressure_policy=policy)  # type: ignore[arg-type]

    @route.on_connect
    async def join(event: Event, room: str = policy) -> None:
        await event.hub.join(room, event.client_id)

    @route.on_message
    async def fan_out(event: Event, room: str = policy) -> None:
        await event.hub.room_broadcast(room, event.data)  # type: ignore[arg-type]


ask = app.channel("/ask")


@ask.on("start")
async def start(event: Event) -> None:
    answer: Any = await event.connection.call("question", timeout=120)
    await event.emit("answered", answer)


@app.get("/count/{room}")
async def count(request: Any) -> dict[str, int]:
    """Members of a room (the tests wait on it before measuring)."""
    return {"count": await app.hub.room_count(request.path_params["room"])}
