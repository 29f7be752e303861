"""The benchmark contract app.

- /echo: every text or binary message comes back unchanged to its sender.
- /fanout: every message is broadcast to every client on /fanout, sender included.
- /rooms: JSON envelopes, no auth: any client may hubbub.join, hubbub.leave and hubbub.publish
  to any room; every room keeps its last 10,000 publications for 10 minutes, so a client
  that comes back recovers what it missed (docs/protocol.md, "History and recovery").

Run: hubbub run examples/echo.py:app --port 8000
(add --store sqlite:////tmp/echo.db to keep the rooms' history across restarts)

It is also the Autobahn conformance target, whose section 9 sends messages of up
to 16 MiB: the message limit and the per-connection send buffer are raised for
that (the library defaults are 1 MiB and 256 KiB).
"""

from hubbub import App, Event
from hubbub.app.channel import RoomAction

app = App(max_message_size=16 * 1024 * 1024, max_backpressure=64 * 1024 * 1024)

echo = app.websocket("/echo")


@echo.on_message
async def echo_back(event: Event) -> None:
    await event.send(event.data)  # type: ignore[arg-type]


fanout = app.websocket("/fanout")


@fanout.on_connect
async def join_fanout(event: Event) -> None:
    await event.hub.join("fanout", event.client_id)


@fanout.on_message
async def fan_out(event: Event) -> None:
    await event.hub.room_broadcast("fanout", event.data)  # type: ignore[arg-type]


rooms = app.channel("/rooms", auth=False)
app.history("*", size=10_000, ttl=600)


@rooms.authorize
def anyone(event: Event, action: RoomAction, room: str) -> bool:
    return True
