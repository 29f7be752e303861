"""Guards of channel routes: reserved publication types, unencodable replies, boolean ids,
and handlers that would replace the envelope dispatcher."""

from __future__ import annotations

import orjson
import pytest

from hubbub import App, ConfigurationError
from hubbub.testing import serve_app


def build_app() -> App:
    app = App()
    chat = app.channel("/chat")
    chat.authorize(lambda event, action, room: True)

    @chat.on("odd")
    async def odd(event: object) -> object:
        return object()

    @chat.on("ping")
    async def ping(event: object) -> str:
        return "pong"

    return app


async def test_a_client_cannot_publish_builtin_event_types() -> None:
    async with serve_app(build_app()) as server:
        ws = await server.connect("/chat", subprotocols=["hubbub.v1.json"])
        await ws.recv()
        await ws.send(orjson.dumps({"type": "hubbub.join", "data": {"room": "r"}, "id": 1}).decode())
        assert orjson.loads(await ws.recv())["id"] == 1
        for kind in ("hubbub.presence", "hubbub.welcome", "hubbub.error"):
            await ws.send(
                orjson.dumps({"type": "hubbub.publish", "data": {"room": "r", "type": kind}, "id": 2}).decode()
            )
            reply = orjson.loads(await ws.recv())
            assert reply["id"] == 2 and reply["error"]["code"] == "bad_request", reply
        await ws.close()


async def test_an_unencodable_reply_becomes_handler_error() -> None:
    async with serve_app(build_app()) as server:
        ws = await server.connect("/chat", subprotocols=["hubbub.v1.json"])
        await ws.recv()
        await ws.send(orjson.dumps({"type": "odd", "id": 7}).decode())
        reply = orjson.loads(await ws.recv())
        assert reply == {"id": 7, "error": {"code": "handler_error", "message": "internal error"}}
        await ws.send(orjson.dumps({"type": "ping", "id": 8}).decode())
        assert orjson.loads(await ws.recv()) == {"id": 8, "data": "pong"}
        await ws.close()


@pytest.mark.parametrize("bad_id", [True, False, 1.5, [1]])
async def test_ids_must_be_strings_or_integers(bad_id: object) -> None:
    async with serve_app(build_app()) as server:
        ws = await server.connect("/chat", subprotocols=["hubbub.v1.json"])
        await ws.recv()
        await ws.send(orjson.dumps({"type": "ping", "id": bad_id}).decode())
        reply = orjson.loads(await ws.recv())
        assert reply["type"] == "hubbub.error" and reply["error"]["code"] == "invalid_message"
        await ws.close()


def test_a_channel_refuses_a_raw_message_handler() -> None:
    chat = App().channel("/chat")
    with pytest.raises(ConfigurationError):
        chat.on_message(lambda event: None)
    with pytest.raises(ConfigurationError):
        chat(lambda event: None)
