"""An app whose channel routes have typed payloads and replies (pydantic and msgspec), for `hubbub schema`."""

from __future__ import annotations

import msgspec
from pydantic import BaseModel

from hubbub import App, Event


class Say(BaseModel):
    """What a client says in a room."""

    room: str
    text: str


class Said(BaseModel):
    """What the room's members receive."""

    room: str
    user: str | None
    text: str


class Sum(msgspec.Struct):
    """Two integers to add."""

    a: int
    b: int


class Receipt(BaseModel):
    ok: bool
    said: Said


app = App()
chat = app.channel("/chat/{team}")
chat.emits("said", model=Said)


@chat.on("say", model=Say)
async def say(event: Event) -> Receipt:
    """Say something to a room."""
    said = Said(room=event.data.room, user=event.user_id, text=event.data.text)
    return Receipt(ok=True, said=said)


@chat.on("add", model=Sum)
async def add(event: Event) -> int:
    return int(event.data.a + event.data.b)


@chat.on("ping")
async def ping(event: Event) -> None:
    return None


ticks = app.channel("/ticks", codecs=("json", "msgpack"))
ticks.emits("tick", model=list[float])
