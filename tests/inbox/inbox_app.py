"""The app the inbox tests serve: a channel route whose users are named by `?user=`, and an HTTP
route that sends a durable message. Run as a module (`hubbub run tests.inbox.inbox_app:app`) it
keeps its inbox where INBOX_STORE points."""

from __future__ import annotations

import os

from hubbub import App, Envelope, Event, JSONResponse, Request
from hubbub.inbox import Inbox, InboxStore


def make_app(inbox: Inbox | InboxStore | str | None = None, **options: object) -> App:
    """A fresh app: `/inbox` (JSON envelopes, user from `?user=`; a `dm` request sends `text` to the
    user `to`, durably), `POST /send/{user}` (a durable
    `notification` with the JSON body as data; answers {"delivered": N} once it is stored)."""
    app = App(inbox=inbox, **options)  # type: ignore[arg-type]
    app.authenticate(lambda request: request.query.get("user"))
    channel = app.channel("/inbox")

    @channel.on("dm")
    async def dm(event: Event) -> dict[str, int]:
        message = Envelope("dm", {"from": event.user_id, "text": event.data["text"]})
        return {"online": await event.hub.send_to_user(event.data["to"], message, durable=True)}

    @app.post("/send/{user}")
    async def send(request: Request) -> JSONResponse:
        envelope = Envelope("notification", request.json())
        delivered = await app.hub.send_to_user(request.path_params["user"], envelope, durable=True)
        return JSONResponse({"delivered": delivered})

    return app


app = make_app(os.environ.get("INBOX_STORE"))
