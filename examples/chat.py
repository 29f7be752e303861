"""Chat with rooms, nicknames from a JWT, private messages, typing indicators and presence.

Run: hubbub run examples/chat.py:app --port 8000, then open http://127.0.0.1:8000/ in two browsers.

HTTP
  POST /api/login    {"nickname": "alice"} -> {"token", "user_id", "nickname", "expires_at"}: a short-lived
                     JWT (sub: a new user id, name: the nickname) signed by the app's JWTAuth
  POST /api/refresh  with "Authorization: Bearer <token>" (still valid) -> a new token for the same user;
                     the page then sends it as `hubbub.refresh` so the connection outlives the first token
  GET /              the page (chat_static/); GET /hubbub/hubbub.js the browser client

Channel /chat (JSON envelopes; the token comes as ?token=, a Bearer header or the "bearer.<token>" subprotocol)
  hubbub.join {room} / hubbub.leave {room}   rooms are named ^[a-z0-9-]{1,32}$; after a join the client gets
        "joined" {room, history: [message...], presence: [{client_id, user, info}...]}; the history is the
        room's, kept by hubbub (app.history): a client may also join with {"history": N} or
        {"since": {"offset", "epoch"}} to recover exactly what it missed (docs/protocol.md)
  say {room, text}          -> "message" {id, room, user: {id, name}, text, ts} to the room; reply {"id"}
  whisper {to_user, text}   -> "whisper" {from, to, text, ts} to every device of both users; reply {"delivered"};
                               a user who is not online -> error "not_found"
  typing {room}             -> "typing" {room, user} to the others in the room (not kept)
  rooms                     -> reply {"rooms": [{"name", "count"}]}: the rooms that have members
  On connect the client gets "users" {users: [{id, name}]}; then "user.online" / "user.offline" {id, name}.
  Room members get "hubbub.presence" events when someone joins or leaves.

Environment: CHAT_JWT_SECRET (default: random per process), CHAT_TOKEN_TTL (seconds, default 600),
CHAT_HISTORY (messages kept per room, default 50), CHAT_HISTORY_TTL (seconds a message is kept, default
86400), CHAT_PRESENCE_GRACE (seconds, default 2). Run with --store sqlite:///chat.db to keep the rooms'
history across restarts.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import time
import unicodedata
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Any

import jwt
import pydantic
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

import hubbub
from hubbub import App, Event, JSONResponse, Request
from hubbub.auth import AuthError, JWTAuth, token_from_request
from hubbub.protocol.envelope import Envelope, EnvelopeError

HERE = Path(__file__).resolve().parent
AUDIENCE = "hubbub-chat"
ROOM_PATTERN = r"^[a-z0-9-]{1,32}$"
MAX_TEXT = 500
MAX_NICKNAME = 24
MAX_NAMES_KEPT = 10_000

SECRET = os.environ.get("CHAT_JWT_SECRET") or secrets.token_urlsafe(32)
TOKEN_TTL = float(os.environ.get("CHAT_TOKEN_TTL", "600"))
HISTORY_SIZE = int(os.environ.get("CHAT_HISTORY", "50"))
HISTORY_TTL = float(os.environ.get("CHAT_HISTORY_TTL", "86400"))
PRESENCE_GRACE = float(os.environ.get("CHAT_PRESENCE_GRACE", "2"))


def _printable(value: str) -> str:
    if any(unicodedata.category(char).startswith("C") and char not in "\n\t" for char in value):
        raise ValueError("must not contain control characters")
    return value


RoomName = Annotated[str, StringConstraints(pattern=ROOM_PATTERN)]
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT), AfterValidator(_printable)
]


def _one_line(value: str) -> str:
    if "\n" in value or "\t" in value:
        raise ValueError("must be one line")
    return _printable(value)


Nickname = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NICKNAME), AfterValidator(_one_line)
]


class Login(BaseModel):
    """The body of POST /api/login."""

    model_config = ConfigDict(extra="forbid")
    nickname: Nickname


class Say(BaseModel):
    """Talk in a room the client is in."""

    model_config = ConfigDict(extra="forbid")
    room: RoomName
    text: Text


class Whisper(BaseModel):
    """A private message to every device of one user."""

    model_config = ConfigDict(extra="forbid")
    to_user: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    text: Text


class Typing(BaseModel):
    """The client is typing in a room."""

    model_config = ConfigDict(extra="forbid")
    room: RoomName


class Names:
    """Nicknames by user id for the users seen lately (at most `limit`; least recently seen go first).

    Presence hooks may run before the user's connection is open here, so names are
    remembered when tokens are issued and when connections open."""

    def __init__(self, limit: int = MAX_NAMES_KEPT) -> None:
        self.limit = limit
        self._names: OrderedDict[str, str] = OrderedDict()

    def remember(self, user_id: str, name: str) -> None:
        """Note a user's nickname."""
        self._names[user_id] = name
        self._names.move_to_end(user_id)
        while len(self._names) > self.limit:
            self._names.popitem(last=False)

    def get(self, user_id: str) -> str | None:
        """A user's nickname, if seen lately."""
        return self._names.get(user_id)


auth = JWTAuth(secret=SECRET, audience=AUDIENCE)
app = App(
    presence_grace=PRESENCE_GRACE,
    max_message_size=16 * 1024,
    max_connections_per_user=5,
    message_rate=10,
    message_burst=20,
)
app.authenticate(auth)
chat = app.channel("/chat")
app.history("*", size=HISTORY_SIZE, ttl=HISTORY_TTL)
names = Names()
_message_ids = itertools.count(1)


def issue_token(user_id: str, nickname: str) -> dict[str, Any]:
    """A signed token for a user, with its expiry."""
    now = int(time.time())
    expires_at = now + int(TOKEN_TTL)
    claims = {"sub": user_id, "name": nickname, "aud": AUDIENCE, "iat": now, "exp": expires_at}
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    names.remember(user_id, nickname)
    return {"token": token, "user_id": user_id, "nickname": nickname, "expires_at": expires_at}


def who(event: Event) -> dict[str, str]:
    """The sender as messages show it: {"id", "name"}."""
    user = event.user
    assert user is not None  # the channel requires a token
    return {"id": user.id, "name": str(user.info.get("name", user.id))}


def now_ms() -> int:
    """Milliseconds since the epoch."""
    return int(time.time() * 1000)


def in_room(event: Event, room: str) -> None:
    """Refuse unless the client is in `room`."""
    if room not in event.connection.rooms:
        raise EnvelopeError("forbidden", f"join {room!r} first")


async def display_name(user_id: str) -> str:
    """A user's nickname: from one of their connections here, or as seen lately, or their id."""
    for client_id in await app.hub.user_clients(user_id):
        conn = app.hub.get(client_id)
        if conn is not None and conn.user is not None and "name" in conn.user.info:
            return str(conn.user.info["name"])
    return names.get(user_id) or user_id


# ---- HTTP ------------------------------------------------------------------------------------


@app.post("/api/login")
async def login(request: Request) -> JSONResponse:
    """Pick a nickname; get a token for a new user id."""
    try:
        body = Login.model_validate(request.json())
    except ValueError as exc:  # bad JSON (orjson) or a bad body (pydantic)
        return JSONResponse({"error": _login_problem(exc)}, status=400)
    return JSONResponse(issue_token(f"u-{uuid.uuid4().hex[:12]}", body.nickname))


def _login_problem(exc: ValueError) -> str:
    if isinstance(exc, pydantic.ValidationError):
        return "; ".join(f"{'.'.join(map(str, err['loc'])) or 'body'}: {err['msg']}" for err in exc.errors())
    return "body must be JSON"


@app.post("/api/refresh")
async def refresh(request: Request) -> JSONResponse:
    """Trade a still-valid token for a new one for the same user."""
    token = token_from_request(request)
    if token is None:
        return JSONResponse({"error": "missing token"}, status=401)
    try:
        user = auth.verify_token(token)
    except AuthError as exc:
        return JSONResponse({"error": exc.reason}, status=401)
    return JSONResponse(issue_token(user.id, str(user.info.get("name", user.id))))


app.static("/hubbub", hubbub.STATIC_DIR)
app.static("/", HERE / "chat_static")


# ---- presence --------------------------------------------------------------------------------


@app.on_online
async def user_online(user_id: str) -> None:
    """Tell everyone a user came online."""
    name = await display_name(user_id)
    await app.hub.broadcast(Envelope("user.online", {"id": user_id, "name": name}))


@app.on_offline
async def user_offline(user_id: str) -> None:
    """Tell everyone a user went offline (after the grace period)."""
    name = names.get(user_id) or user_id
    await app.hub.broadcast(Envelope("user.offline", {"id": user_id, "name": name}))


@chat.on_connect
async def connected(event: Event) -> None:
    """Give a new client the list of users online."""
    me = who(event)
    names.remember(me["id"], me["name"])
    users = [{"id": user_id, "name": await display_name(user_id)} for user_id in await event.hub.online_users()]
    await event.emit("users", {"users": users})


# ---- rooms -----------------------------------------------------------------------------------


@chat.authorize
def may(event: Event, action: str, room: str) -> bool:
    """Any well-named room may be joined (and left); publishing goes through "say"."""
    return action in ("join", "leave") and re.fullmatch(ROOM_PATTERN, room) is not None


@chat.on_join
async def joined(event: Event, room: str) -> None:
    """After a hubbub.join: the room's recent messages and who is in it."""
    recent = await event.hub.room_history(room, last=HISTORY_SIZE)
    history = [publication["data"] for publication in recent.publications()]
    await event.emit("joined", {"room": room, "history": history, "presence": await event.hub.room_presence(room)})


@chat.on("rooms")
async def rooms(event: Event) -> dict[str, Any]:
    """The rooms that have members, with how many clients are in each."""
    hub = event.hub
    return {"rooms": [{"name": room, "count": await hub.room_count(room)} for room in sorted(await hub.rooms())]}


# ---- talking ---------------------------------------------------------------------------------


@chat.on("say", model=Say)
async def say(event: Event) -> dict[str, Any]:
    """A message to a room; kept in its history."""
    data: Say = event.data
    in_room(event, data.room)
    message = {"id": next(_message_ids), "room": data.room, "user": who(event), "text": data.text, "ts": now_ms()}
    await event.hub.room_broadcast(data.room, Envelope("message", message))  # kept in the room's history
    return {"id": message["id"]}


@chat.on("whisper", model=Whisper)
async def whisper(event: Event) -> dict[str, Any]:
    """A private message to every device of the target, echoed to the sender's devices."""
    data: Whisper = event.data
    if not await event.hub.user_clients(data.to_user):
        raise EnvelopeError("not_found", f"user {data.to_user!r} is not online")
    sender = who(event)
    target = {"id": data.to_user, "name": await display_name(data.to_user)}
    message = Envelope("whisper", {"from": sender, "to": target, "text": data.text, "ts": now_ms()})
    delivered = await event.hub.send_to_user(data.to_user, message)
    if data.to_user != sender["id"]:
        await event.hub.send_to_user(sender["id"], message)
    return {"delivered": delivered}


@chat.on("typing", model=Typing)
async def typing(event: Event) -> None:
    """Show the others in the room that this user is typing."""
    data: Typing = event.data
    in_room(event, data.room)
    await event.hub.room_broadcast(
        data.room, Envelope("typing", {"room": data.room, "user": who(event)}), exclude=event.client_id, keep=False
    )
