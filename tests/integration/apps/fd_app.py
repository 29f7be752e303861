"""An echo route and a route that reports the server's fd-refusal counter (run with a low fd limit)."""

from typing import Any

from hubbub import App, Event, Request

app = App(ping_interval=None)


@app.websocket("/echo")
async def echo(event: Event) -> None:
    await event.send(event.data)  # type: ignore[arg-type]


@app.get("/fd-refusals")
async def fd_refusals(request: Request) -> dict[str, Any]:
    return {"fd_refusals": app.hub.stats.fd_refusals}
