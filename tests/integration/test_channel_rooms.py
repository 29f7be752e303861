"""Rooms on channel routes: client join/leave/publish under an `authorize` hook, server-side joins,
publish payloads, room presence events."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
from websockets.asyncio.client import connect as ws_connect

from hubbub import App, Event
from hubbub.protocol.envelope import Envelope
from hubbub.testing import serve_app, wait_for
from hubbub.web.request import Request
from tests.integration.channel_peers import JSON, MSGPACK, Peer


def user_from_query(request: Request) -> str | None:
    """The user id is the ?user= query parameter (tests only)."""
    return request.query.get("user")


def make_app(decisions: list[tuple[str, str]]) -> App:
    """/chat: rooms under an authorize hook; /open: no hook, but a server-side join."""
    app = App()
    chat = app.channel("/chat", auth=user_from_query)

    @chat.authorize
    async def may(event: Event, action: str, room: str) -> bool:
        decisions.append((action, room))
        if action == "join":
            return not room.startswith("secret")
        if action == "leave":
            return room != "pinned"
        return room in event.connection.rooms

    @chat.on("ping")
    async def ping(event: Event) -> str:
        return "pong"

    open_route = app.channel("/open")

    @open_route.on("enter")
    async def enter(event: Event) -> Any:
        await event.connection.join("vip")
        return sorted(event.connection.rooms)

    mixed = app.channel("/mixed", codecs=("json", "msgpack"))

    @mixed.on_connect
    async def join_mix(event: Event) -> None:
        await event.hub.join("mix", event.client_id)

    @app.websocket("/raw", on_connect=join_mix)
    async def raw_echo(event: Event) -> None:
        await event.send(event.data)

    return app


async def test_join_and_leave_are_decided_by_authorize() -> None:
    """Allowed joins and leaves are answered with the room; refused ones with forbidden; leaving a room
    one is not in, or a bad room name, with bad_request."""
    decisions: list[tuple[str, str]] = []
    async with (
        serve_app(make_app(decisions)) as server,
        ws_connect(server.url("/chat?user=alice"), subprotocols=[JSON]) as ws,
    ):
        peer = Peer.of_websockets(ws)
        client_id = (await peer.welcome())["client_id"]
        hub = server.app.hub
        assert await peer.request("hubbub.join", {"room": "lobby"}, id=1) == {
            "id": 1,
            "data": {"room": "lobby", "offset": 0, "epoch": ""},
        }
        assert await hub.room_members("lobby") == [client_id]
        refused = await peer.request("hubbub.join", {"room": "secret-plans"}, id=2)
        assert refused["error"]["code"] == "forbidden" and await hub.room_count("secret-plans") == 0
        assert await peer.request("hubbub.join", {"room": "pinned"}, id=3) == {
            "id": 3,
            "data": {"room": "pinned", "offset": 0, "epoch": ""},
        }
        assert (await peer.request("hubbub.leave", {"room": "pinned"}, id=4))["error"]["code"] == "forbidden"
        assert await hub.room_members("pinned") == [client_id]
        assert await peer.request("hubbub.leave", {"room": "lobby"}, id=5) == {"id": 5, "data": {"room": "lobby"}}
        assert await hub.room_count("lobby") == 0
        for id, data in ((6, {"room": "lobby"}), (7, {"room": "never"}), (8, {"room": 5}), (9, "lobby")):
            assert (await peer.request("hubbub.leave", data, id=id))["error"]["code"] == "bad_request"
        assert (await peer.request("hubbub.join", {}, id=10))["error"]["code"] == "bad_request"
        assert await peer.request("ping", id=11) == {"id": 11, "data": "pong"}
    assert decisions == [
        ("join", "lobby"),
        ("join", "secret-plans"),
        ("join", "pinned"),
        ("leave", "pinned"),
        ("leave", "lobby"),
    ]


async def test_without_authorize_hook_only_the_server_puts_clients_in_rooms() -> None:
    """No hook: client join and publish are forbidden; a server-side join works, and so does leaving it."""
    async with (
        serve_app(make_app([])) as server,
        aiohttp.ClientSession() as session,
        session.ws_connect(server.url("/open"), protocols=(JSON,)) as ws,
    ):
        peer = Peer.of_aiohttp(ws)
        client_id = (await peer.welcome())["client_id"]
        assert (await peer.request("hubbub.join", {"room": "vip"}, id=1))["error"]["code"] == "forbidden"
        publish = {"room": "vip", "data": "hi"}
        assert (await peer.request("hubbub.publish", publish, id=2))["error"]["code"] == "forbidden"
        assert await server.app.hub.room_count("vip") == 0
        assert await peer.request("enter", id=3) == {"id": 3, "data": ["vip"]}
        assert await server.app.hub.room_members("vip") == [client_id]
        assert (await peer.request("hubbub.publish", publish, id=4))["error"]["code"] == "forbidden"
        assert await peer.request("hubbub.leave", {"room": "vip"}, id=5) == {"id": 5, "data": {"room": "vip"}}
        assert await server.app.hub.room_count("vip") == 0


async def test_publish_reaches_members_with_the_senders_real_id() -> None:
    """Members get room/from/user/data; "from" and "user" are the server's, whatever the client wrote."""
    async with (
        serve_app(make_app([])) as server,
        aiohttp.ClientSession() as session,
        ws_connect(server.url("/chat?user=alice"), subprotocols=[JSON]) as ws_a,
        session.ws_connect(server.url("/chat?user=bob"), protocols=(JSON,)) as ws_b,
    ):
        alice, bob = Peer.of_websockets(ws_a), Peer.of_aiohttp(ws_b)
        outsider = Peer.of_hubbub(await server.connect("/chat?user=carol", subprotocols=[JSON]))
        alice_id = (await alice.welcome())["client_id"]
        await bob.welcome()
        await outsider.welcome()
        for peer in (alice, bob):
            await peer.request("hubbub.join", {"room": "lobby"}, id="j")
        published = {
            "room": "lobby",
            "type": "chat",
            "from": "fake-client",
            "user": "mallory",
            "data": {"text": "hi", "from": "also-fake"},
        }
        reply = await alice.request("hubbub.publish", published, id="p")
        assert reply == {"id": "p", "data": {"room": "lobby", "delivered": 2}}
        expected = {
            "type": "chat",
            "data": {"room": "lobby", "from": alice_id, "user": "alice", "data": {"text": "hi", "from": "also-fake"}},
        }
        assert await bob.recv_type("chat") == expected
        assert await alice.recv_type("chat") == expected
        await bob.send({"type": "hubbub.publish", "data": {"room": "lobby", "data": [1, 2]}})
        untyped = await alice.recv_type("hubbub.message")
        assert untyped["data"]["data"] == [1, 2] and untyped["data"]["user"] == "bob"
        outsider_publish = await outsider.request("hubbub.publish", {"room": "lobby", "data": 1})
        assert outsider_publish["error"]["code"] == "forbidden"
        assert await outsider.request("ping", id=2) == {"id": 2, "data": "pong"}
        assert len(outsider.frames) == 3  # welcome, the refusal, pong: no room traffic


async def test_presence_events_reach_the_other_members() -> None:
    """Join, leave and disconnect of a member are announced to the others, never to the subject itself."""
    async with (
        serve_app(make_app([])) as server,
        aiohttp.ClientSession() as session,
        ws_connect(server.url("/chat?user=alice"), subprotocols=[JSON]) as ws_a,
    ):
        alice = Peer.of_websockets(ws_a)
        await alice.welcome()
        await alice.request("hubbub.join", {"room": "lobby"}, id=1)
        ws_b = await session.ws_connect(server.url("/chat?user=bob"), protocols=(JSON,))
        bob = Peer.of_aiohttp(ws_b)
        bob_id = (await bob.welcome())["client_id"]
        await bob.request("hubbub.join", {"room": "lobby"}, id=1)
        who = {"room": "lobby", "client_id": bob_id, "user": "bob", "info": {}}
        assert await alice.recv() == {"type": "hubbub.presence", "data": {**who, "action": "join"}}
        assert await bob.request("ping", id=2) == {"id": 2, "data": "pong"}
        assert len(bob.frames) == 3  # welcome, join reply, pong: nothing about itself
        await bob.request("hubbub.leave", {"room": "lobby"}, id=3)
        assert await alice.recv() == {"type": "hubbub.presence", "data": {**who, "action": "leave"}}
        await bob.request("hubbub.join", {"room": "lobby"}, id=4)
        assert (await alice.recv())["data"]["action"] == "join"
        await ws_b.close()
        assert await alice.recv() == {"type": "hubbub.presence", "data": {**who, "action": "leave"}}
        assert await server.app.hub.room_count("lobby") == 1


async def test_envelope_room_broadcast_reaches_every_codec() -> None:
    """One Envelope broadcast: a json member gets JSON, a msgpack member MessagePack, a raw-route member JSON text."""
    async with (
        serve_app(make_app([])) as server,
        aiohttp.ClientSession() as session,
        ws_connect(server.url("/mixed"), subprotocols=[JSON]) as ws_json,
        session.ws_connect(server.url("/mixed"), protocols=(MSGPACK,)) as ws_pack,
    ):
        raw = await server.connect("/raw")

        async def all_joined() -> bool:
            return await server.app.hub.room_count("mix") == 3

        await wait_for(all_joined, timeout=5)
        sent = await server.app.hub.room_broadcast("mix", Envelope("news", {"n": 1, "tags": ["a"]}))
        assert sent == 3
        expected = {"type": "news", "data": {"n": 1, "tags": ["a"]}}
        json_peer, pack_peer = Peer.of_websockets(ws_json), Peer.of_aiohttp(ws_pack)
        assert await json_peer.recv_type("news") == expected
        assert isinstance(json_peer.frames[-1], str)
        assert await pack_peer.recv_type("news") == expected
        assert isinstance(pack_peer.frames[-1], bytes)
        raw_frame = await raw.recv(timeout=5)
        assert isinstance(raw_frame, str) and orjson.loads(raw_frame) == expected
        await raw.send("still raw")
        assert await raw.recv(timeout=5) == "still raw"
        await raw.close()
