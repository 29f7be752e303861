"""hubbub.js, the browser client of channel routes, running in real headless Chromium.

The page loads /hubbub/hubbub.js from `hubbub.STATIC_DIR`; the tests drive `Hubbub.Client`
with `page.evaluate` and wait on its events with `wait_for_function`. The server side is
checked through the hub (who is connected, who is in which room).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page
from pydantic import BaseModel

import hubbub
from hubbub import App, Event, HTMLResponse, start
from hubbub.auth.jwt_auth import JWTAuth
from hubbub.auth.user import User
from hubbub.errors import RequestFailed
from hubbub.protocol.envelope import EnvelopeError
from hubbub.testing import TestServer, serve_app, wait_for
from hubbub.web.request import Request
from tests.browser.conftest import WAIT_MS

pytestmark = pytest.mark.asyncio(loop_scope="module")

SECRET = "hubbub-browser-tests-hmac-secret-32-bytes!"
AUDIENCE = "hubbub-browser-tests"
WAIT_S = WAIT_MS / 1000

# The page: hubbub.js plus a log of every client's events, for the tests to wait on.
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>hubbub.js tests</title>
<script src="/hubbub/hubbub.js"></script>
<script>
"use strict";
window.clients = {};
window.log = [];
const TRACKED = ["open", "close", "reconnecting", "rejoin", "error", "hubbub.presence", "hubbub.error"];
window.track = (name, client, extra = []) => {
  window.clients[name] = client;
  for (const type of [...TRACKED, ...extra]) {
    client.on(type, (data) => window.log.push({ name, type, data: JSON.parse(JSON.stringify(data ?? null)) }));
  }
  return client;
};
window.events = (name, type) => window.log.filter((e) => e.name === name && e.type === type).map((e) => e.data);
window.settle = (promise) => promise.then(
  (value) => ({ ok: true, value }),
  (error) => ({ ok: false, name: error.name, code: error.code, message: error.message,
                fields: error.fields ?? null, closeCode: error.closeCode ?? null }),
);
</script></head><body></body></html>
"""


class Numbers(BaseModel):
    """Payload of the "add" request."""

    a: int
    b: int


class CountingJWTAuth(JWTAuth):
    """JWTAuth that counts the handshakes it decided (refused ones included)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.handshakes = 0

    def __call__(self, request: Request) -> User:
        self.handshakes += 1
        return super().__call__(request)


@dataclass
class Harness:
    """The test app and what its handlers saw."""

    app: App
    auth: CountingJWTAuth
    handshakes: Counter[str] = field(default_factory=Counter)
    disconnects: list[tuple[str, int | None]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)


def build(max_connections_per_user: int | None = None) -> Harness:
    """An app with an open channel (/open), a JWT channel (/secure), the page and hubbub.js."""
    auth = CountingJWTAuth(secret=SECRET, audience=AUDIENCE)
    app = App(max_connections_per_user=max_connections_per_user, presence_grace=0.05)
    harness = Harness(app, auth)
    app.static("/hubbub", hubbub.STATIC_DIR)

    @app.get("/")
    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE)

    @app.before_websocket
    async def count(event: Event) -> None:
        if event.type == "connect":
            harness.handshakes[event.path] += 1

    open_channel = app.channel("/open", auth=False)
    secure = app.channel("/secure", auth=auth)
    for channel in (open_channel, secure):

        @channel.authorize
        async def allow(event: Event, action: str, room: str) -> bool:
            return not room.startswith("private")

        @channel.on_disconnect
        async def gone(event: Event) -> None:
            harness.disconnects.append((event.client_id, event.close_code))

    @open_channel.on("add", model=Numbers)
    async def add(event: Event) -> int:
        numbers: Numbers = event.data
        return numbers.a + numbers.b

    @open_channel.on("fail")
    async def fail(event: Event) -> None:
        raise EnvelopeError("nope", "not today", hint="ask tomorrow")

    @open_channel.on("slow")
    async def slow(event: Event) -> str:
        await harness.release.wait()
        harness.finished.set()
        return "late"

    @secure.on("whoami")
    async def whoami(event: Event) -> dict[str, Any]:
        user = event.user
        assert user is not None
        return {"user": user.id, "info": dict(user.info), "subprotocol": event.connection.subprotocol}

    return harness


def token(sub: str = "alice", *, ttl: float = 600, secret: str = SECRET, **claims: Any) -> str:
    """A signed JWT for the test audience."""
    body = {"sub": sub, "aud": AUDIENCE, "exp": int(time.time() + ttl), **claims}
    return jwt.encode(body, secret, algorithm="HS256")


@pytest_asyncio.fixture(loop_scope="module")
async def harness() -> Harness:
    return build()


@pytest_asyncio.fixture(loop_scope="module")
async def server(harness: Harness) -> AsyncIterator[TestServer]:
    async with serve_app(harness.app) as running:
        yield running


class Tab:
    """One browser context with the test page open."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    @classmethod
    async def open(cls, browser: Browser, url: str) -> Tab:
        context = await browser.new_context()
        tab = cls(await context.new_page())
        await tab.page.goto(url)
        await tab.page.wait_for_function("() => typeof window.Hubbub === 'object'", timeout=WAIT_MS)
        return tab

    async def js(self, script: str, arg: Any = None) -> Any:
        """Evaluate a function expression in the page (browser-side waits have their own timeouts)."""
        return await asyncio.wait_for(self.page.evaluate(script, arg), WAIT_S)

    async def connect(
        self, name: str, path: str, options: dict[str, Any] | None = None, listen: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """Start a client that logs its lifecycle events and the `listen` types; wait for its welcome."""
        welcome: dict[str, Any] = await self.js(
            """async ([name, path, options, listen]) => {
                const client = track(name, new Hubbub.Client(path, options), listen);
                return await client.ready();
            }""",
            [name, path, options or {}, list(listen)],
        )
        return welcome

    async def wait_events(self, name: str, type: str, count: int = 1) -> list[Any]:
        """Wait until the client `name` logged `count` events of `type`; return them all."""
        await self.page.wait_for_function(
            "([name, type, count]) => events(name, type).length >= count", arg=[name, type, count], timeout=WAIT_MS
        )
        found: list[Any] = await self.js("([name, type]) => events(name, type)", [name, type])
        return found

    async def events(self, name: str, type: str) -> list[Any]:
        """The events of `type` the client `name` logged so far."""
        found: list[Any] = await self.js("([name, type]) => events(name, type)", [name, type])
        return found

    async def close(self) -> None:
        assert self.errors == [], self.errors
        await self.page.context.close()


async def fence(tab: Tab) -> None:
    """A full connect + request round trip by another client: anything the page started
    before it (such as a reconnect attempt) reaches the server first."""
    probed = await tab.js(
        """async () => {
            const probe = new Hubbub.Client("/open", { reconnect: false });
            await probe.ready();
            const sum = await probe.request("add", { a: 1, b: 1 });
            probe.close();
            return sum;
        }"""
    )
    assert probed == 2


# ---- the script and the welcome --------------------------------------------------------------


async def test_script_is_served_from_static_dir(server: TestServer) -> None:
    script = await server.request("GET", "/hubbub/hubbub.js")
    assert script.status == 200
    assert "javascript" in script.headers["content-type"]
    assert script.body == (hubbub.STATIC_DIR / "hubbub.js").read_bytes()
    types = await server.request("GET", "/hubbub/hubbub.d.ts")
    assert types.status == 200
    assert b"class Client" in types.body


async def test_connects_and_gets_the_welcome(browser: Browser, harness: Harness, server: TestServer) -> None:
    tab = await Tab.open(browser, server.http_url("/"))
    welcome = await tab.connect("a", "/open")
    assert welcome["user"] is None
    assert welcome["protocol"] == 1
    assert welcome["reconnected"] is False
    assert await harness.app.hub.clients() == [welcome["clientId"]]
    conn = harness.app.hub.get(welcome["clientId"])
    assert conn is not None and conn.subprotocol == "hubbub.v1.json"
    state = await tab.js("() => [clients.a.clientId, clients.a.connected, clients.a.url]")
    assert state == [welcome["clientId"], True, server.url("/open")]
    assert await tab.events("a", "open") == [welcome]
    await tab.close()


# ---- requests ---------------------------------------------------------------------------------


async def test_request_reply_and_error_replies(browser: Browser, server: TestServer) -> None:
    tab = await Tab.open(browser, server.http_url("/"))
    await tab.connect("a", "/open")
    assert await tab.js("() => clients.a.request('add', { a: 2, b: 3 })") == 5

    refused = await tab.js("() => settle(clients.a.request('fail', {}))")
    assert refused == {
        "ok": False,
        "name": "HubbubError",
        "code": "nope",
        "message": "not today",
        "fields": None,
        "closeCode": None,
    }
    assert await tab.js("() => clients.a.request('fail').catch((error) => error.hint)") == "ask tomorrow"

    invalid = await tab.js("() => settle(clients.a.request('add', { a: 2, b: 'three' }))")
    assert invalid["code"] == "validation_error"
    assert [entry["loc"] for entry in invalid["fields"]] == [["b"]]

    unknown = await tab.js("() => settle(clients.a.request('nothing-here', null))")
    assert unknown["code"] == "unknown_type"

    # an event (no id) that fails comes back as a hubbub.error event
    await tab.js("() => clients.a.emit('nothing-here', { x: 1 })")
    [error] = await tab.wait_events("a", "hubbub.error")
    assert error["code"] == "unknown_type"
    assert error["type"] == "nothing-here"
    await tab.close()


async def test_request_times_out_and_the_late_reply_is_ignored(
    browser: Browser, harness: Harness, server: TestServer
) -> None:
    tab = await Tab.open(browser, server.http_url("/"))
    await tab.connect("a", "/open")
    timed_out = await tab.js("() => settle(clients.a.request('slow', null, { timeoutMs: 150 }))")
    assert timed_out["ok"] is False
    assert timed_out["code"] == "timeout"
    assert not harness.finished.is_set()
    # the handler answers now; the reply finds no pending request and changes nothing
    harness.release.set()
    await asyncio.wait_for(harness.finished.wait(), WAIT_S)
    # this connection's handlers run in order, so the late reply reached the page before this one
    assert await tab.js("() => clients.a.request('add', { a: 20, b: 22 })") == 42
    assert await tab.js("() => clients.a.connected") is True
    await tab.close()


async def test_server_requests_are_answered_by_handle(browser: Browser, harness: Harness, server: TestServer) -> None:
    tab = await Tab.open(browser, server.http_url("/"))
    welcome = await tab.connect("a", "/open")
    await tab.js(
        """() => {
            clients.a.handle("double", async (data) => ({ doubled: data.n * 2 }));
            clients.a.handle("nothing", () => undefined);
            clients.a.handle("deny", () => { throw Object.assign(new Error("no way"), { code: "denied" }); });
            clients.a.handle("crash", async () => { throw new Error("boom"); });
        }"""
    )
    conn = harness.app.hub.get(welcome["clientId"])
    assert conn is not None
    assert await conn.call("double", {"n": 21}, timeout=WAIT_S) == {"doubled": 42}
    assert await conn.call("nothing", timeout=WAIT_S) is None
    with pytest.raises(RequestFailed) as denied:
        await conn.call("deny", timeout=WAIT_S)
    assert (denied.value.code, denied.value.message) == ("denied", "no way")
    with pytest.raises(RequestFailed) as crashed:
        await conn.call("crash", timeout=WAIT_S)
    assert (crashed.value.code, crashed.value.message) == ("handler_error", "boom")
    with pytest.raises(RequestFailed) as unhandled:
        await conn.call("unregistered", timeout=WAIT_S)
    assert unhandled.value.code == "unknown_type"
    await tab.js("() => clients.a.handle('double', null)")
    with pytest.raises(RequestFailed) as removed:
        await conn.call("double", {"n": 1}, timeout=WAIT_S)
    assert removed.value.code == "unknown_type"
    await tab.close()


# ---- rooms ------------------------------------------------------------------------------------


async def test_join_publish_and_presence_between_two_pages(
    browser: Browser, harness: Harness, server: TestServer
) -> None:
    alice = await Tab.open(browser, server.http_url("/"))
    bob = await Tab.open(browser, server.http_url("/"))
    a = await alice.connect("alice", "/open", listen=("chat", "hubbub.message"))
    b = await bob.connect("bob", "/open")

    assert await alice.js("() => clients.alice.join('lobby')") == {"room": "lobby", "offset": 0, "epoch": ""}
    assert await bob.js("() => clients.bob.join('lobby')") == {"room": "lobby", "offset": 0, "epoch": ""}
    [joined] = await alice.wait_events("alice", "hubbub.presence")
    assert joined == {"room": "lobby", "action": "join", "client_id": b["clientId"], "user": None, "info": {}}
    assert sorted(await harness.app.hub.room_members("lobby")) == sorted([a["clientId"], b["clientId"]])
    assert await bob.events("bob", "hubbub.presence") == []  # bob joined after alice: he is the subject

    reply = await bob.js("() => clients.bob.publish('lobby', 'chat', { text: 'hi alice' })")
    assert reply == {"room": "lobby", "delivered": 2}
    [chat] = await alice.wait_events("alice", "chat")
    assert chat == {"room": "lobby", "from": b["clientId"], "user": None, "data": {"text": "hi alice"}}
    await bob.js("() => clients.bob.publish('lobby', null, 'plain')")
    [plain] = await alice.wait_events("alice", "hubbub.message")
    assert plain["data"] == "plain"

    forbidden = await bob.js("() => settle(clients.bob.join('private-room'))")
    assert forbidden["code"] == "forbidden"
    assert await bob.js("() => [...clients.bob.rooms]") == ["lobby"]

    assert await bob.js("() => clients.bob.leave('lobby')") == {"room": "lobby"}
    left = await alice.wait_events("alice", "hubbub.presence", 2)
    assert left[1]["action"] == "leave" and left[1]["client_id"] == b["clientId"]
    assert await harness.app.hub.room_members("lobby") == [a["clientId"]]
    assert await bob.js("() => clients.bob.rooms.size") == 0
    await alice.close()
    await bob.close()


# ---- authentication ---------------------------------------------------------------------------


async def test_token_goes_in_the_subprotocol_and_refresh_extends(
    browser: Browser, harness: Harness, server: TestServer
) -> None:
    tab = await Tab.open(browser, server.http_url("/"))
    first = token("alice", name="Alice")
    welcome = await tab.connect("a", "/secure", {"token": first})
    assert welcome["user"] == "alice"
    conn = harness.app.hub.get(welcome["clientId"])
    assert conn is not None
    assert conn.headers.get("authorization") is None
    assert conn.headers["sec-websocket-protocol"] == f"hubbub.v1.json, bearer.{first}"
    who = await tab.js("() => clients.a.request('whoami')")
    assert who == {"user": "alice", "info": {"name": "Alice"}, "subprotocol": "hubbub.v1.json"}

    second = token("alice", ttl=3600)
    later = jwt.decode(second, options={"verify_signature": False})["exp"]
    refreshed = await tab.js("(t) => clients.a.refresh(t)", second)
    assert refreshed == {"expires_at": later}
    assert conn.user is not None and conn.user.expires_at == refreshed["expires_at"]
    other = await tab.js("(t) => settle(clients.a.refresh(t))", token("mallory"))
    assert other["code"] == "unauthorized"
    assert await tab.js("() => clients.a.connected") is True

    # a token function is asked before each handshake
    fresh = token("bob")
    welcome_b = await tab.js(
        """async (fresh) => {
            let asked = 0;
            const client = track("b", new Hubbub.Client("/secure", {
                token: async () => { asked += 1; return fresh; },
            }));
            const welcome = await client.ready();
            return { ...welcome, asked };
        }""",
        fresh,
    )
    assert (welcome_b["user"], welcome_b["asked"]) == ("bob", 1)
    assert harness.auth.handshakes == 2
    await tab.close()


@pytest.mark.parametrize(
    ("case", "code"),
    [("missing token", 4001), ("invalid token", 4002), ("expired token", 4002), ("too many connections", 4003)],
)
async def test_auth_refusal_is_not_retried(browser: Browser, case: str, code: int) -> None:
    harness = build(max_connections_per_user=1)
    async with serve_app(harness.app) as server:
        tab = await Tab.open(browser, server.http_url("/"))
        options: dict[str, Any] = {"backoff": {"initialMs": 1, "maxMs": 1}}
        if case == "invalid token":
            options["token"] = token("alice", secret="not-the-secret-but-long-enough-to-sign")
        elif case == "expired token":
            options["token"] = token("alice", ttl=-60)
        elif case == "too many connections":
            options["token"] = token("alice")
            await tab.connect("first", "/secure", {"token": options["token"]})
        outcome = await tab.js(
            """async (options) => {
                const client = track("a", new Hubbub.Client("/secure", options));
                return await settle(client.ready());
            }""",
            options,
        )
        assert outcome["ok"] is False
        assert (outcome["code"], outcome["closeCode"]) == ("disconnected", code)
        [closed] = await tab.wait_events("a", "close")
        assert closed["code"] == code
        assert closed["willReconnect"] is False
        await fence(tab)
        assert await tab.events("a", "reconnecting") == []
        assert await tab.events("a", "open") == []
        assert await tab.js("() => [clients.a.connected, clients.a.clientId]") == [False, None]
        expected = 2 if case == "too many connections" else 1
        assert harness.auth.handshakes == expected
        await tab.close()


# ---- reconnecting -----------------------------------------------------------------------------


@pytest.mark.parametrize("drop", ["close 1011", "socket killed"])
async def test_dropped_connection_reconnects_and_rejoins(
    browser: Browser, harness: Harness, server: TestServer, drop: str
) -> None:
    tab = await Tab.open(browser, server.http_url("/"))
    options = {"backoff": {"initialMs": 100, "maxMs": 1000, "factor": 2, "jitter": 0.2}}
    first = await tab.connect("a", "/open", options)
    old = first["clientId"]
    await tab.js("() => Promise.all([clients.a.join('lobby'), clients.a.join('games')])")
    assert await harness.app.hub.room_members("lobby") == [old]
    await tab.js("() => { window.pending = settle(clients.a.request('slow', null, { timeoutMs: 0 })); }")

    conn = harness.app.hub.get(old)
    assert conn is not None and conn._ws is not None
    if drop == "close 1011":
        await harness.app.hub.close(old, 1011, "server error")
        expected_code = 1011
    else:
        conn._ws.abort()
        expected_code = 1006

    lost = await tab.js("() => window.pending")
    assert (lost["code"], lost["closeCode"]) == ("disconnected", expected_code)
    [closed] = await tab.wait_events("a", "close")
    assert closed["code"] == expected_code and closed["willReconnect"] is True
    [retry] = await tab.wait_events("a", "reconnecting")
    assert retry["attempt"] == 1
    assert 80 <= retry["delayMs"] <= 120

    opened = await tab.wait_events("a", "open", 2)
    new = opened[1]["clientId"]
    assert new != old and opened[1]["reconnected"] is True
    [rejoin] = await tab.wait_events("a", "rejoin")
    assert sorted(rejoin["rooms"]) == ["games", "lobby"] and rejoin["failed"] == []
    assert await harness.app.hub.room_members("lobby") == [new]
    assert await harness.app.hub.room_members("games") == [new]
    assert await harness.app.hub.clients() == [new]
    assert await tab.js("() => clients.a.clientId") == new
    harness.release.set()
    await tab.close()


async def test_backoff_grows_while_the_server_is_down(browser: Browser) -> None:
    harness = build()
    first = await start(harness.app, "127.0.0.1", 0)
    port = first.port
    tab = await Tab.open(browser, f"http://127.0.0.1:{port}/")
    options = {"backoff": {"initialMs": 50, "maxMs": 200, "factor": 2, "jitter": 0.2}}
    await tab.connect("a", "/open", options)
    await tab.js("() => clients.a.join('lobby')")
    await first.shutdown(timeout=5)

    closed = (await tab.wait_events("a", "close"))[0]
    assert closed["code"] == 1001 and closed["willReconnect"] is True
    retries = await tab.wait_events("a", "reconnecting", 4)
    assert [retry["attempt"] for retry in retries[:4]] == [1, 2, 3, 4]
    for retry, base in zip(retries[:4], [50, 100, 200, 200], strict=True):
        assert 0.8 * base <= retry["delayMs"] <= 1.2 * base, retries
    closes = await tab.events("a", "close")
    assert all(close["willReconnect"] for close in closes)

    restarted = build()
    second = await start(restarted.app, "127.0.0.1", port)
    try:
        opened = await tab.wait_events("a", "open", 2)
        assert opened[1]["reconnected"] is True
        await tab.wait_events("a", "rejoin")
        assert await restarted.app.hub.room_members("lobby") == [opened[1]["clientId"]]
        # the next drop starts again from the first delay
        count = len(await tab.events("a", "reconnecting"))
        await restarted.app.hub.close(opened[1]["clientId"], 1012, "restarting")
        after = await tab.wait_events("a", "reconnecting", count + 1)
        assert after[count]["attempt"] == 1
        await tab.close()
    finally:
        await second.shutdown(timeout=5)


@pytest.mark.parametrize("code", [1000, 1008])
async def test_server_close_with_final_code_is_not_retried(
    browser: Browser, harness: Harness, server: TestServer, code: int
) -> None:
    tab = await Tab.open(browser, server.http_url("/"))
    welcome = await tab.connect("a", "/open", {"backoff": {"initialMs": 1, "maxMs": 1}})
    await harness.app.hub.close(welcome["clientId"], code, "go away")
    [closed] = await tab.wait_events("a", "close")
    assert (closed["code"], closed["reason"], closed["willReconnect"]) == (code, "go away", False)
    await fence(tab)
    assert await tab.events("a", "reconnecting") == []
    assert harness.handshakes["/open"] == 2  # the client and the fence's probe
    emitted = await tab.js("() => { try { clients.a.emit('add', {}); } catch (e) { return e.code; } }")
    assert emitted == "closed"
    await tab.close()


async def test_client_close_does_not_reconnect(browser: Browser, harness: Harness, server: TestServer) -> None:
    tab = await Tab.open(browser, server.http_url("/"))
    welcome = await tab.connect("a", "/open", {"backoff": {"initialMs": 1, "maxMs": 1}})
    await tab.js("() => { window.pending = settle(clients.a.request('slow', null, { timeoutMs: 0 })); }")
    await tab.js("() => clients.a.close()")
    assert (await tab.js("() => window.pending"))["code"] == "closed"
    [closed] = await tab.wait_events("a", "close")
    assert closed["willReconnect"] is False and closed["code"] == 1000
    harness.release.set()  # the disconnect handler runs after the slow one, in order
    await wait_for(lambda: (welcome["clientId"], 1000) in harness.disconnects, timeout=WAIT_S)
    await fence(tab)
    assert await tab.events("a", "reconnecting") == []
    assert harness.handshakes["/open"] == 2  # the client and the fence's probe
    refused = await tab.js("() => settle(clients.a.request('add', { a: 1, b: 2 }))")
    assert refused["code"] == "closed"
    await tab.close()
