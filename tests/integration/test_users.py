"""Users over real sockets: delivery to every device of a user from each calling context
(WebSocket handler, HTTP handler, background task, periodic job), user_clients, the
per-user connection limit, and that no client can act as another user.

Devices are hubbub's client, `websockets` and `aiohttp`; users come from JWTs (HS256).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import jwt
import orjson
import pytest
from websockets.exceptions import InvalidStatus

from hubbub import App, Event
from hubbub.auth.jwt_auth import JWTAuth
from hubbub.errors import HandshakeError
from hubbub.protocol.envelope import Envelope
from hubbub.runtime.hub import Hub
from hubbub.testing import TestServer, serve_app, wait_for
from tests.support.devices import Device, Lib, connect_device

SECRET = "hubbub-tests-hmac-secret-32-bytes-long!"
PERIOD = 0.02  # seconds between runs of the periodic job


def token(sub: str) -> str:
    """A valid token for `sub`."""
    return jwt.encode({"sub": sub, "exp": time.time() + 60}, SECRET)


class Refused(Exception):
    """The handshake got an HTTP status instead of 101 (`body`: None if the library hides it)."""

    def __init__(self, status: int, body: bytes | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


async def open_device(lib: Lib, url: str, user: str) -> Device:
    """Connect as `user` (Bearer header); on /chat the welcome is read and its client id kept."""
    headers = {"authorization": f"Bearer {token(user)}"}
    try:
        device = await connect_device(lib, url, headers)
    except HandshakeError as exc:
        raise Refused(exc.status, exc.body) from None
    except InvalidStatus as exc:
        raise Refused(exc.response.status_code, bytes(exc.response.body or b"")) from None
    except aiohttp.WSServerHandshakeError as exc:
        raise Refused(exc.status) from None
    if urlsplit(url).path == "/chat":
        await device.read_welcome(user)
    return device


# ---- the app: one delivery, four calling contexts ---------------------------------------------

Command = dict[str, Any]


async def deliver(hub: Hub, cmd: Command) -> int:
    """{"to": "alice"} -> send_to_user; {"to": ["alice", ...]} -> send_to_users."""
    note = Envelope("note", {"text": cmd["text"]})
    if isinstance(cmd["to"], list):
        return await hub.send_to_users(cmd["to"], note)
    return await hub.send_to_user(cmd["to"], note)


@dataclass
class UsersApp:
    """The app and the inboxes of its background task and periodic job."""

    app: App
    background: asyncio.Queue[tuple[Command, asyncio.Future[int]]] = field(default_factory=asyncio.Queue)
    periodic: deque[tuple[Command, asyncio.Future[int]]] = field(default_factory=deque)


def build_app(**options: Any) -> UsersApp:
    """/chat (channel) and /raw (raw route) authenticate by JWT; POST /notify; a background
    task and a periodic job (loop.call_later) deliver what the test hands them."""
    app = App(tick=0.05, close_timeout=1.0, **options)
    app.authenticate(JWTAuth(secret=SECRET))
    built = UsersApp(app)
    chat = app.channel("/chat")
    app.websocket("/raw")

    @chat.on("notify")
    async def from_websocket(event: Event) -> int:
        return await deliver(event.hub, event.data)

    @chat.on("whoami")
    async def whoami(event: Event) -> dict[str, Any]:
        assert event.user is not None
        return {"user": event.user_id, "sub": event.user.claims["sub"]}

    @chat.authorize
    def own_rooms_only(event: Event, action: str, room: str) -> bool:
        return room in ("lobby", f"user:{event.user_id}")

    @app.post("/notify")
    async def from_http(request: Any) -> dict[str, int]:
        return {"sent": await deliver(app.hub, request.json())}

    @app.background
    async def from_background() -> None:
        while True:
            cmd, done = await built.background.get()
            done.set_result(await deliver(app.hub, cmd))

    handle: list[asyncio.TimerHandle] = []

    def periodic_job() -> None:
        while built.periodic:
            cmd, done = built.periodic.popleft()
            task = asyncio.ensure_future(deliver(app.hub, cmd))
            task.add_done_callback(lambda t, done=done: done.set_result(t.result()))  # type: ignore[misc]
        handle[:] = [asyncio.get_running_loop().call_later(PERIOD, periodic_job)]

    app.on_startup(lambda: handle.append(asyncio.get_running_loop().call_later(PERIOD, periodic_job)))
    app.on_shutdown(lambda: handle[0].cancel())
    return built


async def trigger(context: str, built: UsersApp, server: TestServer, sender: Device, cmd: Command) -> int:
    """Run one delivery in `context`; return how many connections it reached."""
    if context == "websocket":
        return int((await sender.request("notify", cmd))["data"])  # the sender's next message: the reply
    if context == "http":
        response = await server.request("POST", "/notify", json=cmd)
        assert response.status == 200
        return int(response.json()["sent"])
    done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    if context == "background":
        await built.background.put((cmd, done))
    else:
        built.periodic.append((cmd, done))
    return await asyncio.wait_for(done, 5)


@dataclass
class Crowd:
    """alice on three devices (two libraries on /chat, aiohttp on /raw), bob and carol on one."""

    alice: list[Device]
    bob: Device
    carol: Device

    @property
    def everyone(self) -> list[Device]:
        return [*self.alice, self.bob, self.carol]


async def gather_crowd(server: TestServer, stack: AsyncExitStack) -> Crowd:
    """Connect everyone; every device is closed when `stack` exits."""
    plan: list[tuple[Lib, str, str]] = [
        ("hubbub", "/chat", "alice"),
        ("websockets", "/chat", "alice"),
        ("aiohttp", "/raw", "alice"),
        ("websockets", "/chat", "bob"),
        ("aiohttp", "/chat", "carol"),
    ]
    made = []
    for lib, path, user in plan:
        device = await open_device(lib, server.url(path), user)
        stack.push_async_callback(device.close)
        made.append(device)
    return Crowd(made[:3], made[3], made[4])


async def assert_got_nothing(hub: Hub, user: str, *devices: Device) -> None:
    """Nothing more was delivered to these devices of `user`: a fence sent now is the next thing
    each reads (one connection's messages arrive in order), so no fixed wait is needed."""
    await hub.send_to_user(user, Envelope("fence"))
    for device in devices:
        assert await device.recv_json() == {"type": "fence", "data": None}


# ---- delivery to users -------------------------------------------------------------------------

CONTEXTS = ["websocket", "http", "background", "periodic"]


@pytest.mark.parametrize("context", CONTEXTS)
async def test_send_to_user_reaches_every_device_and_nobody_else(context: str) -> None:
    built = build_app()
    async with serve_app(built.app) as server, AsyncExitStack() as stack:
        crowd = await gather_crowd(server, stack)
        sent = await trigger(context, built, server, crowd.bob, {"to": "alice", "text": f"hi from {context}"})
        assert sent == 3
        for device in crowd.alice:  # the raw route gets the envelope as JSON text
            assert await device.recv_json() == {"type": "note", "data": {"text": f"hi from {context}"}}
        await assert_got_nothing(built.app.hub, "alice", *crowd.alice)  # once each
        await assert_got_nothing(built.app.hub, "bob", crowd.bob)
        await assert_got_nothing(built.app.hub, "carol", crowd.carol)
        assert await trigger(context, built, server, crowd.bob, {"to": "nobody", "text": "x"}) == 0


@pytest.mark.parametrize("context", CONTEXTS)
async def test_send_to_users_reaches_each_listed_user_once(context: str) -> None:
    built = build_app()
    async with serve_app(built.app) as server, AsyncExitStack() as stack:
        crowd = await gather_crowd(server, stack)
        cmd = {"to": ["alice", "carol", "alice", "nobody"], "text": "team"}
        assert await trigger(context, built, server, crowd.bob, cmd) == 4
        for device in [*crowd.alice, crowd.carol]:
            assert await device.recv_json() == {"type": "note", "data": {"text": "team"}}
        # exactly once each, although "alice" is listed twice
        await assert_got_nothing(built.app.hub, "alice", *crowd.alice)
        await assert_got_nothing(built.app.hub, "carol", crowd.carol)
        await assert_got_nothing(built.app.hub, "bob", crowd.bob)


async def test_user_clients_follows_connections() -> None:
    built = build_app()
    hub = built.app.hub
    async with serve_app(built.app) as server, AsyncExitStack() as stack:
        crowd = await gather_crowd(server, stack)
        alice_ids = set(await hub.user_clients("alice"))
        assert len(alice_ids) == 3
        assert {d.client_id for d in crowd.alice if d.client_id} < alice_ids  # the two /chat devices
        assert await hub.user_clients("bob") == [crowd.bob.client_id]
        assert await hub.user_clients("nobody") == []
        await crowd.alice[1].close()
        await wait_for(async_len(hub, "alice", 2))
        assert set(await hub.user_clients("alice")) == alice_ids - {crowd.alice[1].client_id}


def async_len(hub: Hub, user: str, n: int) -> Any:
    """A condition for wait_for: `user` has exactly `n` connections."""

    async def check() -> bool:
        return len(await hub.user_clients(user)) == n

    return check


# ---- the per-user connection limit --------------------------------------------------------------


@pytest.mark.parametrize("mode", ["close", "http"])
async def test_per_user_connection_limit_and_a_freed_slot(mode: str) -> None:
    built = build_app(max_connections_per_user=2, auth_failure=mode)
    hub = built.app.hub
    async with serve_app(built.app) as server, AsyncExitStack() as stack:
        first = await open_device("hubbub", server.url("/chat"), "alice")
        second = await open_device("websockets", server.url("/raw"), "alice")
        for device in (first, second):
            stack.push_async_callback(device.close)
        if mode == "close":
            over = await open_device("aiohttp", server.url("/raw"), "alice")  # accepted, then closed
            stack.push_async_callback(over.close)
            assert await over.close_code() == 4003
            http_refusal = None
        else:
            with pytest.raises(Refused) as http_refusal:
                await open_device("hubbub", server.url("/raw"), "alice")
            assert http_refusal.value.status == 429
            assert orjson.loads(http_refusal.value.body or b"") == {
                "error": "too many connections for this user",
                "code": 4003,
            }
            with pytest.raises(Refused) as again:
                await open_device("aiohttp", server.url("/chat"), "alice")
            assert again.value.status == 429
        holding = set(await hub.user_clients("alice"))
        assert len(holding) == 2
        bob = await open_device("aiohttp", server.url("/chat"), "bob")  # the limit is per user
        stack.push_async_callback(bob.close)
        await first.close()
        await wait_for(user_has(hub, "alice", 1))
        third = await open_device("aiohttp", server.url("/chat"), "alice")  # the freed slot
        stack.push_async_callback(third.close)
        assert set(await hub.user_clients("alice")) == holding - {first.client_id} | {third.client_id}


async def test_per_user_limit_holds_for_concurrent_handshakes() -> None:
    """Four handshakes of one user pass authentication together and then wait in an async
    connect middleware (as a ban-list lookup would); only two may become connections."""
    built = build_app(max_connections_per_user=2, auth_failure="http")
    arrived: list[str] = []
    everyone_waits = asyncio.Event()

    @built.app.before_websocket
    async def lookup(event: Event) -> None:
        if event.type == "connect":
            arrived.append(event.client_id)
            if len(arrived) == 4:
                everyone_waits.set()
            await asyncio.wait_for(everyone_waits.wait(), 5)

    libs: list[Lib] = ["hubbub", "websockets", "aiohttp", "hubbub"]
    async with serve_app(built.app) as server, AsyncExitStack() as stack:
        results = await asyncio.gather(
            *(open_device(lib, server.url("/raw"), "alice") for lib in libs), return_exceptions=True
        )
        opened = [r for r in results if isinstance(r, Device)]
        for device in opened:
            stack.push_async_callback(device.close)
        refused = [r.status for r in results if isinstance(r, Refused)]
        assert (len(opened), refused) == (2, [429, 429]), results
        assert len(await built.app.hub.user_clients("alice")) == 2


def user_has(hub: Hub, user: str, count: int) -> Any:
    """A wait_for condition: `user` has exactly `count` connections."""

    async def check() -> bool:
        return len(await hub.user_clients(user)) == count

    return check


# ---- nobody acts as another user ------------------------------------------------------------------


async def test_user_id_comes_only_from_the_authenticator() -> None:
    built = build_app()
    async with serve_app(built.app) as server, AsyncExitStack() as stack:
        for lib in ("hubbub", "aiohttp"):
            url = server.url("/chat") + "?user=admin&user_id=admin&sub=admin"
            alice = await open_device(lib, url, "alice")  # (open_device checked the welcome's user)
            stack.push_async_callback(alice.close)
            claim = {"user": "admin", "user_id": "admin", "sub": "admin", "from": "admin"}
            assert (await alice.request("whoami", claim))["data"] == {"user": "alice", "sub": "alice"}
        assert await built.app.hub.user_clients("admin") == []
        assert not await built.app.hub.is_online("admin")


async def test_join_and_publish_cannot_claim_another_user() -> None:
    built = build_app()
    async with serve_app(built.app) as server, AsyncExitStack() as stack:
        alice = await open_device("hubbub", server.url("/chat"), "alice")
        bob = await open_device("aiohttp", server.url("/chat"), "bob")
        for device in (alice, bob):
            stack.push_async_callback(device.close)
        assert (await bob.request("hubbub.join", {"room": "lobby"}))["data"] == {
            "room": "lobby",
            "offset": 0,
            "epoch": "",
        }
        joined = await alice.request("hubbub.join", {"room": "lobby", "user": "admin", "client_id": bob.client_id})
        assert joined["data"] == {"room": "lobby", "offset": 0, "epoch": ""}
        presence = await bob.recv_json()
        assert presence == {
            "type": "hubbub.presence",
            "data": {"room": "lobby", "action": "join", "client_id": alice.client_id, "user": "alice", "info": {}},
        }

        claim = {"room": "lobby", "type": "said", "data": {"text": "hi"}, "user": "admin", "from": bob.client_id}
        await alice.send_json({"type": "hubbub.publish", "data": claim, "id": 2})
        said = {
            "type": "said",
            "data": {"room": "lobby", "from": alice.client_id, "user": "alice", "data": {"text": "hi"}},
        }
        assert await bob.recv_json() == said
        assert await alice.recv_json() == said  # the publisher is a member too, and the reply follows
        assert await alice.recv_json() == {"id": 2, "data": {"room": "lobby", "delivered": 2}}

        # The authorize hook sees the authenticated user, whatever the data says.
        refused = await alice.request("hubbub.join", {"room": "user:admin", "user": "admin"}, id=3)
        assert refused["error"]["code"] == "forbidden"
        assert (await alice.request("hubbub.join", {"room": "user:alice"}, id=4))["data"] == {
            "room": "user:alice",
            "offset": 0,
            "epoch": "",
        }
        assert await built.app.hub.room_members("user:admin") == []
