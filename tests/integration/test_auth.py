"""Authentication over real sockets: JWT (HS256, RS256) and custom authenticators, the three
token sources, both refusal paths (close code or HTTP status), expiry and refresh.

Every case runs with hubbub's client, `websockets` and `aiohttp` behind one small `Peer`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal, cast

import aiohttp
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed as WebSocketsClosed
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from hubbub import App, Event
from hubbub.auth.jwt_auth import JWTAuth
from hubbub.auth.user import Authenticator, AuthError, User
from hubbub.client import connect as hubbub_connect
from hubbub.errors import ConnectionClosed, HandshakeError
from hubbub.testing import TestServer, serve_app, wait_for
from hubbub.web.request import Request

Lib = Literal["hubbub", "websockets", "aiohttp"]
LIBS: tuple[Lib, ...] = ("hubbub", "websockets", "aiohttp")
MODES = ("close", "http")
SECRET = "hubbub-tests-hmac-secret-32-bytes-long!"
AUDIENCE = "hubbub-tests"
ISSUER = "https://issuer.hubbub.test"
JSON_PROTOCOL = "hubbub.v1.json"
CLOSED_ERRORS = (ConnectionClosed, WebSocketsClosed, ConnectionError)

# ---- clients ------------------------------------------------------------------------------


class Refused(Exception):
    """The server answered the handshake with an HTTP status instead of 101."""

    def __init__(self, status: int, body: bytes | None) -> None:
        super().__init__(f"refused with {status}")
        self.status = status
        self.body = body  # None when the library does not expose it (aiohttp)


@dataclass
class Closed:
    """How a connection ended, and what arrived before the close."""

    code: int | None
    reason: str
    before: list[Any] = field(default_factory=list)


class Peer:
    """One client connection, made with any of the three libraries."""

    def __init__(self, conn: Any, subprotocol: str | None, session: aiohttp.ClientSession | None = None) -> None:
        self.conn = conn
        self.subprotocol = subprotocol
        self.session = session
        self.close_reason = ""  # aiohttp only hands the reason to the read that meets the close

    async def send_json(self, message: Any) -> None:
        """Send one JSON text message."""
        text = orjson.dumps(message).decode()
        if self.session is not None:
            await self.conn.send_str(text)
        else:
            await self.conn.send(text)

    async def recv_json(self, timeout: float = 5.0) -> Any:
        """The next message, parsed; raises one of CLOSED_ERRORS if the connection closes first."""
        if self.session is not None:
            msg = await self.conn.receive(timeout=timeout)
            if msg.type == aiohttp.WSMsgType.CLOSE:
                self.close_reason = msg.extra or ""
            if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                raise ConnectionError(f"closed: {msg.type.name}")
            return orjson.loads(msg.data)
        return orjson.loads(await asyncio.wait_for(self.conn.recv(), timeout))

    async def request(self, type: str, data: Any, id: int = 1) -> Any:
        """Send a request envelope and return the reply envelope (skipping other messages)."""
        await self.send_json({"type": type, "data": data, "id": id})
        while True:
            reply = await self.recv_json()
            if reply.get("id") == id:
                return reply

    async def wait_closed(self, timeout: float = 5.0) -> Closed:
        """Read until the server closes the connection."""
        before: list[Any] = []
        async with asyncio.timeout(timeout):
            try:
                while True:
                    before.append(await self.recv_json(timeout=timeout))
            except CLOSED_ERRORS:
                pass
            if self.session is None:
                await self.conn.wait_closed()
        return Closed(self.conn.close_code, self.close_reason or self.conn.close_reason or "", before)

    async def close(self) -> None:
        """Close (a no-op when already closed)."""
        await self.conn.close()
        if self.session is not None:
            await self.session.close()


async def open_peer(
    lib: Lib, url: str, *, headers: dict[str, str] | None = None, subprotocols: list[str] | None = None
) -> Peer:
    """Connect with `lib`; raises Refused if the handshake is answered with another status."""
    if lib == "hubbub":
        try:
            client = await hubbub_connect(url, headers=headers, subprotocols=subprotocols, timeout=5)
        except HandshakeError as exc:
            raise Refused(exc.status, exc.body) from None
        return Peer(client, client.subprotocol)
    if lib == "websockets":
        offered = [Subprotocol(name) for name in subprotocols] if subprotocols else None
        try:
            ws: ClientConnection = await ws_connect(
                url, additional_headers=headers, subprotocols=offered, open_timeout=5
            )
        except InvalidStatus as exc:
            raise Refused(exc.response.status_code, bytes(exc.response.body or b"")) from None
        return Peer(ws, ws.subprotocol)
    session = aiohttp.ClientSession()
    try:
        aws = await session.ws_connect(url, headers=headers, protocols=subprotocols or ())
    except aiohttp.WSServerHandshakeError as exc:
        await session.close()
        raise Refused(exc.status, None) from None
    return Peer(aws, aws.protocol, session)


async def refusal(lib: Lib, url: str, mode: str, **kwargs: Any) -> tuple[int, str, Any]:
    """Connect expecting a refusal; return (close code or HTTP status, close reason, JSON body).

    close mode: the handshake must succeed (101, with the offered subprotocol selected, so a
    browser accepts it and can read the code) and the server must close before sending anything.
    http mode: the handshake must be refused."""
    if mode == "http":
        with pytest.raises(Refused) as refused:
            peer = await open_peer(lib, url, **kwargs)
            await peer.close()
        body = refused.value.body
        return refused.value.status, "", orjson.loads(body) if body else None
    peer = await open_peer(lib, url, **kwargs)
    assert peer.subprotocol == (JSON_PROTOCOL if JSON_PROTOCOL in kwargs.get("subprotocols", []) else None)
    closed = await peer.wait_closed()
    await peer.close()
    assert closed.before == [], "a refused connection must not be told anything (no welcome)"
    assert closed.code is not None
    return closed.code, closed.reason, None


# ---- tokens ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    """An RSA key pair for RS256, and a second private key the server does not trust."""

    private_pem: bytes
    public_pem: bytes
    stranger_pem: bytes


@cache
def rsa_keys() -> Keys:
    """Generated once per test run."""

    def private() -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def pem(key: rsa.RSAPrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    key = private()
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return Keys(pem(key), public, pem(private()))


def claims(sub: str | None = "alice", ttl: float = 60.0, **extra: Any) -> dict[str, Any]:
    """Standard claims; an `extra` value of None removes that claim."""
    out = {"sub": sub, "aud": AUDIENCE, "iss": ISSUER, "exp": time.time() + ttl, **extra}
    return {name: value for name, value in out.items() if value is not None}


def mint(sub: str | None = "alice", *, key: str | bytes = SECRET, algorithm: str = "HS256", **extra: Any) -> str:
    """A signed token."""
    return jwt.encode(claims(sub, **extra), key, algorithm=algorithm)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade(header: dict[str, Any], payload: dict[str, Any], hmac_key: bytes | None) -> str:
    """A token built by hand (PyJWT refuses to make these): alg none, or HMAC with any key."""
    signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(payload))}"
    signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest() if hmac_key else b""
    return f"{signing_input}.{_b64(signature)}"


def tampered(token: str, **changes: Any) -> str:
    """`token` with its payload changed and its signature kept."""
    head, payload, signature = token.split(".")
    decoded = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return f"{head}.{_b64(orjson.dumps({**decoded, **changes}))}.{signature}"


def hs_auth() -> JWTAuth:
    """The app's HS256 verifier."""
    return JWTAuth(secret=SECRET, audience=AUDIENCE, issuer=ISSUER)


def rs_auth() -> JWTAuth:
    """The app's RS256 verifier."""
    return JWTAuth(public_key=rsa_keys().public_pem, audience=AUDIENCE, issuer=ISSUER)


def bearer(token: str) -> dict[str, str]:
    """An Authorization header."""
    return {"authorization": f"Bearer {token}"}


# ---- the app --------------------------------------------------------------------------------


@dataclass
class Seen:
    """What the app's hooks saw: client ids per hook."""

    middleware: list[str] = field(default_factory=list)
    connects: list[str] = field(default_factory=list)
    disconnects: list[str] = field(default_factory=list)


async def whoami(event: Event) -> dict[str, Any]:
    """Reply with the connection's user as the server knows it."""
    user = event.user
    return {"user": event.user_id, "info": dict(user.info) if user is not None else None}


def build_app(authenticator: Authenticator, mode: str = "close") -> tuple[App, Seen]:
    """/chat and /raw use the app's authenticator; /public and /raw-public have auth=False."""
    app = App(auth_failure=mode, tick=0.05, close_timeout=1.0)
    app.authenticate(authenticator)
    seen = Seen()

    @app.before_websocket
    async def watch(event: Event) -> None:
        if event.type == "connect":
            seen.middleware.append(event.client_id)

    chat = app.channel("/chat")
    chat.on("whoami")(whoami)
    chat.on_connect(lambda event: seen.connects.append(event.client_id))
    chat.on_disconnect(lambda event: seen.disconnects.append(event.client_id))
    app.channel("/public", auth=False).on("whoami")(whoami)

    async def tell_user(event: Event) -> None:
        await event.send(orjson.dumps({"user": event.user_id}).decode())

    app.websocket("/raw", on_connect=tell_user)
    app.websocket("/raw-public", on_connect=tell_user, auth=False)
    return app, seen


@asynccontextmanager
async def serving(authenticator: Authenticator, mode: str = "close") -> AsyncIterator[tuple[TestServer, Seen]]:
    """Serve a fresh app."""
    app, seen = build_app(authenticator, mode)
    async with serve_app(app) as server:
        yield server, seen


async def welcome_user(peer: Peer) -> Any:
    """The user id of the welcome envelope."""
    welcome = await peer.recv_json()
    assert welcome["type"] == "hubbub.welcome"
    return welcome["data"]["user"]


# ---- token sources ---------------------------------------------------------------------------


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("source", ["header", "query", "subprotocol"])
async def test_token_sources(lib: Lib, source: str) -> None:
    token = mint("alice")
    headers = bearer(token) if source == "header" else None
    query = f"?token={token}" if source == "query" else ""
    offered = [f"bearer.{token}", JSON_PROTOCOL] if source == "subprotocol" else [JSON_PROTOCOL]
    async with serving(hs_auth()) as (server, _):
        peer = await open_peer(lib, server.url("/chat" + query), headers=headers, subprotocols=offered)
        assert peer.subprotocol == JSON_PROTOCOL  # the codec, never the token
        assert await welcome_user(peer) == "alice"
        await peer.close()


@pytest.mark.parametrize("lib", LIBS)
async def test_subprotocol_token_alone_is_used_but_never_selected(lib: Lib) -> None:
    token = mint("alice")
    async with serving(hs_auth()) as (server, _):
        peer = await open_peer(lib, server.url("/raw"), subprotocols=[f"bearer.{token}"])
        assert peer.subprotocol is None
        assert await peer.recv_json() == {"user": "alice"}
        await peer.close()


@pytest.mark.parametrize("lib", LIBS)
async def test_header_token_wins_over_query_token(lib: Lib) -> None:
    async with serving(hs_auth()) as (server, _):
        url = server.url(f"/chat?token={mint('mallory')}")
        peer = await open_peer(lib, url, headers=bearer(mint("alice")), subprotocols=[JSON_PROTOCOL])
        assert await welcome_user(peer) == "alice"
        await peer.close()


# ---- JWT verification: accepted and refused tokens ----------------------------------------------

TokenCase = tuple[Callable[[], JWTAuth], Callable[[], str | None], int | None, str]
TOKEN_CASES: dict[str, TokenCase] = {
    "hs256": (hs_auth, lambda: mint("alice"), None, ""),
    "rs256": (rs_auth, lambda: mint("alice", key=rsa_keys().private_pem, algorithm="RS256"), None, ""),
    "missing": (hs_auth, lambda: None, 4001, "missing token"),
    "expired": (hs_auth, lambda: mint("alice", ttl=-30), 4002, "token expired"),
    "not-yet-valid": (hs_auth, lambda: mint("alice", nbf=time.time() + 60), 4002, "invalid token"),
    "wrong-audience": (hs_auth, lambda: mint("alice", aud="another-app"), 4002, "invalid token"),
    "no-audience": (hs_auth, lambda: mint("alice", aud=None), 4002, "invalid token"),
    "wrong-issuer": (hs_auth, lambda: mint("alice", iss="https://evil.test"), 4002, "invalid token"),
    "bad-signature": (hs_auth, lambda: mint("alice", key="x" * 40), 4002, "invalid token"),
    "rs256-untrusted-key": (
        rs_auth,
        lambda: mint("alice", key=rsa_keys().stranger_pem, algorithm="RS256"),
        4002,
        "invalid token",
    ),
    "tampered-sub": (hs_auth, lambda: tampered(mint("alice"), sub="admin"), 4002, "invalid token"),
    "alg-none": (hs_auth, lambda: handmade({"alg": "none", "typ": "JWT"}, claims(), None), 4002, "invalid token"),
    "hs256-with-rs-public-key": (
        rs_auth,
        lambda: handmade({"alg": "HS256", "typ": "JWT"}, claims(), rsa_keys().public_pem),
        4002,
        "invalid token",
    ),
    "no-sub": (hs_auth, lambda: mint(None), 4002, "invalid token"),
    "garbage": (hs_auth, lambda: "garbage", 4002, "invalid token"),
}


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", list(TOKEN_CASES))
async def test_jwt_verification(case: str, mode: str, lib: Lib) -> None:
    make_auth, make_token, code, reason = TOKEN_CASES[case]
    token = make_token()
    headers = bearer(token) if token is not None else None
    async with serving(make_auth(), mode) as (server, _):
        if code is None:
            peer = await open_peer(lib, server.url("/chat"), headers=headers, subprotocols=[JSON_PROTOCOL])
            assert await welcome_user(peer) == "alice"
            await peer.close()
            return
        got, got_reason, body = await refusal(
            lib, server.url("/chat"), mode, headers=headers, subprotocols=[JSON_PROTOCOL]
        )
        if mode == "close":
            assert got == code
            assert got_reason.startswith(reason)
        else:
            assert got == 401
            if body is not None:
                assert body["code"] == code and body["error"].startswith(reason)
        assert await server.app.hub.connection_count() == 0


# ---- custom authenticators -------------------------------------------------------------------


def by_header(request: Request) -> User | str | None:
    """Decide from the `x-login` header: "user" -> a User, "id" -> a user id, "none", "banned", "crash"."""
    login = request.headers.get("x-login", "")
    if login == "user":
        return User("u-1", {"name": "Uma"})
    if login == "id":
        return "u-2"
    if login == "banned":
        raise AuthError(4002, "banned")
    if login == "crash":
        raise RuntimeError("authenticator bug")
    return None


async def by_header_async(request: Request) -> User | str | None:
    """The same, as a coroutine that really suspends."""
    await asyncio.sleep(0)
    return by_header(request)


CUSTOM_OUTCOMES = {
    "user": {"user": "u-1", "info": {"name": "Uma"}},
    "id": {"user": "u-2", "info": {}},
    "none": (4001, 401, "authentication required"),
    "banned": (4002, 401, "banned"),
}


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("login", list(CUSTOM_OUTCOMES))
async def test_custom_authenticator(login: str, mode: str, flavour: str) -> None:
    lib: Lib = "websockets" if flavour == "sync" else "hubbub"
    expected = CUSTOM_OUTCOMES[login]
    authenticator = by_header if flavour == "sync" else by_header_async
    async with serving(authenticator, mode) as (server, _):
        url = server.url("/chat")
        kwargs: dict[str, Any] = {"headers": {"x-login": login}, "subprotocols": [JSON_PROTOCOL]}
        if isinstance(expected, dict):
            peer = await open_peer(lib, url, **kwargs)
            assert await welcome_user(peer) == expected["user"]
            assert (await peer.request("whoami", None))["data"] == expected
            await peer.close()
            return
        close_code, status, reason = expected
        got, got_reason, body = await refusal(lib, url, mode, **kwargs)
        if mode == "close":
            assert (got, got_reason) == (close_code, reason)
        else:
            assert (got, body) == (status, {"error": reason, "code": close_code})


@pytest.mark.parametrize("lib", ["hubbub", "aiohttp"])
async def test_crashing_authenticator_is_a_500_and_the_server_lives_on(lib: Lib) -> None:
    async with serving(by_header) as (server, _):
        with pytest.raises(Refused) as refused:
            await open_peer(lib, server.url("/chat"), headers={"x-login": "crash"})
        assert refused.value.status == 500
        peer = await open_peer(lib, server.url("/chat"), headers={"x-login": "id"})
        assert await welcome_user(peer) == "u-2"
        await peer.close()


async def test_route_authenticator_overrides_the_apps() -> None:
    app, _ = build_app(hs_auth())
    own = app.channel("/own", auth=by_header)
    own.on("whoami")(whoami)
    async with serve_app(app) as server:
        peer = await open_peer("websockets", server.url("/own"), headers={"x-login": "id"})
        assert await welcome_user(peer) == "u-2"
        await peer.close()
        code, _, _ = await refusal("hubbub", server.url("/own"), "close", headers=bearer(mint("alice")))
        assert code == 4001  # the app's JWT means nothing to this route


@pytest.mark.parametrize("lib", LIBS)
async def test_auth_false_route_stays_public(lib: Lib) -> None:
    async with serving(hs_auth()) as (server, _):
        peer = await open_peer(lib, server.url("/public"), subprotocols=[JSON_PROTOCOL])
        assert await welcome_user(peer) is None
        assert (await peer.request("whoami", None))["data"] == {"user": None, "info": None}
        raw = await open_peer(lib, server.url("/raw-public"))
        assert await raw.recv_json() == {"user": None}
        code, _, _ = await refusal(lib, server.url("/chat"), "close", subprotocols=[JSON_PROTOCOL])
        assert code == 4001  # the same app still guards its other routes
        for each in (peer, raw):
            await each.close()


@pytest.mark.parametrize("mode", MODES)
async def test_refused_connection_never_reaches_middleware_or_handlers(mode: str) -> None:
    async with serving(hs_auth(), mode) as (server, seen):
        for lib, token in (("aiohttp", "garbage"), ("websockets", mint("alice", ttl=-5)), ("hubbub", None)):
            headers = bearer(token) if token else None
            await refusal(cast(Lib, lib), server.url("/chat"), mode, headers=headers, subprotocols=[JSON_PROTOCOL])
        good = await open_peer("hubbub", server.url("/chat"), headers=bearer(mint("alice")))
        welcome = await good.recv_json()
        client_id = welcome["data"]["client_id"]
        # Each refusal was complete (closed or answered) before the good client connected, and
        # hooks run in order per connection: once the good one's on_connect ran, a refused
        # connection's hook would have run too.
        await wait_for(lambda: seen.connects)
        await good.close()
        await wait_for(lambda: seen.disconnects)
        assert (seen.middleware, seen.connects, seen.disconnects) == ([client_id], [client_id], [client_id])


# ---- expiry and refresh ------------------------------------------------------------------------


def short_lived(sub: str = "alice") -> tuple[str, float]:
    """A token expiring at the second after next: 1-2 s from now, long enough to connect and
    refresh. (PyJWT compares whole seconds, so a fractional exp would shorten the margin.)"""
    exp = float(int(time.time()) + 2)
    return mint(sub, exp=exp), exp


async def test_token_expiring_during_a_connection_closes_it_4002() -> None:
    async with serving(hs_auth()) as (server, seen):
        token, _ = short_lived()
        peers = [await open_peer(lib, server.url("/chat"), headers=bearer(token)) for lib in LIBS]
        for peer in peers:
            assert await welcome_user(peer) == "alice"
            assert (await peer.request("whoami", None))["data"]["user"] == "alice"
        for peer in peers:
            closed = await peer.wait_closed(timeout=5)
            assert (closed.code, closed.reason) == (4002, "token expired")
            await peer.close()
        await wait_for(lambda: len(seen.disconnects) == len(LIBS))
        assert await server.app.hub.user_clients("alice") == []


async def test_leeway_also_delays_the_close_of_an_open_connection() -> None:
    """A token JWTAuth accepts thanks to `leeway` (clock skew) is not closed the moment it opens."""
    leeway = 1.0
    async with serving(JWTAuth(secret=SECRET, audience=AUDIENCE, issuer=ISSUER, leeway=leeway)) as (server, _):
        exp = float(int(time.time()))  # already past: valid only through the leeway
        peer = await open_peer("websockets", server.url("/chat"), headers=bearer(mint("alice", exp=exp)))
        assert await welcome_user(peer) == "alice"
        assert (await peer.request("whoami", None))["data"]["user"] == "alice"
        assert (await peer.wait_closed(timeout=5)).code == 4002
        assert time.time() >= exp + leeway
        await peer.close()


async def test_refresh_for_the_same_user_keeps_the_connection_open() -> None:
    async with serving(hs_auth()) as (server, _):
        token, first_expiry = short_lived()
        # Both connections hold the same short token; only `kept` refreshes it. `control` closing
        # with 4002 marks the moment the first token expired.
        kept = await open_peer("websockets", server.url("/chat"), headers=bearer(token))
        control = await open_peer("hubbub", server.url("/chat"), headers=bearer(token))
        for peer in (kept, control):
            assert await welcome_user(peer) == "alice"
        fresh = claims("alice", ttl=60)
        reply = await kept.request("hubbub.refresh", {"token": jwt.encode(fresh, SECRET)})
        assert reply["data"] == {"expires_at": fresh["exp"]}
        assert (await control.wait_closed(timeout=5)).code == 4002
        assert time.time() >= first_expiry
        assert (await kept.request("whoami", None, id=2))["data"]["user"] == "alice"
        assert len(await server.app.hub.user_clients("alice")) == 1
        for peer in (kept, control):
            await peer.close()


BAD_REFRESHES: dict[str, Callable[[], str]] = {
    "another-user": lambda: mint("bob"),
    "expired": lambda: mint("alice", ttl=-30),
    "tampered": lambda: tampered(mint("bob"), sub="alice"),
    "garbage": lambda: "garbage",
}


async def test_refresh_with_a_bad_token_is_refused_and_changes_nothing() -> None:
    async with serving(hs_auth()) as (server, _):
        token, _ = short_lived()
        peers: dict[str, Peer] = {}
        for index, name in enumerate(BAD_REFRESHES):
            lib = LIBS[index % len(LIBS)]
            peers[name] = peer = await open_peer(lib, server.url("/chat"), headers=bearer(token))
            assert await welcome_user(peer) == "alice"
        for name, peer in peers.items():
            reply = await peer.request("hubbub.refresh", {"token": BAD_REFRESHES[name]()})
            assert reply["error"]["code"] == "unauthorized", name
            assert (await peer.request("whoami", None, id=2))["data"]["user"] == "alice"
        assert await server.app.hub.user_clients("bob") == []
        assert not await server.app.hub.is_online("bob")
        # The original expiry still holds: no refused token extended any connection.
        for peer in peers.values():
            assert (await peer.wait_closed(timeout=5)).code == 4002
            await peer.close()


async def test_refresh_without_a_jwt_is_a_bad_request() -> None:
    async with serving(by_header) as (server, _):
        peer = await open_peer("hubbub", server.url("/chat"), headers={"x-login": "id"})
        assert await welcome_user(peer) == "u-2"
        reply = await peer.request("hubbub.refresh", {"token": mint("u-2")})
        assert reply["error"]["code"] == "bad_request"
        await peer.close()
