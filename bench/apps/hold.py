"""The app of the hold scenario: /echo with a heartbeat fast enough to watch.

The server's timer sweep pings every connection that has been silent for
``PING_INTERVAL`` seconds and drops one whose ping is not answered within
``PING_TIMEOUT``; with these values a bounded hold window sees several rounds.

Run: hubbub run bench/apps/hold.py:app --port 8000
"""

from hubbub import App, Event

PING_INTERVAL = 5.0
PING_TIMEOUT = 10.0

app = App(ping_interval=PING_INTERVAL, ping_timeout=PING_TIMEOUT)

echo = app.websocket("/echo")


@echo.on_message
async def echo_back(event: Event) -> None:
    """Send every message back to its sender."""
    await event.send(event.data)
