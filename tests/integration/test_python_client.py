"""`hubbub.client.Client` over real sockets, on the memory engine and on a real redis-server:
events, requests, server requests, rooms, presence, reconnects through a relay that drops
the network, the offline queue from both sides of its bound, refusals that must not be
retried, and wss:// through a TLS relay with a given SSL context."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from hubbub.client import Client, ClientError, QueueFull, RequestTimeout
from hubbub.errors import HandshakeError
from hubbub.testing import TestServer, wait_for
from tests.integration.client_support import FAST, WAIT, Recorder, served, token
from tests.support.relay import Relay


@pytest.fixture(params=["memory", "redis"])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture
async def server(engine: str, request: pytest.FixtureRequest) -> AsyncIterator[TestServer]:
    redis_url = request.getfixturevalue("redis_url") if engine == "redis" else None
    async with served(redis_url) as running:
        yield running


@pytest_asyncio.fixture
async def relay(server: TestServer) -> AsyncIterator[Relay]:
    async with Relay(server.port) as running:
        yield running


async def test_events_requests_and_errors(server: TestServer) -> None:
    async with Client(server.url("/rooms")) as client:
        assert client.connected and client.client_id
        seen = Recorder(client, "noted", "hubbub.error")
        assert await client.request("add", {"a": 2, "b": 3}) == 5
        with pytest.raises(ClientError) as failed:
            await client.request("fail")
        error = failed.value
        assert (error.code, error.message, error.extra) == ("nope", "not today", {"hint": "tomorrow"})
        await client.emit("note", {"n": 1})
        assert await seen.wait("noted") == [{"n": 1}]
        await client.emit("no-such-type")
        errors = await seen.wait("hubbub.error")
        assert errors[0]["code"] == "unknown_type"
        with pytest.raises(TypeError):
            await client.emit("")


async def test_request_timeout_and_server_requests(server: TestServer) -> None:
    async with Client(server.url("/rooms")) as client:
        with pytest.raises(ClientError) as unanswered:
            await client.request("ask", {"q": "sure?"})
        assert unanswered.value.code == "handler_error"  # the server's call got "unknown_type" back
        client.handle("confirm", lambda data: {"yes": data["q"]})
        assert await client.request("ask", {"q": "sure?"}) == {"yes": "sure?"}

        async def refuse(data: object) -> None:
            raise ClientError("declined", "no")

        client.handle("confirm", refuse)
        with pytest.raises(ClientError) as declined:
            await client.request("ask", {"q": "really?"})
        assert declined.value.code == "handler_error"  # the server's call raised RequestFailed("declined")
        with pytest.raises(RequestTimeout):
            await client.request("hubbub.join", {"room": "r"}, timeout=0.0)


async def test_rooms_publish_and_presence(server: TestServer) -> None:
    async with Client(server.url("/rooms")) as alice, Client(server.url("/rooms")) as bob:
        alice_seen = Recorder(alice, "chat", "hubbub.presence", "hubbub.message")
        assert (await alice.join("lobby"))["room"] == "lobby"
        assert alice.rooms == {"lobby"}
        await bob.join("lobby")
        joined = await alice_seen.wait("hubbub.presence")
        assert joined[0]["action"] == "join" and joined[0]["client_id"] == bob.client_id
        reply = await bob.publish("lobby", "chat", {"text": "hi"})
        assert reply["room"] == "lobby"
        await bob.publish("lobby", None, "plain")
        chat = await alice_seen.wait("chat")
        assert chat[0]["data"] == {"text": "hi"} and chat[0]["from"] == bob.client_id
        assert (await alice_seen.wait("hubbub.message"))[0]["data"] == "plain"
        with pytest.raises(ClientError) as forbidden:
            await alice.join("private-x")
        assert forbidden.value.code == "forbidden"
        assert alice.rooms == {"lobby"}
        await bob.leave("lobby")
        left = await alice_seen.wait("hubbub.presence", 2)
        assert left[1]["action"] == "leave"
        assert bob.rooms == frozenset()


async def test_token_and_refused_credentials(server: TestServer) -> None:
    async with Client(server.url("/secure"), token=lambda: token("carol")) as client:
        assert client.user == "carol"
        assert await client.request("whoami") == "carol"
    refused = Client(server.url("/secure"), token="not-a-jwt")
    with pytest.raises(ClientError) as no:
        await refused.connect()
    assert no.value.code == "refused" and no.value.extra["close_code"] == 4002
    with pytest.raises(ClientError):
        await refused.emit("x")  # the client stopped: nothing is queued for a connection that will not come


async def test_reconnects_with_backoff_and_rejoins(server: TestServer, relay: Relay) -> None:
    client = Client(relay.url("/rooms"), backoff=FAST)
    seen = Recorder(client, "open", "close", "reconnecting", "rejoin", "chat")
    async with client:
        await client.join("lobby")
        first = client.client_id
        relay.take_down()
        closed = await seen.wait("close")
        assert closed[0]["will_reconnect"] is True
        await seen.wait("reconnecting", 3)
        assert all(0 <= r["delay"] <= FAST.ceiling(r["attempt"]) for r in seen.of("reconnecting"))
        relay.bring_up()
        rejoined = await seen.wait("rejoin")
        assert rejoined[0] == {"rooms": ["lobby"], "failed": [], "unrecovered": []}
        assert client.connected and client.client_id != first
        assert seen.of("open")[-1]["reconnected"] is True
        await wait_for(_member_of(server, "lobby", client), timeout=WAIT)
        async with Client(server.url("/rooms")) as other:
            await other.publish("lobby", "chat", "after")
        assert (await seen.wait("chat"))[0]["data"] == "after"


def _member_of(server: TestServer, room: str, client: Client) -> Any:
    async def check() -> bool:
        return client.client_id in await server.app.hub.room_members(room)

    return check


async def test_offline_queue_both_sides_of_its_bound(server: TestServer, relay: Relay) -> None:
    client = Client(relay.url("/rooms"), backoff=FAST, max_queued=3)
    seen = Recorder(client, "noted", "close")
    async with client:
        relay.take_down()
        await seen.wait("close")
        assert not client.connected
        for n in range(2):
            await client.emit("note", n)
        waiting = asyncio.create_task(client.request("add", {"a": 1, "b": 1}, timeout=WAIT))
        await wait_for(lambda: len(client._outbox.queue) == 3)
        with pytest.raises(QueueFull):
            await client.emit("note", 99)
        with pytest.raises(ClientError) as offline:
            await client.request("add", {"a": 1, "b": 2}, offline="fail")
        assert offline.value.code == "disconnected"
        relay.bring_up()
        assert await waiting == 2
        assert await seen.wait("noted", 2) == [0, 1]
        await client.emit("note", 2)
        assert (await seen.wait("noted", 3))[2] == 2


async def test_sent_request_fails_when_the_connection_drops(server: TestServer, relay: Relay) -> None:
    client = Client(relay.url("/rooms"), backoff=FAST)
    async with client:
        client.handle("confirm", lambda data: asyncio.sleep(60))
        asking = asyncio.create_task(client.request("ask", {}, timeout=WAIT))
        await wait_for(lambda: any(p.sent for p in client._outbox.pending.values()))
        relay.cut()
        with pytest.raises(ClientError) as lost:
            await asking
        assert lost.value.code == "disconnected"


async def test_no_reconnect_after_4002_but_after_1011(server: TestServer) -> None:
    expiring = Client(server.url("/secure"), token=token("dave", ttl=1.5), backoff=FAST)
    seen = Recorder(expiring, "close", "reconnecting")
    async with expiring:
        closed = await seen.wait("close", timeout=WAIT)
        assert closed[0]["code"] == 4002 and closed[0]["will_reconnect"] is False
        assert seen.of("reconnecting") == []
        with pytest.raises(ClientError):
            await expiring.request("whoami")
    kept = Client(server.url("/rooms"), backoff=FAST)
    seen = Recorder(kept, "close", "open")
    async with kept:
        assert kept.client_id is not None
        await server.app.hub.close(kept.client_id, 1011, "going away")
        closed = await seen.wait("close")
        assert closed[0]["code"] == 1011 and closed[0]["will_reconnect"] is True
        await seen.wait("open", 2)


async def test_a_refused_first_handshake_is_raised(server: TestServer) -> None:
    with pytest.raises(HandshakeError) as missing:
        await Client(server.url("/nowhere")).connect()
    assert missing.value.status == 404


def _certificate(directory: Path) -> tuple[Path, Path]:
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


async def test_wss_with_a_given_ssl_context(server: TestServer, tmp_path: Path) -> None:
    key, cert = _certificate(tmp_path)
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)

    async def terminate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(server.host, server.port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)

    tls = await asyncio.start_server(terminate, "127.0.0.1", 0, ssl=server_side)
    port = tls.sockets[0].getsockname()[1]
    try:
        trusting = ssl.create_default_context(cafile=str(cert))
        async with Client(f"wss://127.0.0.1:{port}/rooms", ssl=trusting) as client:
            assert await client.request("add", {"a": 20, "b": 22}) == 42
        with pytest.raises(ssl.SSLCertVerificationError):
            await Client(f"wss://127.0.0.1:{port}/rooms").connect()  # the system's CAs do not know it
    finally:
        tls.close()


@pytest.mark.parametrize("engine", ["memory"], indirect=True)
async def test_a_429_retry_after_is_honoured(engine: str, request: pytest.FixtureRequest) -> None:
    async with served(handshakes_per_ip=2, handshake_window=2.0) as limited, Relay(limited.port) as relay:
        client = Client(relay.url("/rooms"), backoff=FAST)
        seen = Recorder(client, "open", "close")
        async with client:
            for opened in (2, 3):
                relay.cut()  # the 2nd handshake of the window succeeds, the 3rd gets 429 with retry-after
                await seen.wait("open", opened, timeout=WAIT)
            # without the hint the client would have retried every <= 100 ms until the window ended;
            # with it, one refused attempt, then one that succeeds in the next window
            assert relay.accepted <= 5, relay.accepted
            assert await client.request("add", {"a": 1, "b": 1}) == 2
