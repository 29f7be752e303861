"""Weak spots found by probing as an attacker and as an unlucky operator, each pinned down:
client strings bounded in errors and logs, header whitespace, JWT claims and reasons,
the IPv6 start-up line, and options replaced after the App was made."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import jwt
import msgpack
import orjson
import pydantic
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from hubbub import App, Event
from hubbub.auth.jwt_auth import JWTAuth
from hubbub.errors import ConfigurationError
from hubbub.testing import TestServer, serve_app
from hubbub.text import ECHO_LIMIT, clip

JSON = "hubbub.v1.json"
SECRET = "hardening-secret-0123456789abcdef"
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
LONG = "x" * 10_000


class Item(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    text: str


def channel_app(**options: Any) -> App:
    app = App(ping_interval=None, **options)
    chat = app.channel("/chat")

    @chat.on("item", model=Item)
    async def item(event: Event) -> str:
        return "ok"

    return app


async def envelope(ws: Any) -> dict[str, Any]:
    reply: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
    return reply


def hubbub_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name.startswith("hubbub")]


# ---- client strings in errors and logs ---------------------------------------------------------


def test_clip_keeps_short_strings_and_cuts_long_ones() -> None:
    assert clip("hello") == "hello"
    assert clip("x" * ECHO_LIMIT) == "x" * ECHO_LIMIT
    cut = clip("y" * 10_000)
    assert cut.startswith("y" * ECHO_LIMIT) and cut.endswith("...(10000 chars)") and len(cut) < ECHO_LIMIT + 20


@pytest.mark.parametrize("as_request", [False, True], ids=["event", "request"])
async def test_a_huge_unknown_type_is_not_echoed_or_logged_in_full(
    as_request: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hubbub")
    async with serve_app(channel_app()) as server, ws_connect(server.url("/chat"), subprotocols=[JSON]) as ws:
        await envelope(ws)  # welcome
        message: dict[str, Any] = {"type": LONG, "data": None}
        if as_request:
            message["id"] = 1
        raw = orjson.dumps(message)
        await ws.send(raw.decode())
        reply_text = await asyncio.wait_for(ws.recv(), 5)
        reply = orjson.loads(reply_text)
        error = reply["error"]
        assert error["code"] == "unknown_type"
        assert len(reply_text) < 400, len(reply_text)
        assert "(10000 chars)" in error["message"]
        if not as_request:
            assert reply["type"] == "hubbub.error" and error["type"] == clip(LONG)
    lines = hubbub_lines(caplog)
    assert any("unknown_type" in line for line in lines)
    assert max(len(line) for line in lines) < 600


async def test_a_known_type_is_echoed_whole_in_its_error() -> None:
    async with serve_app(channel_app()) as server, ws_connect(server.url("/chat"), subprotocols=[JSON]) as ws:
        await envelope(ws)
        await ws.send(orjson.dumps({"type": "item", "data": {"text": 1}}).decode())
        reply = await envelope(ws)
        assert reply["error"]["code"] == "validation_error" and reply["error"]["type"] == "item"


async def test_validation_errors_are_bounded_in_count_and_length() -> None:
    data = {"text": "ok", **{f"{i}-{'k' * 300}": i for i in range(500)}}
    async with serve_app(channel_app()) as server, ws_connect(server.url("/chat"), subprotocols=[JSON]) as ws:
        await envelope(ws)
        await ws.send(orjson.dumps({"type": "item", "data": data, "id": 7}).decode())
        reply_text = await asyncio.wait_for(ws.recv(), 5)
        error = orjson.loads(reply_text)["error"]
        assert error["code"] == "validation_error"
        assert len(error["fields"]) == 10
        assert all(len(part) < ECHO_LIMIT + 20 for field in error["fields"] for part in field["loc"])
        assert "(and 490 more)" in error["message"]
        assert len(reply_text) < 4000, len(reply_text)


async def test_a_huge_path_is_clipped_in_the_connect_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hubbub")
    app = App(ping_interval=None)

    @app.websocket("/r/{name}")
    async def echo(event: Event) -> None:
        await event.send(event.data)

    async with serve_app(app) as server, ws_connect(server.url("/r/" + "p" * 8000), max_size=None) as ws:
        await ws.send("hi")
        assert await ws.recv() == "hi"
    connects = [line for line in hubbub_lines(caplog) if line.startswith(("connect", "disconnect"))]
    assert len(connects) == 2
    assert all(len(line) < 300 and "(8003 chars)" in line for line in connects)


# ---- a publication every member's codec can carry ---------------------------------------------


async def test_msgpack_data_json_cannot_carry_is_refused_before_anyone_gets_it() -> None:
    """Found by fuzzing the envelope codecs: a MessagePack map with an integer key (or binary
    value) broke the whole room broadcast on a mixed channel; now the publisher gets bad_request
    and every member still gets the next publication."""
    app = App(ping_interval=None)
    chat = app.channel("/mixed", codecs=["json", "msgpack"])
    chat.authorize(lambda event, action, room: True)
    async with (
        serve_app(app) as server,
        ws_connect(server.url("/mixed"), subprotocols=[JSON]) as json_peer,
        ws_connect(server.url("/mixed"), subprotocols=["hubbub.v1.msgpack"]) as packed,
    ):
        await json_peer.recv()
        await packed.recv()
        await json_peer.send(orjson.dumps({"type": "hubbub.join", "id": 1, "data": {"room": "r"}}).decode())
        assert (await envelope(json_peer))["data"]["room"] == "r"
        await packed.send(msgpack.packb({"type": "hubbub.join", "id": 1, "data": {"room": "r"}}))
        while msgpack.unpackb(await packed.recv()).get("id") != 1:
            pass
        for bad in ({1: "integer key"}, {"blob": b"\x00\x01"}):
            message = {"type": "hubbub.publish", "id": 2, "data": {"room": "r", "data": bad}}
            await packed.send(msgpack.packb(message, use_bin_type=True))
            reply = msgpack.unpackb(await asyncio.wait_for(packed.recv(), 5))
            refusal = {"code": "bad_request", "message": "'data' cannot be sent to json clients"}
            assert reply == {"id": 2, "error": refusal}
        good = {"type": "hubbub.publish", "id": 3, "data": {"room": "r", "data": {"text": "hi"}}}
        await packed.send(msgpack.packb(good))
        got = await envelope(json_peer)
        while got["type"] == "hubbub.presence":
            got = await envelope(json_peer)
        assert got["type"] == "hubbub.message" and got["data"]["data"] == {"text": "hi"}


# ---- header values: surrounding whitespace is not part of the value ---------------------------


def raw_upgrade(path: str, extra: dict[str, str] | None = None, **overrides: str) -> bytes:
    headers = {
        "Host": "127.0.0.1",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": KEY,
        "Sec-WebSocket-Version": "13",
        **overrides,
        **(extra or {}),
    }
    lines = [f"GET {path} HTTP/1.1", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def status_of(server: TestServer, request: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection(server.running.host, server.running.port)
    writer.write(request)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    return int(head.split(b" ", 2)[1]), head


@pytest.mark.parametrize(
    "header, value",
    [
        ("Upgrade", "websocket "),
        ("Upgrade", "websocket\t"),
        ("Sec-WebSocket-Version", "13 "),
        ("Sec-WebSocket-Version", "13\t"),
        ("Sec-WebSocket-Key", KEY + " "),
        ("Connection", "Upgrade\t"),
    ],
)
async def test_trailing_whitespace_in_handshake_headers_is_ignored(header: str, value: str) -> None:
    async with serve_app(channel_app()) as server:
        status, head = await status_of(server, raw_upgrade("/chat", **{header: value}))
        assert status == 101, head


async def test_origin_and_authorization_values_are_stripped_too() -> None:
    app = channel_app(allowed_origins=["https://good.test"])
    app.authenticate(JWTAuth(secret=SECRET))
    token = jwt.encode({"sub": "alice", "exp": time.time() + 60}, SECRET, algorithm="HS256")
    async with serve_app(app) as server:
        extra = {"Origin": "https://good.test \t", "Authorization": f"Bearer {token}  "}
        status, head = await status_of(server, raw_upgrade("/chat", extra))
        assert status == 101, head
        refused, _ = await status_of(server, raw_upgrade("/chat", {"Origin": "https://evil.test "}))
        assert refused == 403


# ---- JWT: required claims and stable reasons ----------------------------------------------------


def no_exp_token(sub: str = "alice") -> str:
    return jwt.encode({"sub": sub}, SECRET, algorithm="HS256")


def with_exp_token(sub: str = "alice", ttl: float = 60) -> str:
    return jwt.encode({"sub": sub, "exp": time.time() + ttl}, SECRET, algorithm="HS256")


def test_a_token_without_exp_is_refused_by_default() -> None:
    auth = JWTAuth(secret=SECRET)
    with pytest.raises(Exception) as refused:
        auth.verify_token(no_exp_token())
    assert getattr(refused.value, "code", None) == 4002
    assert getattr(refused.value, "reason", None) == "invalid token: missing claim 'exp'"
    assert auth.verify_token(with_exp_token()).id == "alice"


def test_require_can_drop_exp_or_ask_for_more_claims() -> None:
    lenient = JWTAuth(secret=SECRET, require=())
    user = lenient.verify_token(no_exp_token())
    assert user.id == "alice" and user.expires_at is None
    strict = JWTAuth(secret=SECRET, require=("exp", "iat", "jti"))
    with pytest.raises(Exception) as refused:
        strict.verify_token(with_exp_token())
    assert getattr(refused.value, "reason", None) == "invalid token: missing claim 'iat'"
    full = jwt.encode({"sub": "a", "exp": time.time() + 60, "iat": time.time(), "jti": "1"}, SECRET, algorithm="HS256")
    assert strict.verify_token(full).id == "a"


async def test_refresh_with_a_token_without_exp_is_refused() -> None:
    app = channel_app()
    app.authenticate(JWTAuth(secret=SECRET))
    async with serve_app(app) as server:
        headers = {"authorization": f"Bearer {with_exp_token(ttl=30)}"}
        async with ws_connect(server.url("/chat"), subprotocols=[JSON], additional_headers=headers) as ws:
            await envelope(ws)
            await ws.send(orjson.dumps({"type": "hubbub.refresh", "id": 1, "data": {"token": no_exp_token()}}).decode())
            reply = await envelope(ws)
            assert reply["error"] == {"code": "unauthorized", "message": "invalid token: missing claim 'exp'"}
            good = with_exp_token(ttl=120)
            await ws.send(orjson.dumps({"type": "hubbub.refresh", "id": 2, "data": {"token": good}}).decode())
            assert "expires_at" in (await envelope(ws))["data"]


def signed(claims: dict[str, Any], key: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode({"sub": "a", "exp": time.time() + 60, **claims}, key, algorithm=algorithm)


def _segment(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "make_token, reason",
    [
        (lambda: "garbage", "invalid token: malformed"),
        (lambda: _segment(b"\xb7\xff\xfe") + "." + _segment(b"{}") + ".sig", "invalid token: malformed"),
        (lambda: signed({}, key="x" * 40), "invalid token: bad signature"),
        (lambda: signed({"exp": time.time() - 60}), "token expired"),
        (lambda: signed({"nbf": time.time() + 60}), "invalid token: not yet valid"),
        (lambda: signed({}, key="z" * 64, algorithm="HS512"), "invalid token: algorithm not allowed"),
    ],
    ids=["garbage", "bad-utf8-header", "bad-signature", "expired", "not-yet-valid", "wrong-algorithm"],
)
async def test_invalid_tokens_close_with_a_stable_documented_reason(make_token: Callable[[], str], reason: str) -> None:
    token = make_token()  # minted when the test runs: claims are relative to now
    app = channel_app()
    app.authenticate(JWTAuth(secret=SECRET))
    async with serve_app(app) as server:
        headers = {"authorization": f"Bearer {token}"}
        async with ws_connect(server.url("/chat"), subprotocols=[JSON], additional_headers=headers) as ws:
            await ws.wait_closed()
            assert ws.close_code == 4002
            assert ws.close_reason == reason


# ---- start-up line for IPv6 ------------------------------------------------------------------------


async def test_ipv6_start_up_line_and_url_put_the_address_in_brackets(caplog: pytest.LogCaptureFixture) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    caplog.set_level(logging.INFO, logger="hubbub")
    app = channel_app()
    async with serve_app(app, host="::1") as server:
        port = server.running.port
        assert server.running.url == f"ws://[::1]:{port}"
        assert f"hubbub serving on http://[::1]:{port}" in hubbub_lines(caplog)
        async with ws_connect(server.url("/chat"), subprotocols=[JSON]) as ws:
            assert (await envelope(ws))["type"] == "hubbub.welcome"


# ---- options replaced after App() -------------------------------------------------------------------


async def test_handshakes_per_ip_set_after_the_app_was_made_applies() -> None:
    app = channel_app()
    app.options = app.options.replace(handshakes_per_ip=2, handshake_window=60.0)
    async with serve_app(app) as server:
        for _ in range(2):
            async with ws_connect(server.url("/chat"), subprotocols=[JSON]) as ws:
                await envelope(ws)
        with pytest.raises(InvalidStatus) as refused:
            await ws_connect(server.url("/chat"), subprotocols=[JSON])
        assert refused.value.response.status_code == 429


async def test_handshakes_per_ip_can_be_switched_off_again() -> None:
    app = channel_app(handshakes_per_ip=1)
    app.options = app.options.replace(handshakes_per_ip=None)
    async with serve_app(app) as server:
        for _ in range(3):
            async with ws_connect(server.url("/chat"), subprotocols=[JSON]) as ws:
                await envelope(ws)


async def test_options_cannot_change_while_serving() -> None:
    app = channel_app()
    async with serve_app(app):
        with pytest.raises(ConfigurationError):
            app.options = app.options.replace(handshakes_per_ip=1)
    app.options = app.options.replace(handshakes_per_ip=1)
    assert app.options.handshakes_per_ip == 1
