"""Server -> client requests: `connection.call` from inside a handler, and its four outcomes."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import msgpack
import pytest
from websockets.asyncio.client import connect as ws_connect

from hubbub import App, ConnectionClosed, Event
from hubbub.errors import RequestFailed
from hubbub.testing import serve_app
from tests.integration.channel_peers import JSON, MSGPACK, Peer


def make_app(outcomes: asyncio.Queue[Any], **options: Any) -> App:
    """A channel whose "ask" handler asks the client to confirm and reports what happened."""
    app = App(**options)
    chat = app.channel("/chat", codecs=("json", "msgpack"))

    @chat.on("ask")
    async def ask(event: Event) -> Any:
        timeout = event.data.get("timeout", 5) if isinstance(event.data, dict) else 5
        try:
            answer = await event.connection.call("confirm", {"question": "sure?"}, timeout=timeout)
        except RequestFailed as failed:
            outcomes.put_nowait(("failed", failed.code, failed.message))
            return {"failed": failed.code}
        except TimeoutError:
            outcomes.put_nowait(("timeout",))
            return {"timeout": True}
        except ConnectionClosed:
            outcomes.put_nowait(("closed",))
            raise
        outcomes.put_nowait(("answer", answer))
        return {"client said": answer}

    @chat.on("ping")
    async def ping(event: Event) -> str:
        return "pong"

    return app


@pytest.fixture
def outcomes() -> asyncio.Queue[Any]:
    """What each `call` ended with, as the server-side handler saw it."""
    return asyncio.Queue()


async def next_outcome(outcomes: asyncio.Queue[Any]) -> Any:
    """The next outcome the handler reported."""
    return await asyncio.wait_for(outcomes.get(), 5)


async def test_reply_reaches_the_waiting_handler(outcomes: asyncio.Queue[Any]) -> None:
    """The client's reply settles the call while the calling handler is still running (no deadlock)."""
    async with (
        serve_app(make_app(outcomes)) as server,
        ws_connect(server.url("/chat"), subprotocols=[JSON]) as ws,
    ):
        peer = Peer.of_websockets(ws)
        await peer.welcome()
        await peer.send({"type": "ask", "data": {}, "id": 1})
        question = await peer.recv()
        assert question["type"] == "confirm" and question["data"] == {"question": "sure?"}
        assert isinstance(question["id"], str)
        await peer.send({"id": question["id"], "data": "yes"})
        assert await peer.recv() == {"id": 1, "data": {"client said": "yes"}}
    assert await next_outcome(outcomes) == ("answer", "yes")


async def test_reply_is_read_while_messages_queue_behind_the_handler(outcomes: asyncio.Queue[Any]) -> None:
    """Requests queued behind the waiting handler do not stop the reply from being read; up to
    max_pending_messages of them are answered, in order, after it, and the ones past that bound
    are refused at once with "overloaded" (the queue stays bounded while the server waits)."""
    async with serve_app(make_app(outcomes, max_pending_messages=2)) as server:
        peer = Peer.of_hubbub(await server.connect("/chat", subprotocols=[JSON]))
        await peer.welcome()
        await peer.send({"type": "ask", "data": {}, "id": 1})
        question = await peer.recv()
        for id in range(10, 15):
            await peer.send({"type": "ping", "id": id})
        refused = [await peer.recv() for _ in range(3)]
        assert [(r["id"], r["error"]["code"]) for r in refused] == [
            (12, "overloaded"),
            (13, "overloaded"),
            (14, "overloaded"),
        ]
        # A stray reply is answered at once, so the real reply below arrives in a later read than the pings.
        await peer.send({"id": "stray"})
        stray = await peer.recv()
        assert stray["type"] == "hubbub.error" and stray["error"]["code"] == "bad_request"
        await peer.send({"id": question["id"], "data": "yes"})
        assert await peer.recv() == {"id": 1, "data": {"client said": "yes"}}
        assert [await peer.recv() for _ in range(2)] == [{"id": id, "data": "pong"} for id in range(10, 12)]
    assert await next_outcome(outcomes) == ("answer", "yes")


async def test_reply_over_msgpack(outcomes: asyncio.Queue[Any]) -> None:
    """The same round trip in MessagePack over aiohttp."""
    async with (
        serve_app(make_app(outcomes)) as server,
        aiohttp.ClientSession() as session,
        session.ws_connect(server.url("/chat"), protocols=(MSGPACK,)) as ws,
    ):
        peer = Peer.of_aiohttp(ws)
        await peer.welcome()
        await peer.send({"type": "ask", "data": {}, "id": 2})
        question = await peer.recv()
        await peer.send({"id": question["id"], "data": [1, b"\x00"]})
        assert await peer.recv() == {"id": 2, "data": {"client said": [1, b"\x00"]}}
        assert all(isinstance(frame, bytes) for frame in peer.frames)
    assert await next_outcome(outcomes) == ("answer", [1, b"\x00"])
    assert msgpack.unpackb(peer.frames[-1])["id"] == 2


async def test_error_reply_raises_request_failed(outcomes: asyncio.Queue[Any]) -> None:
    """An {"id", "error"} reply raises RequestFailed with the client's code and message."""
    async with (
        serve_app(make_app(outcomes)) as server,
        aiohttp.ClientSession() as session,
        session.ws_connect(server.url("/chat"), protocols=(JSON,)) as ws,
    ):
        peer = Peer.of_aiohttp(ws)
        await peer.welcome()
        await peer.send({"type": "ask", "data": {}, "id": "a"})
        question = await peer.recv()
        await peer.send({"id": question["id"], "error": {"code": "declined", "message": "no thanks"}})
        assert await peer.recv() == {"id": "a", "data": {"failed": "declined"}}
    assert await next_outcome(outcomes) == ("failed", "declined", "no thanks")


async def test_no_reply_raises_timeout_and_a_late_reply_is_refused(outcomes: asyncio.Queue[Any]) -> None:
    """No reply in time: TimeoutError in the handler; a reply after that is answered with bad_request."""
    async with serve_app(make_app(outcomes)) as server:
        peer = Peer.of_hubbub(await server.connect("/chat", subprotocols=[JSON]))
        await peer.welcome()
        await peer.send({"type": "ask", "data": {"timeout": 0.1}, "id": 3})
        question = await peer.recv()
        assert await peer.recv() == {"id": 3, "data": {"timeout": True}}
        assert await next_outcome(outcomes) == ("timeout",)
        await peer.send({"id": question["id"], "data": "too late"})
        late = await peer.recv()
        assert late["type"] == "hubbub.error" and late["error"]["code"] == "bad_request"
        assert await peer.request("ping", id=4) == {"id": 4, "data": "pong"}


async def test_connection_closed_while_waiting(outcomes: asyncio.Queue[Any]) -> None:
    """The client goes away while the server waits for its reply: the call raises ConnectionClosed."""
    async with serve_app(make_app(outcomes)) as server:
        ws = await server.connect("/chat", subprotocols=[JSON])
        peer = Peer.of_hubbub(ws)
        await peer.welcome()
        await peer.send({"type": "ask", "data": {"timeout": 30}, "id": 5})
        assert (await peer.recv())["type"] == "confirm"
        await ws.close()
        assert await next_outcome(outcomes) == ("closed",)


async def test_reply_with_unknown_id_is_a_bad_request(outcomes: asyncio.Queue[Any]) -> None:
    """A reply nobody asked for gets a bad_request hubbub.error; the connection stays usable."""
    async with (
        serve_app(make_app(outcomes)) as server,
        ws_connect(server.url("/chat"), subprotocols=[JSON]) as ws,
    ):
        peer = Peer.of_websockets(ws)
        await peer.welcome()
        for reply in ({"id": "s999999", "data": 1}, {"id": 17, "error": {"code": "x", "message": "y"}}):
            await peer.send(reply)
            error = await peer.recv()
            assert error["type"] == "hubbub.error" and error["error"]["code"] == "bad_request"
            assert str(reply["id"]) in error["error"]["message"]
        assert await peer.request("ping", id=6) == {"id": 6, "data": "pong"}
    assert outcomes.empty()
