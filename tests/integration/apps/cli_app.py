"""An app for the CLI tests: an echo route that first sends the client its id."""

from __future__ import annotations

from hubbub import App, Event

app = App()
not_an_app = "just a string"

echo = app.websocket("/echo")


@echo.on_connect
async def greet(event: Event) -> None:
    """Tell the client its id (the tests look for it in the logs)."""
    await event.send(event.client_id)


@echo.on_message
async def repeat(event: Event) -> None:
    """Echo every message."""
    await event.send(event.data)
