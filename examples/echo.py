"""The benchmark contract app.

- /echo: every text or binary message comes back unchanged to its sender.
- /fanout: every message is broadcast to every client on /fanout, sender included.

Run: hubbub run examples/echo.py:app --port 8000
"""

from hubbub import App, Event

app = App()

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
