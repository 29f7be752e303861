"""Edges of the fallback transport (SSE + POST): an upgrade that is never answered, the bound by
which a session's stream must have started, a disallowed Origin on the stream and on POSTs, and
POST bodies that are not UTF-8 or not JSON. Real sockets, except where a case needs an HTTP
server that behaves as the ASGI spec allows and the installed ones do not (said there)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest

from hubbub.client import Client
from hubbub.testing import wait_for
from tests.integration.client_support import WAIT, build, served
from tests.integration.test_fallback_transport import BOTH, open_stream
from tests.support.relay import Relay

ALLOWED = "https://app.example"


async def test_python_client_falls_back_when_the_upgrade_is_never_answered() -> None:
    """A network that takes the upgrade request and says nothing: `connect_timeout` ends the attempt."""
    async with (
        served() as server,
        Relay(server.port, hold_upgrades=True) as silent,
        Client(silent.url("/rooms"), transports=BOTH, connect_timeout=1.0) as client,
    ):
        assert client.transport == "sse" and silent.held_upgrades == 1
        assert await client.request("add", {"a": 2, "b": 2}) == 4


async def test_a_stream_being_read_outlives_the_start_timeout() -> None:
    async with served() as server, aiohttp.ClientSession() as http:
        server.app.fallback.start_timeout = 0.2
        server.app.fallback.heartbeat = 0.8  # the first heartbeat comes after the start timeout passed
        stream = await open_stream(http, server.http_url("/rooms"))
        async with asyncio.timeout(WAIT):
            while (await stream.response.content.readline()) != b": heartbeat\n":
                pass
        assert stream.session in server.app.fallback.open
        assert (await stream.post(orjson.dumps({"type": "add", "id": "a", "data": {"a": 1, "b": 2}}))).status == 202
        assert (await stream.event())[1] == {"id": "a", "data": 3}
        stream.response.close()


async def test_a_session_whose_stream_never_starts_is_ended_after_the_start_timeout() -> None:
    """Under ASGI the stream starts only when the server takes the answer. The spec has a server
    raise an OSError from `send` once the client has left; uvicorn drops the message instead (its
    case is in test_fallback_transport.py), so this test plays such a server: the request is
    handed to the App's real ASGI bridge and the answer's start is refused."""
    app = build()
    app.fallback.start_timeout = 2.0
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/rooms",
        "raw_path": b"/rooms",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1"), (b"accept", b"text/event-stream")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    left = asyncio.Event()
    starts: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if not starts:
            starts.append({})
            return {"type": "http.request", "body": b"", "more_body": False}
        await left.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        left.set()
        raise OSError("the client left")  # what the spec has a server do after a disconnect

    async with app.lifespan():
        loop = asyncio.get_running_loop()
        began = loop.time()
        await app(scope, receive, send)
        [transport] = app.fallback.open.values()  # attached, its stream never started
        assert await app.hub.connection_count() == 1
        await wait_for(lambda: not app.fallback.open, timeout=WAIT)
        assert loop.time() - began >= 2.0  # ended by the bound, not before
        assert transport.closed and transport.close_code == 1006
        await wait_for(lambda: _no_connections(app), timeout=WAIT)


async def _no_connections(app: Any) -> bool:
    return await app.hub.connection_count() == 0


async def test_an_origin_not_allowed_is_refused_on_the_stream_and_on_posts() -> None:
    async with served(allowed_origins=[ALLOWED]) as server, aiohttp.ClientSession() as http:
        url = server.http_url("/rooms")
        async with http.get(url, headers={"accept": "text/event-stream", "origin": "https://evil.example"}) as refused:
            assert refused.status == 403 and (await refused.json()) == {"error": "origin not allowed"}
        assert not server.app.fallback.open
        stream = await open_stream(http, url, origin=ALLOWED)  # the allowed one opens
        note = orjson.dumps({"type": "note", "data": "x"})
        assert (await stream.post(note, origin="https://evil.example")).status == 403
        assert (await stream.post(note, origin=ALLOWED)).status == 202
        assert (await stream.event())[1]["type"] == "noted"  # only the allowed POST reached the app
        assert (await stream.post(note)).status == 202  # no Origin (not a browser): passes, as for the WebSocket
        assert (await stream.event())[1]["type"] == "noted"
        stream.response.close()


@pytest.mark.parametrize(
    ("body", "status", "answer"),
    [
        (b'{"type": "note", "data": "caf\xe9"}', 400, {"error": "request body is not valid UTF-8"}),
        (b"\xff\xfe[]", 400, {"error": "request body is not valid UTF-8"}),
        (b"{not json", 202, {"accepted": 1}),
        (b"[1, {not json", 202, {"accepted": 1}),
        (b'[1, "two"]', 202, {"accepted": 2}),
    ],
)
async def test_post_bodies_that_are_not_utf8_or_not_json(body: bytes, status: int, answer: Any) -> None:
    async with served() as server, aiohttp.ClientSession() as http:
        stream = await open_stream(http, server.http_url("/rooms"))
        async with http.post(stream.url, params={"session": stream.session}, data=body) as posted:
            assert posted.status == status and await posted.json() == answer
        for _ in range(answer.get("accepted", 0)):  # each message that is not an envelope: an error on the stream
            _name, error = await stream.event()
            assert error["type"] == "hubbub.error" and error["error"]["code"] == "invalid_message"
        assert stream.session in server.app.fallback.open  # the session goes on either way
        assert (await stream.post(orjson.dumps({"type": "add", "id": "ok", "data": {"a": 1, "b": 1}}))).status == 202
        assert (await stream.event())[1] == {"id": "ok", "data": 2}
        stream.response.close()
