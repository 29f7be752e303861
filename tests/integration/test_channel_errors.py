"""Channel errors: each bad message gets its documented error envelope, is logged with the
connection id, and leaves the connection open for the next request."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import connect as ws_connect

from hubbub import App, Event
from hubbub.protocol.envelope import EnvelopeError
from hubbub.testing import serve_app
from tests.integration.channel_peers import JSON, Peer

SECRET = "secret-detail-7f3a"


class Probe:
    """What the handlers saw: a cancelled slow handler, and how often each ran."""

    def __init__(self) -> None:
        self.cancelled = asyncio.Event()
        self.slow_started = asyncio.Event()
        self.runs = 0


def make_app(probe: Probe) -> App:
    """A channel whose handlers fail in each of the ways a handler can."""
    app = App()
    chat = app.channel("/chat", timeout=5)

    @chat.on("ping")
    async def ping(event: Event) -> str:
        probe.runs += 1
        return "pong"

    @chat.on("boom")
    async def boom(event: Event) -> None:
        raise RuntimeError(SECRET)

    @chat.on("slow", timeout=0.2)
    async def slow(event: Event) -> None:
        probe.slow_started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            probe.cancelled.set()
            raise

    @chat.on("refuse")
    async def refuse(event: Event) -> None:
        raise EnvelopeError("out_of_stock", "no more widgets", left=0)

    return app


async def open_peer(session: aiohttp.ClientSession, url: str) -> tuple[Peer, str]:
    """An aiohttp JSON peer past its welcome, and its client id."""
    ws = await session.ws_connect(url, protocols=(JSON,))
    peer = Peer.of_aiohttp(ws)
    return peer, (await peer.welcome())["client_id"]


def logged(caplog: pytest.LogCaptureFixture, client_id: str, *words: str) -> bool:
    """Whether a hubbub log record names the connection and contains every word."""
    return any(
        record.name.startswith("hubbub")
        and client_id in record.getMessage()
        and all(w in record.getMessage() for w in words)
        for record in caplog.records
    )


async def still_open(peer: Peer, id: int) -> None:
    """The connection still answers requests."""
    assert await peer.request("ping", id=id) == {"id": id, "data": "pong"}


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "invalid_message"),
        ("[1, 2, 3]", "invalid_message"),
        ('"just a string"', "invalid_message"),
        ('{"data": {"no": "type"}}', "invalid_message"),
        ('{"type": 5, "data": null}', "invalid_message"),
        ('{"type": "ping", "id": [1]}', "invalid_message"),
        ('{"type": "nope", "data": 1}', "unknown_type"),
    ],
)
async def test_bad_messages(frame: str, code: str, caplog: pytest.LogCaptureFixture) -> None:
    """Bad JSON, non-objects, missing or bad type/id, unknown types: a hubbub.error, a log line, still open."""
    probe = Probe()
    async with serve_app(make_app(probe)) as server, aiohttp.ClientSession() as session:
        peer, client_id = await open_peer(session, server.url("/chat"))
        await peer.send_raw(frame)
        envelope = await peer.recv()
        assert envelope["type"] == "hubbub.error" and "id" not in envelope
        assert envelope["error"]["code"] == code and envelope["error"]["message"]
        if code == "unknown_type":
            assert envelope["error"]["type"] == "nope"
        await still_open(peer, 1)
        assert logged(caplog, client_id, code)


async def test_unknown_type_request_is_answered_under_its_id(caplog: pytest.LogCaptureFixture) -> None:
    """A request of an unknown type gets its error as the reply, not as a hubbub.error."""
    async with serve_app(make_app(Probe())) as server, aiohttp.ClientSession() as session:
        peer, client_id = await open_peer(session, server.url("/chat"))
        reply = await peer.request("nope", {}, id="x1")
        assert reply["id"] == "x1" and reply["error"]["code"] == "unknown_type"
        await still_open(peer, 2)
        assert logged(caplog, client_id, "unknown_type")


async def test_handler_exception_is_an_internal_error(caplog: pytest.LogCaptureFixture) -> None:
    """A raising handler: "internal error" to the client (request and event), the traceback only in the log."""
    async with (
        serve_app(make_app(Probe())) as server,
        ws_connect(server.url("/chat"), subprotocols=[JSON]) as ws,
    ):
        peer = Peer.of_websockets(ws)
        client_id = (await peer.welcome())["client_id"]
        reply = await peer.request("boom", id=3)
        assert reply == {"id": 3, "error": {"code": "handler_error", "message": "internal error"}}
        await peer.send({"type": "boom"})
        event_error = await peer.recv()
        assert event_error == {
            "type": "hubbub.error",
            "error": {"code": "handler_error", "message": "internal error", "type": "boom"},
        }
        await still_open(peer, 4)
    assert not any(SECRET in str(frame) or "Traceback" in str(frame) for frame in peer.frames)
    failures = [r for r in caplog.records if r.exc_info and client_id in r.getMessage()]
    assert len(failures) == 2 and all(SECRET in str(r.exc_info[1]) for r in failures if r.exc_info)


async def test_slow_handler_times_out_and_is_cancelled(caplog: pytest.LogCaptureFixture) -> None:
    """Over its own timeout the handler is cancelled and the request gets a timeout error; later ones still run."""
    probe = Probe()
    async with serve_app(make_app(probe)) as server:
        peer = Peer.of_hubbub(await server.connect("/chat", subprotocols=[JSON]))
        client_id = (await peer.welcome())["client_id"]
        reply = await peer.request("slow", id=5)
        assert reply["id"] == 5 and reply["error"]["code"] == "timeout"
        assert probe.cancelled.is_set()
        await peer.send({"type": "slow"})
        event_error = await peer.recv()
        assert event_error["type"] == "hubbub.error"
        assert event_error["error"]["code"] == "timeout" and event_error["error"]["type"] == "slow"
        await still_open(peer, 6)
        assert logged(caplog, client_id, "timed out")


async def test_envelope_error_reaches_the_client_as_raised(caplog: pytest.LogCaptureFixture) -> None:
    """EnvelopeError from a handler: its code, message and extra fields, under the request id."""
    async with serve_app(make_app(Probe())) as server, aiohttp.ClientSession() as session:
        peer, client_id = await open_peer(session, server.url("/chat"))
        reply = await peer.request("refuse", id=8)
        assert reply == {"id": 8, "error": {"code": "out_of_stock", "message": "no more widgets", "left": 0}}
        await peer.send({"type": "refuse"})
        event_error: dict[str, Any] = await peer.recv()
        assert event_error["error"] == {
            "code": "out_of_stock",
            "message": "no more widgets",
            "left": 0,
            "type": "refuse",
        }
        await still_open(peer, 9)
        assert logged(caplog, client_id, "out_of_stock")
