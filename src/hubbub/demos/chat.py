"""The chat demo: run `hubbub demo chat`, open http://127.0.0.1:8000/ in several tabs.

Each tab picks a nickname, joins rooms and talks; the server keeps nothing but
hubbub rooms (a room is a hub room, a message is one `room_broadcast`).

HTTP
  GET /                  the page (chat_static/index.html)
  GET /static/{name}     its script and style
  GET /healthz           {"status": "ok", "connections": N}

WebSocket /ws: one JSON object per text message, each with a "type".

Client to server
  {"type": "nick", "nick": "alice"}                  set or change the nickname (1-24 characters)
  {"type": "join", "room": "lobby"}                  join a room (needs a nickname; 1-32 of a-z 0-9 _ -,
                                                     lower-cased; at most 10 rooms per connection)
  {"type": "leave", "room": "lobby"}                 leave a room
  {"type": "say", "room": "lobby", "text": "hi"}     talk in a room you are in (1-500 characters)

Server to client
  {"type": "rooms", "rooms": [{"name": "lobby", "count": 2}]}
        every room with members: on connect, and to everyone whenever a room's membership changes
  {"type": "nick", "nick": "alice"}                  the nickname was accepted (as stored: trimmed)
  {"type": "joined", "room": "lobby"}                you are in the room (also when you already were)
  {"type": "left", "room": "lobby"}                  you are out of the room
  {"type": "members", "room": "lobby", "members": ["alice", "bob"]}
        the room's nicknames, sorted; to the whole room on every join, leave and nickname change
  {"type": "system", "room": "lobby", "text": "alice joined", "ts": 1700000000000}
        "X joined", "X left", "X is now known as Y"; ts is milliseconds since the epoch
  {"type": "message", "room": "lobby", "nick": "alice", "text": "hi", "ts": 1700000000000}
        someone said something; the sender gets it too
  {"type": "error", "message": "...", "request": "join"}
        the request was refused ("request" is its type, or null); the connection stays open

Text is sent as the user typed it: escaping it is the page's job. Nicknames need
not be unique. A WebSocket message over 8 KiB closes the connection with 1009.
Member names are read from this process's connections, so the demo runs on one
process (the embedded default), as `hubbub demo` promises.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Awaitable, Callable
from importlib.resources import files
from typing import Any

import orjson

from hubbub import App, Event, Hub, Request, Response
from hubbub.web.response import error_response

MAX_NICK = 24
MAX_TEXT = 500
MAX_ROOMS_PER_CLIENT = 10
MAX_FRAME = 8 * 1024
ROOM_NAME = re.compile(r"[a-z0-9_-]{1,32}")

STATIC = files("hubbub.demos") / "chat_static"
ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}


class ChatError(Exception):
    """A request the server refuses; the message goes back to the client as an error."""


def encode(message: dict[str, Any]) -> str:
    """One protocol message as JSON text."""
    return orjson.dumps(message).decode("utf-8")


def now_ms() -> int:
    """Milliseconds since the epoch (the "ts" of messages)."""
    return int(time.time() * 1000)


def _string(request: dict[str, Any], field: str) -> str:
    value = request.get(field)
    if not isinstance(value, str):
        raise ChatError(f'"{field}" must be a string')
    return value


def _has_control(text: str, allowed: str = "") -> bool:
    return any(unicodedata.category(char).startswith("C") and char not in allowed for char in text)


def valid_nick(request: dict[str, Any]) -> str:
    """The trimmed nickname of a "nick" request, or ChatError."""
    nick = _string(request, "nick").strip()
    if not nick:
        raise ChatError("nickname must not be empty")
    if len(nick) > MAX_NICK:
        raise ChatError(f"nickname must be at most {MAX_NICK} characters")
    if _has_control(nick):
        raise ChatError("nickname must not contain control characters")
    return nick


def valid_room(request: dict[str, Any]) -> str:
    """The lower-cased room name of a request, or ChatError."""
    room = _string(request, "room").strip().lower()
    if not ROOM_NAME.fullmatch(room):
        raise ChatError("room name must be 1-32 characters of a-z, 0-9, _ and -")
    return room


def valid_text(request: dict[str, Any]) -> str:
    """The text of a "say" request, or ChatError."""
    text = _string(request, "text").strip()
    if not text:
        raise ChatError("message must not be empty")
    if len(text) > MAX_TEXT:
        raise ChatError(f"message must be at most {MAX_TEXT} characters")
    if _has_control(text, allowed="\n\t"):
        raise ChatError("message must not contain control characters")
    return text


# ---- what the server pushes ----------------------------------------------------------------


async def rooms_message(hub: Hub) -> str:
    """The "rooms" message: every room with members and its member count."""
    rooms = [{"name": name, "count": await hub.room_count(name)} for name in sorted(await hub.rooms())]
    return encode({"type": "rooms", "rooms": rooms})


async def announce(hub: Hub, room: str, text: str) -> None:
    """Tell a room what happened (a system line), then who is in it now."""
    await hub.room_broadcast(room, encode({"type": "system", "room": room, "text": text, "ts": now_ms()}))
    names = []
    for client_id in await hub.room_members(room):
        conn = hub.get(client_id)
        if conn is not None:
            names.append(conn.state.get("nick", "?"))
    names.sort(key=str.casefold)
    await hub.room_broadcast(room, encode({"type": "members", "room": room, "members": names}))


# ---- requests ----------------------------------------------------------------------------


async def set_nick(event: Event, request: dict[str, Any]) -> None:
    """Set or change the nickname; rooms the client is in hear about a change."""
    nick = valid_nick(request)
    state = event.connection.state
    old = state.get("nick")
    state["nick"] = nick
    await event.send(encode({"type": "nick", "nick": nick}))
    if old is not None and old != nick:
        for room in sorted(event.connection.rooms):
            await announce(event.hub, room, f"{old} is now known as {nick}")


async def join(event: Event, request: dict[str, Any]) -> None:
    """Join a room, announce it there, and update everyone's room list."""
    room = valid_room(request)
    nick = event.connection.state.get("nick")
    if nick is None:
        raise ChatError("choose a nickname before joining a room")
    rooms = event.connection.rooms
    if room in rooms:
        await event.send(encode({"type": "joined", "room": room}))
        return
    if len(rooms) >= MAX_ROOMS_PER_CLIENT:
        raise ChatError(f"you can be in at most {MAX_ROOMS_PER_CLIENT} rooms")
    await event.hub.join(room, event.client_id)
    await event.send(encode({"type": "joined", "room": room}))
    await announce(event.hub, room, f"{nick} joined")
    await event.hub.broadcast(await rooms_message(event.hub))


async def leave(event: Event, request: dict[str, Any]) -> None:
    """Leave a room, announce it there, and update everyone's room list."""
    room = valid_room(request)
    if room not in event.connection.rooms:
        raise ChatError(f"you are not in room {room}")
    await event.hub.leave(room, event.client_id)
    await event.send(encode({"type": "left", "room": room}))
    await announce(event.hub, room, f"{event.connection.state['nick']} left")
    await event.hub.broadcast(await rooms_message(event.hub))


async def say(event: Event, request: dict[str, Any]) -> None:
    """Broadcast a message to a room the client is in."""
    room = valid_room(request)
    text = valid_text(request)
    if room not in event.connection.rooms:
        raise ChatError(f"join room {room} before talking in it")
    nick = event.connection.state["nick"]
    message = {"type": "message", "room": room, "nick": nick, "text": text, "ts": now_ms()}
    await event.hub.room_broadcast(room, encode(message))


REQUESTS: dict[str, Callable[[Event, dict[str, Any]], Awaitable[None]]] = {
    "nick": set_nick,
    "join": join,
    "leave": leave,
    "say": say,
}


def parse(event: Event) -> dict[str, Any]:
    """The JSON object of a message event, or ChatError."""
    if event.is_binary:
        raise ChatError("send JSON as text messages, not binary")
    try:
        request = orjson.loads(event.text)
    except orjson.JSONDecodeError:
        raise ChatError("message is not valid JSON") from None
    if not isinstance(request, dict):
        raise ChatError("message must be a JSON object")
    return request


# ---- WebSocket events ------------------------------------------------------------------------


async def on_connect(event: Event) -> None:
    """Greet a new client with the list of rooms."""
    await event.send(await rooms_message(event.hub))


async def on_message(event: Event) -> None:
    """Run one request; anything wrong with it becomes an error reply."""
    kind: Any = None
    try:
        request = parse(event)
        kind = request.get("type")
        if not isinstance(kind, str):
            kind = None
            raise ChatError('message needs a string "type"')
        handler = REQUESTS.get(kind)
        if handler is None:
            raise ChatError(f"unknown message type {kind!r}; expected one of {', '.join(REQUESTS)}")
        await handler(event, request)
    except ChatError as exc:
        await event.send(encode({"type": "error", "message": str(exc), "request": kind}))


async def on_disconnect(event: Event) -> None:
    """Tell the rooms the client was in that it left."""
    nick = event.connection.state.get("nick")
    for room in sorted(event.rooms):
        await announce(event.hub, room, f"{nick} left")
    if event.rooms:
        await event.hub.broadcast(await rooms_message(event.hub))


# ---- the app -------------------------------------------------------------------------------


def asset(name: str) -> Response:
    """A file of the page, read from the installed package."""
    if name == "index.html":
        media_type = "text/html; charset=utf-8"
    elif name in ASSETS:
        media_type = ASSETS[name]
    else:
        return error_response(404, "not found")
    return Response(STATIC.joinpath(name).read_bytes(), media_type=media_type, headers={"cache-control": "no-cache"})


def create_app() -> App:
    """A new chat app (each has its own hub, so tests can run several)."""
    chat = App(max_message_size=MAX_FRAME)
    chat.websocket("/ws", on_connect=on_connect, on_message=on_message, on_disconnect=on_disconnect)

    @chat.get("/")
    async def page(request: Request) -> Response:
        return asset("index.html")

    @chat.get("/static/{name}")
    async def static(request: Request) -> Response:
        return asset(request.path_params["name"])

    @chat.get("/healthz")
    async def healthz(request: Request) -> dict[str, Any]:
        return {"status": "ok", "connections": await chat.hub.connection_count()}

    return chat


app = create_app()
