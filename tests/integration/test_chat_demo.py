"""The chat demo's protocol (hubbub.demos.chat) driven by plain WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect

from hubbub.demos.chat import MAX_NICK, MAX_ROOMS_PER_CLIENT, MAX_TEXT, create_app
from hubbub.testing import TestServer, serve_app, wait_for

TIMEOUT = 5.0


class Chatter:
    """A websockets client speaking the chat protocol; remembers every message it got."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def send(self, **message: Any) -> None:
        await self.ws.send(json.dumps(message))

    async def next(self) -> dict[str, Any]:
        """The very next message."""
        async with asyncio.timeout(TIMEOUT):
            message: dict[str, Any] = json.loads(await self.ws.recv())
        self.seen.append(message)
        return message

    async def expect(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Skip messages until one of type `kind` with these field values arrives."""
        async with asyncio.timeout(TIMEOUT):
            while True:
                message = await self.next()
                if message["type"] == kind and all(message.get(k) == v for k, v in fields.items()):
                    return message


@asynccontextmanager
async def chatter(server: TestServer, nick: str | None = None, room: str | None = None) -> AsyncIterator[Chatter]:
    """A connected client, with a nickname and in a room if asked (everything up to then consumed)."""
    async with connect(server.url("/ws")) as ws:
        client = Chatter(ws)
        await client.expect("rooms")
        if nick is not None:
            await client.send(type="nick", nick=nick)
            await client.expect("nick", nick=nick)
        if room is not None:
            await client.send(type="join", room=room)
            await client.expect("joined", room=room.lower())  # room names are lower-cased
            await client.expect("rooms")  # the last message of a join
        yield client


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    async with serve_app(create_app()) as running:
        yield running


async def test_page_and_assets_are_served(server: TestServer) -> None:
    page = await server.request("GET", "/")
    assert page.status == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert 'id="nick-form"' in page.text and "/static/app.js" in page.text and "/static/style.css" in page.text
    script = await server.request("GET", "/static/app.js")
    assert script.status == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "textContent" in script.text
    assert "innerHTML" not in script.text and "insertAdjacentHTML" not in script.text
    style = await server.request("GET", "/static/style.css")
    assert style.status == 200 and style.headers["content-type"].startswith("text/css")
    for missing in ("/static/nope.js", "/static/chat.py", "/static/..%2Fchat.py", "/nope"):
        assert (await server.request("GET", missing)).status == 404, missing
    assert (await server.request("POST", "/", body="x")).status == 405


async def test_healthz_counts_connections(server: TestServer) -> None:
    async def connections() -> int:
        response = await server.request("GET", "/healthz")
        assert response.status == 200
        body = response.json()
        assert body["status"] == "ok"
        return int(body["connections"])

    assert await connections() == 0
    async with chatter(server, "alice", "lobby"), chatter(server):
        assert await connections() == 2

    async def all_gone() -> bool:
        return await connections() == 0

    await wait_for(all_gone, timeout=TIMEOUT)


async def test_a_message_reaches_its_room_only(server: TestServer) -> None:
    async with (
        chatter(server, "alice", "lobby") as alice,
        chatter(server, "bob", "lobby") as bob,
        chatter(server, "carol", "games") as carol,
    ):
        before = int(time.time() * 1000)
        await alice.send(type="say", room="lobby", text="hello lobby")
        heard = await bob.expect("message", room="lobby")
        assert heard["nick"] == "alice" and heard["text"] == "hello lobby"
        assert before - 1000 <= heard["ts"] <= int(time.time() * 1000) + 1000
        assert (await alice.expect("message", room="lobby"))["text"] == "hello lobby"  # the sender too
        # alice's later join reaches carol after anything alice sent before it would have
        await alice.send(type="join", room="games")
        await carol.expect("system", room="games", text="alice joined")
        assert not [m for m in carol.seen if m["type"] == "message"], carol.seen


async def test_members_and_system_lines_follow_joins_leaves_and_disconnects(server: TestServer) -> None:
    async with chatter(server, "alice") as alice:
        await alice.send(type="join", room="lobby")
        assert await alice.next() == {"type": "joined", "room": "lobby"}
        assert (await alice.next())["text"] == "alice joined"
        assert await alice.next() == {"type": "members", "room": "lobby", "members": ["alice"]}
        async with chatter(server, "bob", "lobby") as bob:
            await alice.expect("system", room="lobby", text="bob joined")
            await alice.expect("members", room="lobby", members=["alice", "bob"])
            await bob.send(type="leave", room="lobby")
            await bob.expect("left", room="lobby")
            await alice.expect("system", room="lobby", text="bob left")
            await alice.expect("members", room="lobby", members=["alice"])
            async with chatter(server, "Carol", "lobby"):
                await alice.expect("members", room="lobby", members=["alice", "Carol"])
            # carol's socket closed without a leave: the room still hears it
            await alice.expect("system", room="lobby", text="Carol left")
            await alice.expect("members", room="lobby", members=["alice"])
            await bob.send(type="say", room="lobby", text="still here?")
            refused = await bob.expect("error")
            assert refused["request"] == "say" and "join room lobby" in refused["message"]


async def test_room_list_reaches_everyone(server: TestServer) -> None:
    async with chatter(server) as watcher:
        async with chatter(server, "alice", "lobby"), chatter(server, "bob", "lobby"):
            await watcher.expect("rooms", rooms=[{"name": "lobby", "count": 2}])
            async with chatter(server, "carol", "Art"):
                await watcher.expect("rooms", rooms=[{"name": "art", "count": 1}, {"name": "lobby", "count": 2}])
            await watcher.expect("rooms", rooms=[{"name": "lobby", "count": 2}])
        await watcher.expect("rooms", rooms=[])
    async with chatter(server) as late:
        assert late.seen == [{"type": "rooms", "rooms": []}]


async def test_nick_change_is_announced_and_trimmed(server: TestServer) -> None:
    async with chatter(server, "alice", "lobby") as alice, chatter(server, "bob", "lobby") as bob:
        await alice.send(type="nick", nick="  alicia  ")
        assert await alice.expect("nick") == {"type": "nick", "nick": "alicia"}
        await bob.expect("system", room="lobby", text="alice is now known as alicia")
        await bob.expect("members", room="lobby", members=["alicia", "bob"])
        await alice.send(type="say", room="lobby", text="new name")
        assert (await bob.expect("message"))["nick"] == "alicia"


async def test_rejoining_is_harmless_and_rooms_are_limited(server: TestServer) -> None:
    async with chatter(server, "alice", "room0") as alice:
        await alice.send(type="join", room="room0")
        assert await alice.next() == {"type": "joined", "room": "room0"}
        for n in range(1, MAX_ROOMS_PER_CLIENT):
            await alice.send(type="join", room=f"room{n}")
            await alice.expect("rooms")
        await alice.send(type="join", room="one-too-many")
        refused = await alice.next()
        assert refused["type"] == "error" and f"at most {MAX_ROOMS_PER_CLIENT} rooms" in refused["message"]
        assert await server.app.hub.room_count("room0") == 1
        assert "one-too-many" not in await server.app.hub.rooms()


async def test_text_is_relayed_verbatim(server: TestServer) -> None:
    async with chatter(server, "<b>alice</b>", "lobby") as alice, chatter(server, "bob", "lobby") as bob:
        text = "<script>alert('x')</script> & \"quotes\"\nline two ✓"
        await alice.send(type="say", room="lobby", text=text)
        heard = await bob.expect("message")
        assert heard["text"] == text and heard["nick"] == "<b>alice</b>"


BAD_INPUT: list[tuple[str, bool, str | bytes, str, str | None]] = [
    # (case, has a nick and is in "lobby", what is sent, expected in the error, its "request")
    ("not json", False, "{nope", "not valid JSON", None),
    ("json array", False, "[1, 2]", "JSON object", None),
    ("no type", False, '{"nick": "x"}', 'string "type"', None),
    ("type not a string", False, '{"type": 5}', 'string "type"', None),
    ("unknown type", False, '{"type": "dance"}', "unknown message type 'dance'", "dance"),
    ("binary", False, b'{"type": "nick", "nick": "x"}', "not binary", None),
    ("empty nick", False, '{"type": "nick", "nick": "   "}', "must not be empty", "nick"),
    ("long nick", False, json.dumps({"type": "nick", "nick": "n" * (MAX_NICK + 1)}), "at most 24", "nick"),
    ("nick not a string", False, '{"type": "nick", "nick": 7}', '"nick" must be a string', "nick"),
    ("nick with control", False, '{"type": "nick", "nick": "a\\u0000b"}', "control characters", "nick"),
    ("join before nick", False, '{"type": "join", "room": "lobby"}', "choose a nickname", "join"),
    ("bad room name", True, '{"type": "join", "room": "no spaces"}', "room name", "join"),
    ("long room name", True, json.dumps({"type": "join", "room": "r" * 33}), "room name", "join"),
    ("missing room", True, '{"type": "say", "text": "hi"}', '"room" must be a string', "say"),
    ("say elsewhere", True, '{"type": "say", "room": "other", "text": "hi"}', "join room other", "say"),
    ("empty text", True, '{"type": "say", "room": "lobby", "text": " \\n "}', "must not be empty", "say"),
    ("long text", True, json.dumps({"type": "say", "room": "lobby", "text": "t" * (MAX_TEXT + 1)}), "at most", "say"),
    ("text control", True, '{"type": "say", "room": "lobby", "text": "a\\u0007"}', "control characters", "say"),
    ("leave elsewhere", True, '{"type": "leave", "room": "other"}', "not in room other", "leave"),
]


@pytest.mark.parametrize(
    ("has_nick", "sent", "expected", "request_type"), [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT]
)
async def test_bad_input_gets_an_error_reply(
    server: TestServer, has_nick: bool, sent: str | bytes, expected: str, request_type: str | None
) -> None:
    async with chatter(server, "alice" if has_nick else None, "lobby" if has_nick else None) as alice:
        await alice.ws.send(sent)
        reply = await alice.next()
        assert reply["type"] == "error" and expected in reply["message"], reply
        assert reply["request"] == request_type
        # the connection is still fine
        await alice.send(type="nick", nick="still-alice")
        assert await alice.next() == {"type": "nick", "nick": "still-alice"}


async def test_an_oversized_frame_closes_only_that_client(server: TestServer) -> None:
    async with chatter(server, "alice", "lobby") as alice, chatter(server, "bob", "lobby") as bob:
        await bob.ws.send("x" * 9000)
        async with asyncio.timeout(TIMEOUT):
            await bob.ws.wait_closed()
        assert bob.ws.close_code == 1009
        await alice.expect("system", room="lobby", text="bob left")
        await alice.send(type="say", room="lobby", text="alone")
        assert (await alice.expect("message"))["text"] == "alone"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_cli_runs_the_demo() -> None:
    """`python -m hubbub demo chat --port P` serves the page and the chat (aiohttp as the client)."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "hubbub", "demo", "chat", "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:

            async def up() -> bool:
                assert process.poll() is None, process.communicate()
                try:
                    async with session.get(f"{base}/healthz") as response:
                        return response.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await wait_for(up, timeout=15, interval=0.05)
            async with session.get(f"{base}/") as response:
                assert response.status == 200 and "hubbub chat" in await response.text()
            async with session.ws_connect(f"{base}/ws") as one, session.ws_connect(f"{base}/ws") as two:
                for ws, nick in ((one, "one"), (two, "two")):
                    await ws.send_json({"type": "nick", "nick": nick})
                    await ws.send_json({"type": "join", "room": "cli"})
                await _receive_until(two, "members", members=["one", "two"])
                await one.send_json({"type": "say", "room": "cli", "text": "from the cli"})
                heard = await _receive_until(two, "message")
                assert heard["nick"] == "one" and heard["text"] == "from the cli"
                async with session.get(f"{base}/healthz") as response:
                    assert await response.json() == {"status": "ok", "connections": 2}
        process.send_signal(signal.SIGTERM)
        out, err = await asyncio.to_thread(process.communicate, timeout=15)
        assert process.returncode == 0, err
        assert f"chat demo on http://127.0.0.1:{port}/" in out.decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def _receive_until(ws: aiohttp.ClientWebSocketResponse, kind: str, **fields: Any) -> dict[str, Any]:
    async with asyncio.timeout(TIMEOUT):
        while True:
            message: dict[str, Any] = await ws.receive_json()
            if message["type"] == kind and all(message.get(k) == v for k, v in fields.items()):
                return message
