"""The App as an ASGI application: served by a real uvicorn, and mounted in FastAPI and Starlette."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvicorn
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse as StarlettePlainText
from starlette.routing import Mount, Route

from hubbub import App, Event, HTTPError, Request, StreamingResponse, User
from hubbub.client import WebSocketClient, connect
from hubbub.errors import ConnectionClosed, HandshakeError
from tests.support.processes import free_port, wait_accepting

ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def uvicorn_serving(asgi_app: Any) -> AsyncIterator[int]:
    """Serve `asgi_app` with uvicorn on a free port in this event loop; stop it (lifespan shutdown) on exit."""
    port = free_port()
    config = uvicorn.Config(asgi_app, host="127.0.0.1", port=port, lifespan="on", log_level="warning")
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # older uvicorn
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                assert not task.done(), "uvicorn stopped before it started"
                await asyncio.sleep(0.02)
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


def build_app(broker: Any = None) -> App:
    """Raw echo, a room route, users from a query token, a channel, HTTP routes."""
    app = App(broker=broker)
    log: list[str] = []
    app.state_log = log  # type: ignore[attr-defined]

    @app.authenticate
    def by_token(request: Request) -> User | None:
        token = request.query.get("token")
        return User(token[len("t-") :]) if token and token.startswith("t-") else None

    @app.websocket("/echo", auth=False)
    async def echo(event: Event) -> None:
        await event.send(event.data)  # type: ignore[arg-type]

    rooms = app.websocket("/rooms/{room}", auth=False)

    @rooms.on_connect
    async def joined(event: Event) -> None:
        await event.hub.join(event.params["room"], event.client_id)
        await event.send("joined")

    @rooms.on_message
    async def said(event: Event) -> None:
        await event.hub.room_broadcast(event.params["room"], event.text, exclude=event.client_id)

    users = app.websocket("/me")

    @users.on_message
    async def to_all_devices(event: Event) -> None:
        assert event.user_id is not None
        await event.hub.send_to_user(event.user_id, f"{event.user_id}: {event.text}")

    @app.on_online
    def online(user_id: str) -> None:
        log.append(f"online {user_id}")

    @app.on_offline
    def offline(user_id: str) -> None:
        log.append(f"offline {user_id}")

    chat = app.channel("/chat", auth=False)

    @chat.on("add")
    async def add(event: Event) -> int:
        return int(sum(event.data))

    @app.get("/hello/{name}")
    async def hello(request: Request) -> dict[str, Any]:
        return {"hello": request.path_params["name"], "q": request.query.get("q"), "path": request.path}

    @app.post("/echo-body")
    async def echo_body(request: Request) -> dict[str, Any]:
        return {"got": request.json()}

    @app.get("/teapot")
    async def teapot(request: Request) -> None:
        raise HTTPError(418, "short and stout")

    @app.get("/count")
    async def count(request: Request) -> StreamingResponse:
        async def numbers() -> AsyncIterator[str]:
            for n in range(3):
                yield f"{n}\n"

        return StreamingResponse(numbers(), media_type="text/plain")

    @app.get("/online/{user}")
    async def is_online(request: Request) -> dict[str, bool]:
        return {"online": await app.hub.is_online(request.path_params["user"])}

    @app.on_shutdown
    def bye() -> None:
        log.append("shutdown")

    return app


async def check_routes(base: str, http_base: str, app: App) -> None:
    """What every way of serving the app must do the same."""
    async with await connect(f"{base}/echo") as ws:
        await ws.send("hi")
        assert await ws.recv() == "hi"
        await ws.send(b"\x00\x01")
        assert await ws.recv() == b"\x00\x01"
    async with await connect(f"{base}/rooms/lobby") as a, await connect(f"{base}/rooms/lobby") as b:
        assert await a.recv() == "joined"
        assert await b.recv() == "joined"
        await a.send("to the room")
        assert await b.recv() == "to the room"
    async with await connect(f"{base}/chat", subprotocols=["hubbub.v1.json"]) as ws:
        assert ws.subprotocol == "hubbub.v1.json"
        assert json.loads(await ws.recv())["type"] == "hubbub.welcome"
        await ws.send(json.dumps({"type": "add", "id": 1, "data": [1, 2, 3]}))
        assert json.loads(await ws.recv()) == {"id": 1, "data": 6}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{http_base}/hello/ada?q=1") as response:
            assert response.status == 200
            assert await response.json() == {"hello": "ada", "q": "1", "path": "/hello/ada"}
        async with http.post(f"{http_base}/echo-body", data=b"{not json") as response:
            assert response.status == 400
            assert (await response.json())["error"].startswith("request body is not valid JSON")
        async with http.get(f"{http_base}/teapot") as response:
            assert response.status == 418
            assert await response.json() == {"error": "short and stout"}
        async with http.get(f"{http_base}/count") as response:
            assert await response.text() == "0\n1\n2\n"
        async with http.get(f"{http_base}/nowhere") as response:
            assert response.status == 404
            assert await response.json() == {"error": "not found"}
        async with http.get(f"{http_base}/echo") as response:
            assert response.status == 400
            assert await response.json() == {"error": "websocket upgrade required"}


async def test_uvicorn_serves_the_same_routes() -> None:
    """uvicorn serving the App: raw and channel WebSockets, rooms, HTTP routes, errors, streaming."""
    app = build_app()
    async with uvicorn_serving(app) as port:
        await check_routes(f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}", app)


async def test_users_presence_and_refused_handshakes_under_uvicorn() -> None:
    """Authentication at the handshake (401 when refused), one user on two devices, online/offline hooks."""
    app = build_app()
    log: list[str] = app.state_log  # type: ignore[attr-defined]
    async with uvicorn_serving(app) as port:
        base = f"ws://127.0.0.1:{port}"
        anonymous = await connect(f"{base}/me")
        with pytest.raises(ConnectionClosed):
            await anonymous.recv(timeout=5)
        assert (anonymous.close_code, anonymous.close_reason) == (4001, "authentication required")
        phone: WebSocketClient = await connect(f"{base}/me?token=t-ada")
        laptop: WebSocketClient = await connect(f"{base}/me?token=t-ada")
        await phone.send("hello")
        assert await phone.recv() == "ada: hello"
        assert await laptop.recv() == "ada: hello"
        assert log == ["online ada"]
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/online/ada") as response:
            assert await response.json() == {"online": True}
        await phone.close()
        await laptop.close()
        async with asyncio.timeout(5):
            while "offline ada" not in log:
                await asyncio.sleep(0.02)


async def test_refused_handshake_answers_http_under_uvicorn() -> None:
    """auth_failure="http": the refusal is an HTTP 401 with hubbub's JSON body, sent through uvicorn."""
    app = build_app()
    app.options = app.options.replace(auth_failure="http")
    async with uvicorn_serving(app) as port:
        with pytest.raises(HandshakeError) as refused:
            await connect(f"ws://127.0.0.1:{port}/me?token=nope")
        assert refused.value.status == 401
        assert json.loads(refused.value.body) == {"error": "authentication required", "code": 4001}


async def test_stopping_uvicorn_closes_connections_and_runs_shutdown_hooks() -> None:
    """Stopping uvicorn: it closes WebSockets itself (1012, its choice), then the lifespan
    shutdown runs the app's shutdown hooks; the connections have left their rooms."""
    app = build_app()
    log: list[str] = app.state_log  # type: ignore[attr-defined]
    async with uvicorn_serving(app) as port:
        ws = await connect(f"ws://127.0.0.1:{port}/rooms/x")
        assert await ws.recv() == "joined"
    assert log[-1] == "shutdown"
    with pytest.raises(ConnectionClosed):
        await ws.recv(timeout=5)
    assert ws.close_code == 1012
    assert await app.hub.room_count("x") == 0


async def test_app_stop_closes_connections_with_1001() -> None:
    """The app's own graceful stop (lifespan exit) closes what is still open with 1001."""
    app = build_app()
    async with uvicorn_serving(app) as port:
        ws = await connect(f"ws://127.0.0.1:{port}/rooms/x")
        assert await ws.recv() == "joined"
        await app.asgi.stop()
        with pytest.raises(ConnectionClosed):
            await ws.recv(timeout=5)
        assert (ws.close_code, ws.close_reason) == (1001, "server shutting down")
        assert app.state_log[-1] == "shutdown"  # type: ignore[attr-defined]


async def test_rooms_cross_two_uvicorn_servers_through_redis(redis_url: str) -> None:
    """Two ASGI servers on one Redis: a room broadcast on one reaches a member on the other."""
    from hubbub.broker.redis import RedisBroker

    one, two = build_app(RedisBroker(redis_url)), build_app(RedisBroker(redis_url))
    async with uvicorn_serving(one) as port_one, uvicorn_serving(two) as port_two:
        a = await connect(f"ws://127.0.0.1:{port_one}/rooms/lobby")
        b = await connect(f"ws://127.0.0.1:{port_two}/rooms/lobby")
        assert await a.recv() == "joined"
        assert await b.recv() == "joined"
        await a.send("across")
        assert await b.recv() == "across"
        assert await one.hub.room_count("lobby") == 2
        await a.close()
        await b.close()


async def test_mounted_in_fastapi() -> None:
    """`fastapi_app.mount("/rt", app)`: the App's routes under /rt, FastAPI's own beside them, one lifespan."""
    rt = build_app()
    started: list[str] = []

    @rt.on_startup
    def up() -> None:
        started.append("up")

    api = FastAPI(lifespan=rt.lifespan)

    @api.get("/api/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "fastapi"}

    api.mount("/rt", rt)
    async with uvicorn_serving(api) as port:
        assert started == ["up"]
        await check_routes(f"ws://127.0.0.1:{port}/rt", f"http://127.0.0.1:{port}/rt", rt)
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/api/ping") as response:
            assert await response.json() == {"pong": "fastapi"}
    assert rt.state_log[-1] == "shutdown"  # type: ignore[attr-defined]


async def test_mounted_in_starlette_without_lifespan() -> None:
    """Mounted in Starlette with no lifespan wiring: the App starts on its first request."""
    rt = build_app()

    async def home(request: Any) -> StarlettePlainText:
        return StarlettePlainText("starlette home")

    host = Starlette(routes=[Route("/", home), Mount("/rt", app=rt)])
    async with uvicorn_serving(host) as port:
        await check_routes(f"ws://127.0.0.1:{port}/rt", f"http://127.0.0.1:{port}/rt", rt)
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/") as response:
            assert await response.text() == "starlette home"
        await rt.asgi.stop()


async def test_backpressure_drops_under_asgi() -> None:
    """The per-connection send limit holds under ASGI too: past it, sends return False and are counted."""
    app = App(max_backpressure=1024, backpressure_policy="drop")
    results: list[bool] = []

    @app.websocket("/flood")
    async def flood(event: Event) -> None:
        for _ in range(50):
            results.append(await event.send("x" * 200))

    async with uvicorn_serving(app) as port:
        async with await connect(f"ws://127.0.0.1:{port}/flood") as ws:
            await ws.send("go")
            first = await ws.recv()
            assert first == "x" * 200
        assert results[0] is True
        assert False in results  # 50 x 200 bytes queued at once: over 1024 some are dropped


async def test_uvicorn_command_serves_the_echo_example(tmp_path: Path) -> None:
    """`uvicorn examples.echo:app`, as a user would type it, serves the echo and fan-out routes."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "examples.echo:app", "--port", str(port)]
    with (tmp_path / "stderr").open("wb") as err:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
    try:
        await wait_accepting(proc, port)
        async with await connect(f"ws://127.0.0.1:{port}/echo") as ws:
            await ws.send("via uvicorn")
            assert await ws.recv() == "via uvicorn"
        fanout = f"ws://127.0.0.1:{port}/fanout"
        async with await connect(fanout) as a, await connect(fanout) as b:
            await b.send("b is in")  # b's own broadcast coming back proves it joined
            assert await b.recv() == "b is in"
            await a.send("all")  # handled after a's connect handler: a is in the room too
            assert await b.recv() == "all"
            received = await a.recv()
            if received == "b is in":  # a had joined before b spoke
                received = await a.recv()
            assert received == "all"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 10) in (0, -signal.SIGTERM)  # newer uvicorn re-raises it
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    logged = (tmp_path / "stderr").read_text()
    assert "Application startup complete" in logged
    assert "Application shutdown complete" in logged
    assert "Traceback" not in logged
