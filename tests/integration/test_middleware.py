"""WebSocket and HTTP middleware: order, aborting a handshake or a message, and replacing responses."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from hubbub import Abort, App, Event, JSONResponse, Request, Response
from hubbub.errors import HandshakeError
from hubbub.testing import serve_app, wait_for


async def test_websocket_middleware_order() -> None:
    """Global before, route before, handler, route after, global after, for every event type."""
    app = App()
    calls: list[str] = []

    def recorder(name: str) -> Any:
        async def record(event: Event) -> None:
            calls.append(f"{name}:{event.type}")

        return record

    app.before_websocket(recorder("global-before"))
    app.after_websocket(recorder("global-after"))
    ep = app.websocket("/ws", before=[recorder("route-before")], after=[recorder("route-after")])
    ep.on_connect(recorder("handler"))
    ep.on_message(recorder("handler"))
    ep.on_disconnect(recorder("handler"))
    ep.before(recorder("route-before-2"))

    async with serve_app(app) as server:
        async with await server.connect("/ws") as ws:
            await ws.send("hi")
            await wait_for(lambda: "global-after:message" in calls)
        await wait_for(lambda: "global-after:disconnect" in calls)
    order = ["global-before", "route-before", "route-before-2", "handler", "route-after", "global-after"]
    assert calls == [f"{name}:{kind}" for kind in ("connect", "message", "disconnect") for name in order]


def guarded_app(calls: list[str]) -> App:
    """/guarded refuses handshakes without an x-token header (403) or with a bad one (401)."""
    app = App()

    @app.before_websocket
    def need_token(event: Event) -> None:
        if event.type == "connect" and "x-token" not in event.headers:
            event.abort()

    ep = app.websocket("/guarded")

    @ep.before
    async def check_token(event: Event) -> None:
        if event.type == "connect" and event.headers["x-token"] != "good":
            raise Abort(401, "bad token")

    @ep.on_connect
    async def connected(event: Event) -> None:
        calls.append("connect")
        await event.send("welcome")

    @ep.on_disconnect
    async def disconnected(event: Event) -> None:
        calls.append("disconnect")

    return app


async def test_connect_abort_refuses_the_handshake_with_403() -> None:
    """event.abort() on connect refuses the handshake with 403 JSON; no handler runs."""
    calls: list[str] = []
    async with serve_app(guarded_app(calls)) as server:
        with pytest.raises(HandshakeError) as refused:
            await server.connect("/guarded")
        assert refused.value.status == 403
        assert orjson.loads(refused.value.body) == {"error": "Forbidden"}
        async with await server.connect("/guarded", headers={"x-token": "good"}) as ws:
            assert await ws.recv(timeout=5) == "welcome"
        await wait_for(lambda: "disconnect" in calls)
    assert calls == ["connect", "disconnect"]


async def test_connect_abort_with_a_custom_status() -> None:
    """raise Abort(401, reason) on connect refuses with 401 and the reason (websockets client)."""
    calls: list[str] = []
    async with serve_app(guarded_app(calls)) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with ws_connect(server.url("/guarded"), additional_headers={"x-token": "bad"}):
                pass
    assert refused.value.response.status_code == 401
    assert orjson.loads(refused.value.response.body) == {"error": "bad token"}
    assert calls == []


async def test_message_abort_skips_handler_and_after_but_keeps_the_connection() -> None:
    """An aborted message reaches neither handler nor after-middleware; the next message does."""
    app = App()
    calls: list[str] = []
    ep = app.websocket("/chat")

    @ep.before
    async def filter_words(event: Event) -> None:
        if event.type != "message":
            return
        if event.text == "blocked":
            event.abort()
        elif event.text == "raised":
            raise Abort(400, "no")

    @ep.on_message
    async def handle(event: Event) -> None:
        calls.append(f"handler:{event.text}")
        await event.send(f"echo:{event.text}")

    @ep.after
    async def after(event: Event) -> None:
        if event.type == "message":
            calls.append(f"after:{event.text}")

    async with serve_app(app) as server, await server.connect("/chat") as ws:
        for text in ("blocked", "ok", "raised", "fine"):
            await ws.send(text)
        assert await ws.recv(timeout=5) == "echo:ok"
        assert await ws.recv(timeout=5) == "echo:fine"
        await wait_for(lambda: "after:fine" in calls)
        assert ws.close_code is None
    assert calls == ["handler:ok", "after:ok", "handler:fine", "after:fine"]


async def test_after_middleware_sees_the_event_after_the_handler() -> None:
    """After-middleware run once the handler finished, even one that awaited, and see what it left."""
    app = App()
    ep = app.websocket("/ws")

    @ep.on_message
    async def handle(event: Event) -> None:
        await asyncio.sleep(0.01)
        event.connection.state["handled"] = event.text

    @app.after_websocket
    async def report(event: Event) -> None:
        if event.type == "message":
            await event.send(f"after saw {event.connection.state.get('handled')} for {event.text}")

    async with serve_app(app) as server, ws_connect(server.url("/ws")) as ws:
        async with asyncio.timeout(5):
            await ws.send("first")
            assert await ws.recv() == "after saw first for first"
            await ws.send("second")
            assert await ws.recv() == "after saw second for second"


async def test_http_middleware_order() -> None:
    """Global before_http, route before, handler, route after, global after_http."""
    app = App()
    calls: list[str] = []

    @app.before_http
    def global_before(request: Request) -> None:
        calls.append("global-before")

    @app.after_http
    async def global_after(request: Request, response: Response) -> None:
        calls.append(f"global-after:{response.status}")

    async def route_before(request: Request) -> None:
        calls.append("route-before")

    def route_after(request: Request, response: Response) -> None:
        calls.append(f"route-after:{response.status}")

    @app.get("/thing", before=[route_before], after=[route_after])
    async def thing(request: Request) -> dict[str, str]:
        calls.append("handler")
        return {"ok": "yes"}

    async with serve_app(app) as server:
        response = await server.request("GET", "/thing")
    assert response.json() == {"ok": "yes"}
    assert calls == ["global-before", "route-before", "handler", "route-after:200", "global-after:200"]


def protected_app(calls: list[str]) -> App:
    """GET /secret needs an authorization header (global) and is rate-limited per route."""
    app = App()

    @app.before_http
    async def require_auth(request: Request) -> Response | None:
        if "authorization" not in request.headers:
            return JSONResponse({"error": "login first"}, status=401)
        return None

    def rate_limit(request: Request) -> Response | None:
        return JSONResponse({"error": "slow down"}, status=429) if request.query.get("burst") else None

    @app.get("/secret", before=[rate_limit])
    async def secret(request: Request) -> str:
        calls.append("handler")
        return "the secret"

    return app


@pytest.mark.parametrize(
    ("path", "headers", "status", "body"),
    [
        ("/secret", {}, 401, b'{"error":"login first"}'),
        ("/secret?burst=1", {"authorization": "x"}, 429, b'{"error":"slow down"}'),
        ("/secret", {"authorization": "x"}, 200, b"the secret"),
    ],
)
async def test_before_http_returning_a_response_short_circuits(
    path: str, headers: dict[str, str], status: int, body: bytes
) -> None:
    """A Response from a before-middleware is the answer; the handler does not run."""
    calls: list[str] = []
    async with serve_app(protected_app(calls)) as server:
        response = await server.request("GET", path, headers=headers)
    assert (response.status, response.body) == (status, body)
    assert calls == (["handler"] if status == 200 else [])


async def test_after_http_can_replace_or_amend_the_response() -> None:
    """An after-middleware returning a Response replaces it; one returning None keeps (and may amend) it."""
    app = App()

    def add_header(request: Request, response: Response) -> None:
        response.headers["x-served-by"] = "hubbub"

    def hide_errors(request: Request, response: Response) -> Response | None:
        if response.status >= 500:
            return JSONResponse({"error": "try later"}, status=503, headers={"retry-after": "1"})
        return None

    @app.get("/fine", after=[add_header])
    async def fine(request: Request) -> str:
        return "fine"

    @app.get("/broken", after=[hide_errors])
    async def broken(request: Request) -> Response:
        return Response("stack trace here", status=500)

    async with serve_app(app) as server:
        kept = await server.request("GET", "/fine")
        replaced = await server.request("GET", "/broken")
    assert (kept.status, kept.text, kept.headers["x-served-by"]) == (200, "fine", "hubbub")
    assert (replaced.status, replaced.json(), replaced.headers["retry-after"]) == (503, {"error": "try later"}, "1")
