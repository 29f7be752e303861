"""The fallback transport (SSE for server -> client, POST for client -> server) over real
sockets, through a relay that refuses WebSocket upgrades as some proxies do: the Python
client falls back by itself, and rooms, publications, requests both ways, presence, auth
and recovery after the stream drops work as over a WebSocket; and each refusal of the
server (unknown or ended session, bad credentials, oversized POST, bad JSON) is checked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio

from hubbub.client import Client
from hubbub.errors import HandshakeError
from hubbub.testing import TestServer
from tests.integration.client_support import FAST, WAIT, Recorder, served, token
from tests.support.relay import Relay

BOTH = ("websocket", "sse")


@pytest_asyncio.fixture
async def server() -> AsyncIterator[TestServer]:
    async with served(max_message_size=4096) as running:
        yield running


@pytest_asyncio.fixture
async def proxy(server: TestServer) -> AsyncIterator[Relay]:
    async with Relay(server.port, refuse_upgrades=True) as running:
        yield running


async def test_client_falls_back_and_does_rooms_requests_and_presence(server: TestServer, proxy: Relay) -> None:
    async with (
        Client(proxy.url("/rooms"), transports=BOTH) as fallback,
        Client(server.url("/rooms")) as direct,
    ):
        assert fallback.transport == "sse" and direct.transport == "websocket"
        assert proxy.refused_upgrades == 1
        fallback.handle("confirm", lambda data: {"ok": data})
        seen = Recorder(fallback, "chat", "hubbub.presence")
        direct_seen = Recorder(direct, "chat")
        await fallback.join("lobby")
        await direct.join("lobby")
        joined = await seen.wait("hubbub.presence")
        assert joined[0]["action"] == "join" and joined[0]["client_id"] == direct.client_id
        await direct.publish("lobby", "chat", {"text": "to sse"})
        await fallback.publish("lobby", "chat", {"text": "from sse"})
        assert [c["data"]["text"] for c in await seen.wait("chat", 2)] == ["to sse", "from sse"]
        assert (await direct_seen.wait("chat", 2))[1]["from"] == fallback.client_id
        assert await fallback.request("add", {"a": 2, "b": 3}) == 5
        assert await fallback.request("ask", 7) == {"ok": 7}  # a server request answered over POST
        await fallback.leave("lobby")
        await direct.publish("lobby", "chat", {"text": "after leave"})
        await direct_seen.wait("chat", 3)
        assert len(seen.of("chat")) == 2


async def test_without_the_fallback_the_refused_upgrade_is_raised(proxy: Relay) -> None:
    with pytest.raises(HandshakeError) as refused:
        await Client(proxy.url("/rooms")).connect()
    assert refused.value.status == 400


async def test_recovers_missed_publications_after_the_stream_drops(server: TestServer, proxy: Relay) -> None:
    away = Client(proxy.url("/rooms"), transports=BOTH, backoff=FAST)
    seen = Recorder(away, "chat", "recovery", "close")
    async with away, Client(server.url("/rooms")) as publisher:
        await away.join("lobby")
        for n in range(3):
            await publisher.publish("lobby", "chat", {"n": n})
        await seen.wait("chat", 3)
        first_session = away.client_id
        proxy.take_down()
        await seen.wait("close")
        for n in range(3, 50):
            await publisher.publish("lobby", "chat", {"n": n})
        proxy.bring_up()
        [recovery] = await seen.wait("recovery")
        assert recovery["recovered"] is True and recovery["missed"] == 47
        await publisher.publish("lobby", "chat", {"n": 50})
        await seen.wait("chat", 51)
        assert [c["data"]["n"] for c in seen.of("chat")] == list(range(51))
        assert away.transport == "sse" and away.client_id != first_session
    async with asyncio.timeout(WAIT):
        while server.app.fallback.open:  # the dropped and the closed sessions both ended on the server
            await asyncio.sleep(0.01)


async def test_auth_is_the_websocket_one(server: TestServer, proxy: Relay) -> None:
    async with Client(proxy.url("/secure"), transports=BOTH, token=lambda: token("carol")) as carol:
        assert carol.transport == "sse" and carol.user == "carol"
        assert await carol.request("whoami") == "carol"
    with pytest.raises(HandshakeError) as refused:
        await Client(proxy.url("/secure"), transports=BOTH, token="not-a-jwt").connect()
    assert refused.value.status == 401 and orjson.loads(refused.value.body)["code"] == 4002


class Stream:
    """A raw fallback session: its event stream read line by line, and POSTs."""

    def __init__(self, http: aiohttp.ClientSession, url: str, response: aiohttp.ClientResponse) -> None:
        self.http = http
        self.url = url
        self.response = response
        self.session = ""

    async def event(self) -> tuple[str, Any]:
        """The next event (name, parsed data), skipping comments."""
        name, data = "message", ""
        async with asyncio.timeout(WAIT):
            while True:
                line = (await self.response.content.readline()).decode().rstrip("\n")
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line == "" and data:
                    return name, orjson.loads(data)

    async def post(self, body: bytes, **headers: str) -> aiohttp.ClientResponse:
        async with self.http.post(self.url, params={"session": self.session}, data=body, headers=headers) as answer:
            await answer.read()
            return answer


async def open_stream(http: aiohttp.ClientSession, url: str, **headers: str) -> Stream:
    response = await http.get(url, headers={"accept": "text/event-stream", **headers})
    assert response.status == 200 and response.headers["content-type"].startswith("text/event-stream")
    stream = Stream(http, url, response)
    name, data = await stream.event()
    assert name == "session"
    stream.session = data["session"]
    name, welcome = await stream.event()
    assert welcome["type"] == "hubbub.welcome"
    return stream


async def test_server_refusals(server: TestServer) -> None:
    url = server.http_url("/rooms")
    async with aiohttp.ClientSession() as http:
        stream = await open_stream(http, url)
        accepted = await stream.post(orjson.dumps([{"type": "hubbub.join", "id": "1", "data": {"room": "r"}}]))
        assert accepted.status == 202
        assert (await stream.event())[1]["id"] == "1"
        # bad JSON: an error envelope on the stream, and the session goes on
        assert (await stream.post(b"{not json")).status == 202
        _name, error = await stream.event()
        assert error["type"] == "hubbub.error" and error["error"]["code"] == "invalid_message"
        # a message at the size limit passes, one over it is refused with 413
        note = {"type": "note", "data": "x"}
        under = orjson.dumps({**note, "data": "x" * (4096 - len(orjson.dumps(note)) + 1)})
        assert len(under) == 4096 and (await stream.post(under)).status == 202
        assert (await stream.event())[1]["type"] == "noted"
        assert (await stream.post(under + b" ")).status == 413
        # unknown session: 404; a session whose stream ended: 410
        async with http.post(url, params={"session": "nope"}, data=b"{}") as unknown:
            assert unknown.status == 404
        stream.response.close()
        async with asyncio.timeout(WAIT):
            while stream.session in server.app.fallback.open:
                await asyncio.sleep(0.01)
        assert (await stream.post(b"{}")).status == 410
        # a GET that does not ask for an event stream is still refused as before
        async with http.get(url) as plain:
            assert plain.status == 400


async def test_posts_authenticate_as_the_session_user(server: TestServer) -> None:
    url = server.http_url("/secure")
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers={"accept": "text/event-stream"}) as anonymous:
            assert anonymous.status == 401
        stream = await open_stream(http, f"{url}?token={token('dora')}")
        whoami = orjson.dumps({"type": "whoami", "id": "w"})
        assert (await stream.post(whoami, authorization=f"Bearer {token('dora')}")).status == 202
        assert (await stream.event())[1] == {"id": "w", "data": "dora"}
        assert (await stream.post(whoami, authorization=f"Bearer {token('eve')}")).status == 401
        stream.url = url  # without the ?token= the stream was opened with: no credentials
        assert (await stream.post(whoami)).status == 401
        stream.response.close()


@pytest.mark.timeout(60)
async def test_outgoing_queue_is_bounded_by_the_route_policy() -> None:
    """6 MB published to a room with a 64 KiB limit: the client that reads gets every message,
    the one whose stream stalls (a relay that stops passing it on) is closed by the policy."""
    padding = "x" * 16_384
    async with (
        served(max_backpressure=64 * 1024) as server,
        Relay(server.port) as relay,
        aiohttp.ClientSession() as http,
        Client(server.url("/rooms")) as publisher,
    ):
        reading = await open_stream(http, server.http_url("/rooms"))
        stalled = await open_stream(http, relay.url("/rooms", scheme="http"))
        for stream in (reading, stalled):
            join = orjson.dumps({"type": "hubbub.join", "id": "j", "data": {"room": "bp"}})
            assert (await stream.post(join)).status == 202
            assert (await stream.event())[1]["id"] == "j"
        relay.stall()
        reading_task = asyncio.create_task(drain(reading, 400))
        for n in range(400):
            await publisher.publish("bp", "chat", {"n": n, "pad": padding})
        assert await reading_task == list(range(400))  # the reading client lost nothing
        async with asyncio.timeout(WAIT):
            while stalled.session in server.app.fallback.open:
                await asyncio.sleep(0.01)
        assert server.app.hub.stats.backpressure_closes >= 1
        assert reading.session in server.app.fallback.open
        assert (await stalled.post(b"{}")).status == 410


async def drain(stream: Stream, count: int) -> list[int]:
    """The numbers of the next `count` chat publications (presence events skipped)."""
    numbers: list[int] = []
    while len(numbers) < count:
        _name, envelope = await stream.event()
        if envelope.get("type") == "chat":
            numbers.append(envelope["data"]["data"]["n"])
    return numbers


async def test_heartbeats_keep_an_idle_stream_talking(server: TestServer) -> None:
    server.app.fallback.heartbeat = 0.05
    async with aiohttp.ClientSession() as http:
        stream = await open_stream(http, server.http_url("/rooms"))
        async with asyncio.timeout(WAIT):
            while (await stream.response.content.readline()) != b": heartbeat\n":
                pass
        stream.response.close()


async def test_request_body_bound_from_both_sides() -> None:
    async with served(max_request_body=8192, max_message_size=1 << 20) as server, aiohttp.ClientSession() as http:
        stream = await open_stream(http, server.http_url("/rooms"))
        note = {"type": "note", "data": ""}
        fits = orjson.dumps([{**note, "data": "x" * 4000}, {**note, "data": "y" * 4000}])
        assert len(fits) <= 8192 and (await stream.post(fits)).status == 202
        assert [(await stream.event())[1]["data"][:1] for _ in range(2)] == ["x", "y"]
        too_big = orjson.dumps([{**note, "data": "x" * 4100}, {**note, "data": "y" * 4100}])
        assert (await stream.post(too_big)).status == 413
        assert stream.session in server.app.fallback.open  # the session goes on
        stream.response.close()


async def test_shutdown_ends_every_stream_with_1001() -> None:
    async with aiohttp.ClientSession() as http, served() as server:
        stream = await open_stream(http, server.http_url("/rooms"))
        stopping = asyncio.create_task(server.running.shutdown(timeout=5.0))
        assert await stream.event() == ("close", {"code": 1001, "reason": "server shutting down"})
        await stopping


@pytest.mark.timeout(60)
async def test_the_fallback_under_uvicorn() -> None:
    """The same App under ASGI (uvicorn): the Python client falls back, requests and rooms work,
    and the session ends on the server when the client closes."""
    from tests.integration.client_support import build
    from tests.integration.test_asgi import uvicorn_serving

    app = build()
    async with uvicorn_serving(app) as port, Relay(port, refuse_upgrades=True) as refusing:
        async with Client(refusing.url("/rooms"), transports=BOTH) as client:
            seen = Recorder(client, "chat")
            assert client.transport == "sse" and refusing.refused_upgrades == 1
            assert await client.request("add", {"a": 1, "b": 2}) == 3
            await client.join("lobby")
            await client.publish("lobby", "chat", {"n": 1})
            assert (await seen.wait("chat"))[0]["data"] == {"n": 1}
            assert len(app.fallback.open) == 1
        async with asyncio.timeout(WAIT):
            while app.fallback.open:
                await asyncio.sleep(0.01)


async def test_posts_wait_while_the_app_is_behind() -> None:
    """Reading pauses at `max_pending_messages` queued events: a POST past it is answered only once
    the handlers caught up; one within it is answered at once."""
    from hubbub import App, Event
    from hubbub.testing import serve_app

    app = App(max_pending_messages=4)
    gate = asyncio.Event()
    done: list[int] = []
    slow = app.channel("/slow", auth=False)

    @slow.on("work")
    async def work(event: Event) -> None:
        await gate.wait()
        done.append(int(event.data))

    async with serve_app(app) as server, aiohttp.ClientSession() as http:
        stream = await open_stream(http, server.http_url("/slow"))
        batch = orjson.dumps([{"type": "work", "data": n} for n in range(3)])
        assert (await stream.post(batch)).status == 202  # 1 running, 2 queued: within the bound
        more = asyncio.create_task(stream.post(orjson.dumps([{"type": "work", "data": n} for n in range(3, 12)])))
        transport = server.app.fallback.open[stream.session]
        async with asyncio.timeout(WAIT):
            while not transport.reading_paused:
                await asyncio.sleep(0.01)
        assert not more.done()  # held: the app is behind
        gate.set()
        assert (await more).status == 202
        async with asyncio.timeout(WAIT):
            while len(done) < 12:
                await asyncio.sleep(0.01)
        assert done == list(range(12))
        stream.response.close()
