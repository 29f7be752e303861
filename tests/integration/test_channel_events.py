"""Channel dispatch: one handler per event type, replies to requests, typed payloads, bare codecs."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import aiohttp
import msgspec
import pydantic
import pytest
from websockets.asyncio.client import connect as ws_connect

from hubbub import App, Event
from hubbub.testing import serve_app
from tests.integration.channel_peers import JSON, Peer


class SayModel(pydantic.BaseModel):
    """A pydantic payload."""

    text: str
    times: int = 1


class MoveStruct(msgspec.Struct):
    """A msgspec payload."""

    x: int
    y: int
    tags: list[str] = []


def make_app(calls: Counter[str], seen: asyncio.Queue[Any]) -> App:
    """A channel with an untyped, a pydantic and a msgspec event, plus text and bytes routes."""
    app = App()
    chat = app.channel("/chat")

    @chat.on("echo")
    async def echo(event: Event) -> Any:
        calls["echo"] += 1
        seen.put_nowait((event.name, event.request_id, event.data))
        return {"echo": event.data}

    @chat.on("upper")
    def upper(event: Event) -> str:  # a plain function works too
        calls["upper"] += 1
        return str(event.data).upper()

    @chat.on("say", model=SayModel)
    async def say(event: Event) -> Any:
        calls["say"] += 1
        assert isinstance(event.data, SayModel)
        return event.data.text * event.data.times

    @chat.on("move", model=MoveStruct)
    async def move(event: Event) -> Any:
        calls["move"] += 1
        assert isinstance(event.data, MoveStruct)
        return {"sum": event.data.x + event.data.y, "tags": event.data.tags}

    text = app.channel("/text", codecs=("text",))

    @text.on("message")
    async def shout(event: Event) -> None:
        calls["text"] += 1
        await event.send(event.data.upper())

    raw = app.channel("/bytes", codecs=("bytes",))

    @raw.on("message")
    async def reverse(event: Event) -> None:
        calls["bytes"] += 1
        await event.send(event.data[::-1])

    return app


@pytest.fixture
def calls() -> Counter[str]:
    """How often each handler ran."""
    return Counter()


@pytest.fixture
def seen() -> asyncio.Queue[Any]:
    """(name, request id, data) of every "echo" the server handled."""
    return asyncio.Queue()


async def test_requests_are_answered_under_their_id(calls: Counter[str], seen: asyncio.Queue[Any]) -> None:
    """Each type reaches its own handler; int and str ids come back unchanged with the return value."""
    async with (
        serve_app(make_app(calls, seen)) as server,
        ws_connect(server.url("/chat"), subprotocols=[JSON]) as ws,
    ):
        peer = Peer.of_websockets(ws)
        await peer.welcome()
        assert await peer.request("echo", [1, "two"], id=41) == {"id": 41, "data": {"echo": [1, "two"]}}
        assert await peer.request("upper", "hey", id="req-a") == {"id": "req-a", "data": "HEY"}
        assert await peer.request("echo", None, id=0) == {"id": 0, "data": {"echo": None}}
    assert calls == Counter(echo=2, upper=1)
    assert [seen.get_nowait() for _ in range(2)] == [("echo", 41, [1, "two"]), ("echo", 0, None)]


async def test_events_without_id_get_no_reply(calls: Counter[str], seen: asyncio.Queue[Any]) -> None:
    """An event runs its handler but nothing is sent back: the next frame is the reply to a later request."""
    async with (
        serve_app(make_app(calls, seen)) as server,
        aiohttp.ClientSession() as session,
        session.ws_connect(server.url("/chat"), protocols=(JSON,)) as ws,
    ):
        peer = Peer.of_aiohttp(ws)
        await peer.welcome()
        await peer.send({"type": "echo", "data": "fire and forget"})
        await peer.send({"type": "upper", "data": "ping"})
        assert await peer.request("upper", "after", id=2) == {"id": 2, "data": "AFTER"}
        assert len(peer.frames) == 2
    assert seen.get_nowait() == ("echo", None, "fire and forget")
    assert calls == Counter(echo=1, upper=2)


async def test_pydantic_payloads_are_validated(calls: Counter[str], seen: asyncio.Queue[Any]) -> None:
    """Valid data reaches the handler as the model; invalid data is a validation_error naming the fields."""
    async with serve_app(make_app(calls, seen)) as server:
        peer = Peer.of_hubbub(await server.connect("/chat", subprotocols=[JSON]))
        await peer.welcome()
        assert await peer.request("say", {"text": "ab", "times": 2}) == {"id": 1, "data": "abab"}
        reply = await peer.request("say", {"times": "many"}, id=2)
        error = reply["error"]
        assert reply["id"] == 2 and error["code"] == "validation_error"
        assert sorted(field["loc"] for field in error["fields"]) == [["text"], ["times"]]
        assert all(field["message"] for field in error["fields"])
        assert "text" in error["message"] and "times" in error["message"]
        await peer.send({"type": "say", "data": "not an object"})
        event_error = await peer.recv()
        assert event_error["type"] == "hubbub.error"
        assert event_error["error"]["code"] == "validation_error" and event_error["error"]["type"] == "say"
    assert calls["say"] == 1


async def test_msgspec_payloads_are_validated(calls: Counter[str], seen: asyncio.Queue[Any]) -> None:
    """A msgspec Struct: valid data arrives as the Struct; wrong and missing fields are named in the error."""
    async with serve_app(make_app(calls, seen)) as server:
        peer = Peer.of_hubbub(await server.connect("/chat", subprotocols=[JSON]))
        await peer.welcome()
        ok = await peer.request("move", {"x": 1, "y": 2, "tags": ["a"]})
        assert ok == {"id": 1, "data": {"sum": 3, "tags": ["a"]}}
        wrong = (await peer.request("move", {"x": 1, "y": "far"}, id=2))["error"]
        assert wrong["code"] == "validation_error"
        assert [field["loc"] for field in wrong["fields"]] == [["y"]] and "y" in wrong["message"]
        missing = (await peer.request("move", {"x": 1}, id=3))["error"]
        assert [field["loc"] for field in missing["fields"]] == [["y"]] and "y" in missing["message"]
        nested = (await peer.request("move", {"x": 1, "y": 2, "tags": ["a", 5]}, id=4))["error"]
        assert [field["loc"] for field in nested["fields"]] == [["tags", 1]]
    assert calls["move"] == 1


async def test_text_codec_route_passes_bare_strings(calls: Counter[str], seen: asyncio.Queue[Any]) -> None:
    """A "text" channel: no welcome, every text frame is a "message" event, sends are the bare data."""
    async with (
        serve_app(make_app(calls, seen)) as server,
        ws_connect(server.url("/text")) as ws,
    ):
        await ws.send('{"type": "not parsed"}')
        assert await asyncio.wait_for(ws.recv(), 5) == '{"TYPE": "NOT PARSED"}'
        await ws.send("second")
        assert await asyncio.wait_for(ws.recv(), 5) == "SECOND"
    assert calls["text"] == 2


async def test_bytes_codec_route_passes_bare_bytes(calls: Counter[str], seen: asyncio.Queue[Any]) -> None:
    """A "bytes" channel: binary frames in and out untouched; a text frame is refused with an error, not a close."""
    async with (
        serve_app(make_app(calls, seen)) as server,
        aiohttp.ClientSession() as session,
        session.ws_connect(server.url("/bytes")) as ws,
    ):
        await ws.send_bytes(b"\x00\x01\xff")
        reply = await ws.receive(timeout=5)
        assert reply.type == aiohttp.WSMsgType.BINARY and reply.data == b"\xff\x01\x00"
        await ws.send_str("text is not accepted here")
        refused = await ws.receive(timeout=5)
        assert refused.type == aiohttp.WSMsgType.BINARY and b"invalid_message" in refused.data
        await ws.send_bytes(b"ok")
        assert (await ws.receive(timeout=5)).data == b"ko"
    assert calls["bytes"] == 2
