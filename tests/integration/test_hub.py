"""Hub operations called from a WebSocket handler, an HTTP handler and a background task.

Each test runs once per calling context: a `Driver` sends a hub command (a JSON-able dict)
to the app, which runs it on `event.hub` / `app.hub` and answers with the result.
Clients on `/ws` are told their id first and then only receive what the hub sends them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
from websockets.asyncio.client import connect as ws_connect

from hubbub import App, Event, Hub
from hubbub.client import WebSocketClient
from hubbub.testing import TestServer, serve_app, wait_for

Command = dict[str, Any]
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


async def run_command(hub: Hub, cmd: Command) -> Any:
    """Run one hub operation; binary data travels as hex in "hex"."""
    data = bytes.fromhex(cmd["hex"]) if "hex" in cmd else cmd.get("data")
    match cmd["op"]:
        case "send":
            return await hub.send(cmd["to"], data)  # type: ignore[arg-type]
        case "close":
            return await hub.close(cmd["to"], cmd["code"], cmd["reason"])
        case "clients":
            return sorted(await hub.clients())
        case "connection_count":
            return await hub.connection_count()
        case "dropped_count":
            return await hub.dropped_count()
        case "broadcast":
            return await hub.broadcast(data, exclude=cmd.get("exclude"))  # type: ignore[arg-type]
        case "join":
            return await hub.join(cmd["room"], cmd["to"])
        case "leave":
            return await hub.leave(cmd["room"], cmd["to"])
        case "room_broadcast":
            return await hub.room_broadcast(cmd["room"], data, exclude=cmd.get("exclude"))  # type: ignore[arg-type]
        case "room_members":
            return sorted(await hub.room_members(cmd["room"]))
        case "room_count":
            return await hub.room_count(cmd["room"])
        case "rooms":
            return sorted(await hub.rooms())
    raise ValueError(f"unknown op {cmd['op']!r}")


@dataclass
class HubApp:
    """The app under test plus what its handlers record."""

    app: App
    commands: asyncio.Queue[tuple[Command, asyncio.Future[Any]]] = field(default_factory=asyncio.Queue)
    departed: dict[str, frozenset[str]] = field(default_factory=dict)


def build_app(**options: Any) -> HubApp:
    """/ws tells each client its id; /control, POST /hub and a background task run hub commands."""
    app = App(**options)
    built = HubApp(app)
    members = app.websocket("/ws")

    @members.on_connect
    async def tell_id(event: Event) -> None:
        await event.send(event.client_id)

    @members.on_disconnect
    async def remember(event: Event) -> None:
        built.departed[event.client_id] = event.rooms

    control = app.websocket("/control")
    control.on_connect(tell_id)

    @control.on_message
    async def from_websocket(event: Event) -> None:
        result = await run_command(event.hub, orjson.loads(event.text))
        await event.send(orjson.dumps({"result": result}).decode())

    @app.post("/hub")
    async def from_http(request: Any) -> dict[str, Any]:
        return {"result": await run_command(app.hub, request.json())}

    @app.background
    async def from_background() -> None:
        while True:
            cmd, reply = await built.commands.get()
            try:
                reply.set_result(await run_command(app.hub, cmd))
            except Exception as exc:
                reply.set_exception(exc)

    return built


class Driver:
    """Sends hub commands through one calling context; `own` holds ids of its own connections."""

    own: frozenset[str] = frozenset()

    async def __call__(self, op: str, **args: Any) -> Any:
        raise NotImplementedError


class WebSocketDriver(Driver):
    """Commands run inside a WebSocket message handler (hubbub's client on /control)."""

    def __init__(self, ws: WebSocketClient, own_id: str) -> None:
        self.ws = ws
        self.own = frozenset({own_id})

    async def __call__(self, op: str, **args: Any) -> Any:
        await self.ws.send(orjson.dumps({"op": op, **args}).decode())
        while True:  # skip what the hub delivered to the control connection itself
            reply = await self.ws.recv(timeout=5)
            if isinstance(reply, str) and reply.startswith('{"result"'):
                return orjson.loads(reply)["result"]


class HttpDriver(Driver):
    """Commands run inside an HTTP handler (aiohttp POST /hub)."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url

    async def __call__(self, op: str, **args: Any) -> Any:
        async with self.session.post(self.url, json={"op": op, **args}) as response:
            assert response.status == 200
            return (await response.json())["result"]


class BackgroundDriver(Driver):
    """Commands run inside the app's background task."""

    def __init__(self, commands: asyncio.Queue[tuple[Command, asyncio.Future[Any]]]) -> None:
        self.commands = commands

    async def __call__(self, op: str, **args: Any) -> Any:
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.commands.put_nowait(({"op": op, **args}, reply))
        return await asyncio.wait_for(reply, 5)


@pytest.fixture
async def hub_app() -> HubApp:
    return build_app()


@pytest.fixture
async def server(hub_app: HubApp) -> AsyncIterator[TestServer]:
    async with serve_app(hub_app.app) as running:
        yield running


@pytest.fixture(params=["websocket", "http", "background"])
async def driver(request: pytest.FixtureRequest, server: TestServer, hub_app: HubApp) -> AsyncIterator[Driver]:
    if request.param == "websocket":
        async with await server.connect("/control") as ws:
            yield WebSocketDriver(ws, str(await ws.recv(timeout=5)))
    elif request.param == "http":
        async with aiohttp.ClientSession() as session:
            yield HttpDriver(session, server.http_url("/hub"))
    else:
        yield BackgroundDriver(hub_app.commands)


async def _member(server: TestServer) -> tuple[WebSocketClient, str]:
    ws = await server.connect("/ws")
    return ws, str(await ws.recv(timeout=5))


async def test_send_text_and_bytes(server: TestServer, driver: Driver) -> None:
    """hub.send delivers str as a text message and bytes as a binary one (websockets client)."""
    async with ws_connect(server.url("/ws")) as ws:
        client_id = str(await asyncio.wait_for(ws.recv(), 5))
        assert await driver("send", to=client_id, data="hello") is True
        assert await driver("send", to=client_id, hex="00ff10") is True
        async with asyncio.timeout(5):
            assert await ws.recv() == "hello"
            assert await ws.recv() == b"\x00\xff\x10"


async def test_close_with_code_and_reason(server: TestServer, driver: Driver) -> None:
    """hub.close ends the connection with the given code and reason (aiohttp client sees both)."""
    async with aiohttp.ClientSession() as session, session.ws_connect(server.url("/ws")) as ws:
        client_id = await ws.receive_str(timeout=5)
        assert await driver("close", to=client_id, code=4001, reason="kicked") is True
        message = await ws.receive(timeout=5)
        assert message.type == aiohttp.WSMsgType.CLOSE
        assert (message.data, message.extra) == (4001, "kicked")
    await wait_for(lambda: _gone(driver, client_id))


async def _gone(driver: Driver, client_id: str) -> bool:
    return client_id not in await driver("clients")


async def test_clients_and_connection_count(server: TestServer, driver: Driver) -> None:
    """clients() lists every connected id and connection_count() counts them; a closed one drops out."""
    first, first_id = await _member(server)
    async with aiohttp.ClientSession() as session, session.ws_connect(server.url("/ws")) as second:
        second_id = await second.receive_str(timeout=5)
        assert set(await driver("clients")) == {first_id, second_id, *driver.own}
        assert await driver("connection_count") == 2 + len(driver.own)
        await first.close()
        await wait_for(lambda: _gone(driver, first_id))
        assert set(await driver("clients")) == {second_id, *driver.own}
        assert await driver("connection_count") == 1 + len(driver.own)


async def test_broadcast_to_all_with_exclude(server: TestServer, driver: Driver) -> None:
    """broadcast reaches every client but the excluded one."""
    (a, a_id), (b, _) = await _member(server), await _member(server)
    async with a, b:
        assert await driver("broadcast", data="to everyone but a", exclude=a_id) == 1 + len(driver.own)
        assert await driver("broadcast", hex="0102") == 2 + len(driver.own)
        assert await b.recv(timeout=5) == "to everyone but a"
        assert await b.recv(timeout=5) == b"\x01\x02"
        assert await a.recv(timeout=5) == b"\x01\x02"


async def test_rooms_join_leave_members_and_count(server: TestServer, driver: Driver) -> None:
    """join/leave change room_members, room_count and rooms(); leaving twice is False."""
    (a, a_id), (b, b_id) = await _member(server), await _member(server)
    async with a, b:
        assert await driver("join", room="red", to=a_id) is True
        assert await driver("join", room="red", to=b_id) is True
        assert await driver("join", room="blue", to=b_id) is True
        assert await driver("room_members", room="red") == sorted([a_id, b_id])
        assert await driver("room_count", room="red") == 2
        assert await driver("rooms") == ["blue", "red"]
        assert await driver("leave", room="blue", to=b_id) is True
        assert await driver("leave", room="blue", to=b_id) is False
        assert await driver("rooms") == ["red"]
        assert await driver("room_count", room="blue") == 0
        assert await driver("room_members", room="blue") == []


async def test_room_broadcast_text_and_bytes_with_exclude(server: TestServer, driver: Driver) -> None:
    """room_broadcast reaches room members only, but the excluded one, as text or binary."""
    (a, a_id), (b, b_id), (outsider, outsider_id) = await _member(server), await _member(server), await _member(server)
    async with a, b, outsider:
        for client_id in (a_id, b_id):
            assert await driver("join", room="lobby", to=client_id) is True
        assert await driver("room_broadcast", room="lobby", data="not for a", exclude=a_id) == 1
        assert await driver("room_broadcast", room="lobby", hex="cafe") == 2
        assert await driver("room_broadcast", room="empty", data="nobody") == 0
        assert await driver("send", to=outsider_id, data="only this") is True
        assert await b.recv(timeout=5) == "not for a"
        assert await b.recv(timeout=5) == b"\xca\xfe"
        assert await a.recv(timeout=5) == b"\xca\xfe"
        assert await outsider.recv(timeout=5) == "only this"


async def test_closed_connection_leaves_every_room(server: TestServer, driver: Driver, hub_app: HubApp) -> None:
    """A closed connection is taken out of all its rooms; rooms left empty disappear."""
    async with ws_connect(server.url("/ws")) as leaving:
        leaving_id = str(await asyncio.wait_for(leaving.recv(), 5))
        staying, staying_id = await _member(server)
        async with staying:
            for room in ("red", "blue"):
                assert await driver("join", room=room, to=leaving_id) is True
            assert await driver("join", room="blue", to=staying_id) is True
            await leaving.close()
            await wait_for(lambda: leaving_id in hub_app.departed)
            assert hub_app.departed[leaving_id] == {"red", "blue"}
            assert await driver("rooms") == ["blue"]
            assert await driver("room_members", room="blue") == [staying_id]
            assert await driver("room_count", room="red") == 0


async def test_unknown_client_id_returns_false(server: TestServer, driver: Driver) -> None:
    """Every per-client operation answers False for an id nobody has."""
    assert await driver("send", to=UNKNOWN_ID, data="x") is False
    assert await driver("close", to=UNKNOWN_ID, code=1000, reason="") is False
    assert await driver("join", room="red", to=UNKNOWN_ID) is False
    assert await driver("leave", room="red", to=UNKNOWN_ID) is False
    assert await driver("rooms") == []


async def test_dropped_count_with_drop_policy() -> None:
    """With backpressure_policy="drop", sends to a client that stopped reading are dropped and counted."""
    built = build_app(max_backpressure=4096, backpressure_policy="drop")
    async with serve_app(built.app) as server, aiohttp.ClientSession() as session:
        http = HttpDriver(session, server.http_url("/hub"))
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(
            b"GET /ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
            b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101")
        await wait_for(lambda: _count_is(http, 1))
        (stalled_id,) = await http("clients")
        assert await http("dropped_count") == 0
        chunk = "x" * 65536
        async with asyncio.timeout(15):
            while await http("send", to=stalled_id, data=chunk):
                pass
        assert await http("dropped_count") >= 1
        connection = built.app.hub.get(stalled_id)
        assert connection is not None and connection.dropped_count >= 1
        assert await http("clients") == [stalled_id]  # the drop policy keeps the connection
        writer.close()


async def _count_is(driver: Driver, count: int) -> bool:
    return bool(await driver("connection_count") == count)
