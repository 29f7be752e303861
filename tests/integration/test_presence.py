"""Presence over real sockets: on_online / on_offline with the grace period (no flapping on
a quick reconnect), is_online / online_users, and per-room presence (hub.room_presence and
the hubbub.presence envelopes other members get).

Clients are hubbub's own, `websockets` and `aiohttp`; users come from JWTs (HS256).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest

from hubbub import App
from hubbub.auth.jwt_auth import JWTAuth
from hubbub.protocol.envelope import Envelope
from hubbub.runtime.hub import Hub
from hubbub.testing import TestServer, serve_app, wait_for
from tests.support.devices import Device, Lib, connect_device

SECRET = "hubbub-tests-hmac-secret-32-bytes-long!"
PROFILES = {
    "alice": {"name": "Alice", "email": "alice@example.test", "avatar": "a.png"},
    "bob": {"name": "Bob", "email": "bob@example.test"},
    "carol": {"name": "Carol", "email": "carol@example.test"},
    "ctl": {"name": "Control"},
}


async def connect(server: TestServer, stack: AsyncExitStack, lib: Lib, user: str) -> Device:
    """Connect `user` to /chat with `lib` and read the welcome; closed when `stack` exits."""
    url = server.url("/chat")
    token = jwt.encode({"sub": user, "exp": time.time() + 600, **PROFILES[user]}, SECRET)
    headers = {"authorization": f"Bearer {token}"}
    device = await connect_device(lib, url, headers)
    stack.push_async_callback(device.close)
    await device.read_welcome(user)
    return device


@dataclass
class Watch:
    """What the presence hooks reported, in order, with an asyncio.Event per (hook, user)."""

    online: list[str] = field(default_factory=list)
    offline: list[str] = field(default_factory=list)
    fired: dict[tuple[str, str], asyncio.Event] = field(default_factory=dict)
    offline_at: dict[str, float] = field(default_factory=dict)

    def _event(self, kind: str, user: str) -> asyncio.Event:
        return self.fired.setdefault((kind, user), asyncio.Event())

    def went_online(self, user: str) -> None:
        """The on_online hook (a plain function)."""
        self.online.append(user)
        self._event("online", user).set()

    async def went_offline(self, user: str) -> None:
        """The on_offline hook (a coroutine function)."""
        self.offline.append(user)
        self.offline_at[user] = time.monotonic()
        self._event("offline", user).set()

    async def wait(self, kind: str, user: str) -> None:
        """Until the hook `kind` ("online"/"offline") has fired for `user`."""
        await asyncio.wait_for(self._event(kind, user).wait(), 5)


def build_app(grace: float, info_claims: Iterable[str] | None = None, **options: Any) -> tuple[App, Watch]:
    """/chat: JWT users, any room may be joined; presence hooks recorded in the Watch."""
    app = App(presence_grace=grace, tick=0.05, close_timeout=1.0, **options)
    app.authenticate(JWTAuth(secret=SECRET, info_claims=("name",) if info_claims is None else info_claims))
    chat = app.channel("/chat")
    chat.authorize(lambda event, action, room: True)
    watch = Watch()
    app.on_online(watch.went_online)
    app.on_offline(watch.went_offline)
    return app, watch


def by_client(who: dict[str, Any]) -> str:
    """Sort key for room_presence entries."""
    return str(who["client_id"])


def gone(hub: Hub, user: str, remaining: int = 0) -> Any:
    """A wait_for condition: the server has processed the closes down to `remaining` connections."""

    async def check() -> bool:
        return len(await hub.user_clients(user)) == remaining

    return check


# ---- online / offline -------------------------------------------------------------------------


async def test_online_once_and_offline_once_after_the_grace_period() -> None:
    grace = 0.5  # every check "during grace" below happens within a few ms of the close
    app, watch = build_app(grace)
    hub = app.hub
    async with serve_app(app) as server, AsyncExitStack() as stack:
        first = await connect(server, stack, "hubbub", "alice")
        await watch.wait("online", "alice")
        assert (await hub.is_online("alice"), await hub.online_users()) == (True, ["alice"])
        second = await connect(server, stack, "websockets", "alice")
        # Presence is handled in the order connections open: once carol (connected after alice's
        # second device was welcomed) is reported online, a second "alice" would have been too.
        await connect(server, stack, "aiohttp", "carol")
        await watch.wait("online", "carol")
        assert watch.online == ["alice", "carol"]

        await first.close()
        await wait_for(gone(hub, "alice", 1))
        assert await hub.is_online("alice")

        closed_at = time.monotonic()
        await second.close()
        await wait_for(gone(hub, "alice"))
        assert await hub.is_online("alice"), "offline already: the grace period was skipped"
        assert sorted(await hub.online_users()) == ["alice", "carol"]
        assert watch.offline == []

        await watch.wait("offline", "alice")
        assert watch.offline_at["alice"] - closed_at >= grace - 0.01
        assert not await hub.is_online("alice")
        assert await hub.online_users() == ["carol"]
        assert watch.offline == ["alice"]


async def test_a_reconnect_within_the_grace_period_does_not_flap() -> None:
    grace = 0.6
    app, watch = build_app(grace)
    hub = app.hub
    async with serve_app(app) as server, AsyncExitStack() as stack:
        alice = await connect(server, stack, "websockets", "alice")
        control = await connect(server, stack, "hubbub", "ctl")
        await watch.wait("online", "ctl")
        await alice.close()
        await wait_for(gone(hub, "alice"))
        alice_left = time.monotonic()
        # The control user leaves after alice, so its offline timer is due after alice's would be.
        await control.close()
        await wait_for(gone(hub, "ctl"))
        await connect(server, stack, "aiohttp", "alice")  # back within the grace period
        assert time.monotonic() - alice_left < grace, "too slow to reconnect within the grace period"
        # Timers fire in the order they are due: when the control user's offline hook has run,
        # alice's would have run before it had her reconnect not cancelled it.
        await watch.wait("offline", "ctl")
        assert watch.offline == ["ctl"]
        assert Counter(watch.online) == {"alice": 1, "ctl": 1}
        assert await hub.is_online("alice") and not await hub.is_online("ctl")
        assert await hub.online_users() == ["alice"]


async def test_without_a_grace_period_offline_follows_the_close() -> None:
    app, watch = build_app(0)
    async with serve_app(app) as server, AsyncExitStack() as stack:
        bob = await connect(server, stack, "aiohttp", "bob")
        await watch.wait("online", "bob")
        await bob.close()
        await watch.wait("offline", "bob")
        assert (watch.online, watch.offline) == (["bob"], ["bob"])
        assert not await app.hub.is_online("bob")


# ---- per-room presence --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("info_claims", "shown"),
    [(None, ("name",)), (("name", "avatar"), ("name", "avatar"))],
    ids=["default-info-claims", "name-and-avatar"],
)
async def test_room_presence_lists_members_with_public_info_only(
    info_claims: tuple[str, ...] | None, shown: tuple[str, ...]
) -> None:
    app, _ = build_app(0.1, info_claims, room_presence_events=False)  # envelopes: the next test
    async with serve_app(app) as server, AsyncExitStack() as stack:
        members = [
            await connect(server, stack, "hubbub", "alice"),
            await connect(server, stack, "websockets", "bob"),
            await connect(server, stack, "aiohttp", "alice"),
        ]
        users = ["alice", "bob", "alice"]
        for device in members:
            await device.request("hubbub.join", {"room": "lobby"})
        expected = [
            {
                "client_id": device.client_id,
                "user": user,
                "info": {claim: PROFILES[user][claim] for claim in shown if claim in PROFILES[user]},
            }
            for device, user in zip(members, users, strict=True)
        ]
        listed = await app.hub.room_presence("lobby")
        assert sorted(listed, key=by_client) == sorted(expected, key=by_client)
        assert all("email" not in who["info"] for who in listed)
        assert await app.hub.room_presence("empty") == []


async def test_presence_envelopes_reach_the_other_members() -> None:
    app, _ = build_app(0.1)
    async with serve_app(app) as server, AsyncExitStack() as stack:
        bob = await connect(server, stack, "websockets", "bob")
        alice = await connect(server, stack, "hubbub", "alice")
        carol = await connect(server, stack, "aiohttp", "carol")

        def presence(action: str, who: Device, user: str) -> dict[str, Any]:
            info = {"name": PROFILES[user]["name"]}
            data = {"room": "lobby", "action": action, "client_id": who.client_id, "user": user, "info": info}
            return {"type": "hubbub.presence", "data": data}

        await bob.request("hubbub.join", {"room": "lobby"})
        # The joiner's next message is its reply: it is not told about its own join.
        assert (await alice.request("hubbub.join", {"room": "lobby"}))["data"] == {
            "room": "lobby",
            "offset": 0,
            "epoch": "",
        }
        assert await bob.recv_json() == presence("join", alice, "alice")
        await carol.request("hubbub.join", {"room": "lobby"})
        for member in (bob, alice):
            assert await member.recv_json() == presence("join", carol, "carol")

        await alice.request("hubbub.leave", {"room": "lobby"}, id=2)
        for member in (bob, carol):
            assert await member.recv_json() == presence("leave", alice, "alice")

        await carol.close()  # leaving by disconnecting
        assert await bob.recv_json() == presence("leave", carol, "carol")
        # alice left the room, so she heard nothing of carol's departure: a fence is next.
        await app.hub.send(alice.client_id, Envelope("fence"))
        assert await alice.recv_json() == {"type": "fence", "data": None}


async def test_presence_envelopes_can_be_switched_off() -> None:
    app, _ = build_app(0.1, room_presence_events=False)
    async with serve_app(app) as server, AsyncExitStack() as stack:
        bob = await connect(server, stack, "aiohttp", "bob")
        alice = await connect(server, stack, "websockets", "alice")
        for device in (bob, alice):
            await device.request("hubbub.join", {"room": "lobby"})
        await alice.close()
        await wait_for(gone(app.hub, "alice"))
        await app.hub.send(bob.client_id, Envelope("fence"))
        assert await bob.recv_json() == {"type": "fence", "data": None}
        assert [who["user"] for who in await app.hub.room_presence("lobby")] == ["bob"]
