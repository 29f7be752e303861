"""WebSocket handlers: the three ways to write them, the event they get, ordering, errors and logging."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable
from typing import Any

import aiohttp
import orjson
import pytest
from websockets.asyncio.client import connect as ws_connect

from hubbub import App, Event, WebSocketEndpoint
from hubbub.testing import serve_app, wait_for


async def test_function_style_is_the_message_handler() -> None:
    """`@app.websocket` on a function registers it as the message handler; connect/disconnect stay optional."""
    app = App()

    @app.websocket("/echo")
    async def echo(event: Event) -> None:
        await event.send(event.data)  # type: ignore[arg-type]

    async with serve_app(app) as server, await server.connect("/echo") as ws:
        await ws.send("hi")
        assert await ws.recv(timeout=5) == "hi"
        await ws.send(b"\x00\x01")
        assert await ws.recv(timeout=5) == b"\x00\x01"


async def test_decorator_style_with_each_handler_optional() -> None:
    """`ep.on_connect` / `ep.on_disconnect` without a message handler: messages are ignored, the socket stays open."""
    app = App()
    departed: asyncio.Queue[str] = asyncio.Queue()
    ep = app.websocket("/deco")

    @ep.on_connect
    async def hello(event: Event) -> None:
        await event.send(f"welcome {event.type}")

    @ep.on_disconnect
    async def bye(event: Event) -> None:
        departed.put_nowait(event.type)

    only_disconnect = app.websocket("/only-disconnect")
    only_disconnect.on_disconnect(bye)
    app.mount_websocket("/nothing", WebSocketEndpoint())

    async with serve_app(app) as server:
        async with await server.connect("/deco") as ws:
            assert await ws.recv(timeout=5) == "welcome connect"
            await ws.send("nobody handles this")
            await ws.ping()
            await wait_for(lambda: ws.pongs == 1)
        assert await asyncio.wait_for(departed.get(), 5) == "disconnect"
        async with await server.connect("/only-disconnect") as ws:
            await ws.send("ignored")
        assert await asyncio.wait_for(departed.get(), 5) == "disconnect"
        async with await server.connect("/nothing") as ws:
            await ws.send("ignored")
            await ws.close(1000)
            assert ws.close_code == 1000


async def test_class_style_takes_its_methods() -> None:
    """`@app.websocket` on a class instantiates it and uses its on_connect/on_message/on_disconnect."""
    app = App()
    departed: asyncio.Queue[int | None] = asyncio.Queue()

    @app.websocket("/cls")
    class Greeter:
        def __init__(self) -> None:
            self.greeting = "hello"

        async def on_connect(self, event: Event) -> None:
            await event.send(self.greeting)

        async def on_message(self, event: Event) -> None:
            await event.send(f"{self.greeting} {event.text}")

        async def on_disconnect(self, event: Event) -> None:
            departed.put_nowait(event.close_code)

    async with serve_app(app) as server:
        async with ws_connect(server.url("/cls")) as ws:
            async with asyncio.timeout(5):
                assert await ws.recv() == "hello"
                await ws.send("ann")
                assert await ws.recv() == "hello ann"
        assert await asyncio.wait_for(departed.get(), 5) == 1000


async def test_sync_handlers() -> None:
    """Plain functions work as handlers; an awaitable they return is awaited."""
    app = App()
    seen: list[str] = []
    ep = app.websocket("/sync")

    @ep.on_connect
    def connected(event: Event) -> None:
        seen.append(event.type)

    @ep.on_message
    def message(event: Event) -> Awaitable[bool]:
        seen.append(event.text)
        return event.send(event.text.upper())

    @ep.on_disconnect
    def disconnected(event: Event) -> None:
        seen.append(f"{event.type} {event.close_code}")

    async with serve_app(app) as server:
        async with await server.connect("/sync") as ws:
            await ws.send("shout")
            assert await ws.recv(timeout=5) == "SHOUT"
        await wait_for(lambda: len(seen) == 3)
        assert seen == ["connect", "shout", "disconnect 1000"]


async def test_connect_event_carries_the_handshake() -> None:
    """client_id is a UUID4 string; path, params, query, headers and remote come from the handshake."""
    app = App()
    ep = app.websocket("/chat/{room}")

    @ep.on_connect
    async def describe(event: Event) -> None:
        info: dict[str, Any] = {
            "type": event.type,
            "client_id": event.client_id,
            "path": event.path,
            "params": event.params,
            "query": {name: event.query.getlist(name) for name in event.query},
            "token": event.headers.get("X-Token"),
            "remote": list(event.remote),
        }
        await event.send(orjson.dumps(info).decode())

    async with (
        serve_app(app) as server,
        ws_connect(server.url("/chat/lobby?name=ann&tag=a&tag=b"), additional_headers={"X-Token": "t0k"}) as ws,
    ):
        info = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        local_host, local_port = ws.local_address[:2]
    assert info["type"] == "connect"
    parsed = uuid.UUID(info["client_id"])
    assert parsed.version == 4
    assert str(parsed) == info["client_id"]
    assert info["path"] == "/chat/lobby"
    assert info["params"] == {"room": "lobby"}
    assert info["query"] == {"name": ["ann"], "tag": ["a", "b"]}
    assert info["token"] == "t0k"
    assert info["remote"] == [local_host, local_port]


async def test_client_ids_are_unique_per_connection() -> None:
    """Two connections to the same route get different ids."""
    app = App()
    ep = app.websocket("/id")

    @ep.on_connect
    async def tell(event: Event) -> None:
        await event.send(event.client_id)

    async with serve_app(app) as server, await server.connect("/id") as a, await server.connect("/id") as b:
        assert await a.recv(timeout=5) != await b.recv(timeout=5)


async def test_path_rest_parameter() -> None:
    """`{rest:path}` captures the rest of the path, slashes included."""
    app = App()

    @app.websocket("/files/{bucket}/{rest:path}")
    async def where(event: Event) -> None:
        await event.send(f"{event.params['bucket']}|{event.params['rest']}|{event.text}")

    async with serve_app(app) as server, await server.connect("/files/b1/a/b/c.txt") as ws:
        await ws.send("x")
        assert await ws.recv(timeout=5) == "b1|a/b/c.txt|x"


async def test_text_and_binary_messages() -> None:
    """Text arrives as str with is_binary False, binary as bytes with is_binary True; text/bytes convert."""
    app = App()

    @app.websocket("/inspect")
    async def inspect_message(event: Event) -> None:
        report = {
            "type": event.type,
            "is_binary": event.is_binary,
            "data_is_bytes": isinstance(event.data, bytes),
            "text": event.text,
            "bytes": event.bytes.hex(),
        }
        await event.send(orjson.dumps(report).decode())

    async with (
        serve_app(app) as server,
        aiohttp.ClientSession() as session,
        session.ws_connect(server.url("/inspect")) as ws,
    ):
        await ws.send_str("héllo")
        text = orjson.loads(await ws.receive_str(timeout=5))
        await ws.send_bytes(b"\xffok")
        binary = orjson.loads(await ws.receive_str(timeout=5))
    assert text == {
        "type": "message",
        "is_binary": False,
        "data_is_bytes": False,
        "text": "héllo",
        "bytes": "héllo".encode().hex(),
    }
    assert binary == {
        "type": "message",
        "is_binary": True,
        "data_is_bytes": True,
        "text": "\ufffdok",
        "bytes": "ff6f6b",
    }


def _record_disconnects(app: App, path: str) -> asyncio.Queue[tuple[str, int | None, str | None]]:
    departed: asyncio.Queue[tuple[str, int | None, str | None]] = asyncio.Queue()
    ep = app.websocket(path)

    @ep.on_connect
    async def tell(event: Event) -> None:
        await event.send(event.client_id)

    @ep.on_disconnect
    async def gone(event: Event) -> None:
        departed.put_nowait((event.client_id, event.close_code, event.close_reason))

    return departed


async def test_disconnect_gets_the_clients_close_code_and_reason() -> None:
    """A client closing with 4000 "bye" shows up as close_code 4000 and close_reason "bye"."""
    app = App()
    departed = _record_disconnects(app, "/ws")
    async with serve_app(app) as server, ws_connect(server.url("/ws")) as ws:
        client_id = str(await asyncio.wait_for(ws.recv(), 5))
        await ws.close(4000, "bye")
        assert await asyncio.wait_for(departed.get(), 5) == (client_id, 4000, "bye")


async def test_disconnect_is_1006_when_the_client_drops_tcp() -> None:
    """A client that vanishes without a close frame gives close_code 1006."""
    app = App()
    departed = _record_disconnects(app, "/ws")
    async with serve_app(app) as server:
        ws = await server.connect("/ws")
        client_id = await ws.recv(timeout=5)
        ws.abort()
        gone_id, code, _ = await asyncio.wait_for(departed.get(), 5)
    assert (gone_id, code) == (client_id, 1006)


async def test_messages_are_handled_in_order_when_handlers_await() -> None:
    """A handler that awaits holds back the next message: handling and replies keep the sending order."""
    app = App()
    handled: list[str] = []
    ep = app.websocket("/ordered")

    @ep.on_connect
    async def slow_connect(event: Event) -> None:
        await asyncio.sleep(0.01)
        handled.append("connect")

    @ep.on_message
    async def sometimes_slow(event: Event) -> None:
        if int(event.text) % 3 == 0:
            await asyncio.sleep(0.01)
        handled.append(event.text)
        await event.send(event.text)

    count = 20
    async with serve_app(app) as server, await server.connect("/ordered") as ws:
        for number in range(count):
            await ws.send(str(number))
        replies = [await ws.recv(timeout=5) for _ in range(count)]
    expected = [str(number) for number in range(count)]
    assert replies == expected
    assert handled == ["connect", *expected]


def _error_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.ERROR and r.name.startswith("hubbub")]


async def test_failing_handler_is_logged_and_the_connection_survives(caplog: pytest.LogCaptureFixture) -> None:
    """A raising handler is logged at ERROR with its traceback; the client sees nothing of it and keeps going."""
    app = App()

    @app.websocket("/fragile")
    async def fragile(event: Event) -> None:
        if event.text == "fail":
            raise ValueError("secret detail")
        if event.text == "fail-later":
            await asyncio.sleep(0)
            raise RuntimeError("secret detail after await")
        await event.send(f"ok {event.text}")

    async with serve_app(app) as server, await server.connect("/fragile") as ws:
        await ws.send("fail")
        await ws.send("one")
        assert await ws.recv(timeout=5) == "ok one"
        await ws.send("fail-later")
        await ws.send("two")
        assert await ws.recv(timeout=5) == "ok two"
        await wait_for(lambda: len(_error_records(caplog)) == 2)
        assert ws.close_code is None
    first, second = _error_records(caplog)
    assert first.exc_info is not None and first.exc_info[0] is ValueError
    assert second.exc_info is not None and second.exc_info[0] is RuntimeError
    assert "secret detail" in caplog.text
    assert "Traceback" in caplog.text


async def test_failing_connect_handler_keeps_the_connection(caplog: pytest.LogCaptureFixture) -> None:
    """An on_connect that raises is logged; the connection still gets its messages handled."""
    app = App()
    ep = app.websocket("/bad-connect")

    @ep.on_connect
    async def broken(event: Event) -> None:
        raise KeyError("missing")

    @ep.on_message
    async def echo(event: Event) -> None:
        await event.send(event.data)  # type: ignore[arg-type]

    async with serve_app(app) as server, ws_connect(server.url("/bad-connect")) as ws:
        await ws.send("still here")
        assert await asyncio.wait_for(ws.recv(), 5) == "still here"
    errors = _error_records(caplog)
    assert len(errors) == 1
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is KeyError


async def test_connect_and_disconnect_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    """INFO lines name the client id, the path, the remote address and (on disconnect) the close code."""
    app = App()
    departed = _record_disconnects(app, "/logged")
    async with serve_app(app) as server:
        async with ws_connect(server.url("/logged")) as ws:
            client_id = str(await asyncio.wait_for(ws.recv(), 5))
            await ws.close(4000, "bye")
        await asyncio.wait_for(departed.get(), 5)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and client_id in r.getMessage()]
    connect_lines = [line for line in lines if "disconnect" not in line]
    disconnect_lines = [line for line in lines if "disconnect" in line]
    assert len(connect_lines) == 1
    assert len(disconnect_lines) == 1
    for line in (connect_lines[0], disconnect_lines[0]):
        assert "/logged" in line
        assert "127.0.0.1" in line
    assert "4000" in disconnect_lines[0]
