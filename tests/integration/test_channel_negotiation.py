"""Channel routes negotiate their codec as a subprotocol and greet every client with a welcome."""

from __future__ import annotations

from typing import Any

import aiohttp
import msgpack
import orjson
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from hubbub import App, Event
from hubbub.errors import HandshakeError
from hubbub.testing import serve_app
from tests.integration.channel_peers import JSON, MSGPACK, Peer


def make_app() -> App:
    """An app with a json-only, a json+msgpack and a msgpack-first channel, all answering "add"."""
    app = App()

    async def add(event: Event) -> Any:
        return event.data["a"] + event.data["b"]

    for path, codecs in (("/json", ("json",)), ("/both", ("json", "msgpack")), ("/packfirst", ("msgpack", "json"))):
        app.channel(path, codecs=codecs).on("add")(add)
    app.channel("/alice", auth=lambda request: "alice").on("add")(add)
    return app


async def test_json_subprotocol_is_chosen_and_welcome_comes_first() -> None:
    """websockets offering hubbub.v1.json gets it back; the first message is the welcome."""
    async with (
        serve_app(make_app()) as server,
        ws_connect(server.url("/both"), subprotocols=[JSON]) as ws,
    ):
        assert ws.subprotocol == JSON
        peer = Peer.of_websockets(ws)
        welcome = await peer.welcome()
        assert isinstance(peer.frames[0], str)
        assert set(welcome) == {"client_id", "user", "protocol"}
        assert welcome["protocol"] == 1 and welcome["user"] is None
        assert server.app.hub.get(welcome["client_id"]) is not None
        assert await peer.request("add", {"a": 2, "b": 3}, id=7) == {"id": 7, "data": 5}


async def test_msgpack_subprotocol_uses_binary_frames() -> None:
    """aiohttp offering hubbub.v1.msgpack on a json+msgpack route talks MessagePack in binary frames."""
    async with (
        serve_app(make_app()) as server,
        aiohttp.ClientSession() as session,
        session.ws_connect(server.url("/both"), protocols=(MSGPACK,)) as ws,
    ):
        assert ws.protocol == MSGPACK
        first = await ws.receive(timeout=5)
        assert first.type == aiohttp.WSMsgType.BINARY
        welcome = msgpack.unpackb(first.data)
        assert welcome["type"] == "hubbub.welcome" and welcome["data"]["protocol"] == 1
        await ws.send_bytes(msgpack.packb({"type": "add", "data": {"a": 40, "b": 2}, "id": "q"}))
        reply = await ws.receive(timeout=5)
        assert reply.type == aiohttp.WSMsgType.BINARY
        assert msgpack.unpackb(reply.data) == {"id": "q", "data": 42}


async def test_preferred_order_is_the_clients() -> None:
    """Among several offered subprotocols the first one the route speaks wins; unknown ones are skipped."""
    async with serve_app(make_app()) as server:
        ws = await server.connect("/both", subprotocols=["chat.v2", MSGPACK, JSON])
        assert ws.subprotocol == MSGPACK
        assert isinstance(await ws.recv(timeout=5), bytes)
        await ws.close()


@pytest.mark.parametrize(("path", "binary"), [("/json", False), ("/packfirst", True)])
async def test_no_subprotocol_offered_gets_the_first_codec(path: str, binary: bool) -> None:
    """hubbub.client offering nothing: no subprotocol in the response, the route's first codec is used."""
    async with serve_app(make_app()) as server:
        ws = await server.connect(path)
        assert ws.subprotocol is None
        frame = await ws.recv(timeout=5)
        assert isinstance(frame, bytes) is binary
        welcome = msgpack.unpackb(frame) if binary else orjson.loads(frame)
        assert welcome["type"] == "hubbub.welcome"
        await ws.close()


async def test_only_unknown_hubbub_subprotocols_are_refused_with_400() -> None:
    """Offering only hubbub.v9.json: the handshake fails with 400 and a JSON reason, for both libraries."""
    async with serve_app(make_app()) as server:
        with pytest.raises(HandshakeError) as refused:
            await server.connect("/both", subprotocols=["hubbub.v9.json"])
        assert refused.value.status == 400
        assert "hubbub.v1.json" in orjson.loads(refused.value.body)["error"]
        with pytest.raises(InvalidStatus) as invalid:
            async with ws_connect(server.url("/json"), subprotocols=[Subprotocol("hubbub.v9.json")]):
                pass
        assert invalid.value.response.status_code == 400
        ok = await server.connect("/json", subprotocols=["hubbub.v9.json", JSON])
        assert ok.subprotocol == JSON
        await ok.close()


async def test_welcome_names_the_authenticated_user() -> None:
    """With an authenticator the welcome carries the user id next to the client id."""
    async with (
        serve_app(make_app()) as server,
        aiohttp.ClientSession() as session,
        session.ws_connect(server.url("/alice"), protocols=(JSON,)) as ws,
    ):
        welcome = await Peer.of_aiohttp(ws).welcome()
        assert welcome["user"] == "alice"
        conn = server.app.hub.get(welcome["client_id"])
        assert conn is not None and conn.user_id == "alice"
