"""HTTP handlers as a new user writes them: bad bodies, errors to raise, streaming, and route authentication."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import jwt
import pytest

from hubbub import (
    APIKeyAuth,
    App,
    HTTPError,
    InvalidBody,
    JWTAuth,
    Request,
    Response,
    StreamingResponse,
)
from hubbub.testing import serve_app

SECRET = "a-test-secret-of-at-least-32-bytes!"


def build_app() -> App:
    app = App()
    app.authenticate(JWTAuth(secret=SECRET))
    stopped: list[str] = []
    app.stopped_streams = stopped  # type: ignore[attr-defined]

    @app.get("/int-body")
    async def int_body(request: Request) -> Response:
        return Response(42)  # type: ignore[arg-type]

    @app.get("/generator-body")
    async def generator_body(request: Request) -> Response:
        async def pieces() -> AsyncIterator[str]:
            yield "never sent"

        return Response(pieces())  # type: ignore[arg-type]

    @app.get("/body-replaced")
    async def body_replaced(request: Request) -> Response:
        response = Response("fine")
        response.body = {"not": "bytes"}  # type: ignore[assignment]
        return response

    @app.post("/json")
    async def parse(request: Request) -> dict[str, Any]:
        return {"got": request.json()}

    @app.post("/text")
    async def text(request: Request) -> str:
        return request.text().upper()

    @app.post("/still-a-value-error")
    async def still_value_error(request: Request) -> dict[str, Any]:
        try:
            return {"got": request.json()}
        except ValueError:  # code written before InvalidBody existed keeps working
            return {"got": None}

    @app.get("/items/{item_id:int}")
    async def item(request: Request) -> dict[str, int]:
        if request.path_params["item_id"] > 10:
            raise HTTPError(404, "no such item", headers={"x-hint": "1-10"})
        return {"id": request.path_params["item_id"]}

    @app.get("/forbidden")
    async def forbidden(request: Request) -> None:
        raise HTTPError(403)

    @app.before_http
    def guard(request: Request) -> None:
        if request.path == "/guarded":
            raise HTTPError(429, "slow down", headers={"retry-after": "3"})

    @app.get("/guarded")
    async def guarded(request: Request) -> str:
        return "not reached"

    @app.get("/stream")
    async def stream(request: Request) -> StreamingResponse:
        async def count() -> AsyncIterator[str]:
            for n in range(5):
                yield f"data: {n}\n\n"
                await asyncio.sleep(0)

        return StreamingResponse(count(), media_type="text/event-stream", headers={"cache-control": "no-store"})

    @app.get("/stream-sync")
    async def stream_sync(request: Request) -> StreamingResponse:
        def lines() -> Iterator[bytes]:
            yield b"a\n"
            yield b""
            yield b"b\n"

        return StreamingResponse(lines())

    @app.get("/stream-forever")
    async def forever(request: Request) -> StreamingResponse:
        async def ticks() -> AsyncIterator[str]:
            try:
                while True:
                    yield "tick\n"
                    await asyncio.sleep(0.01)
            finally:
                stopped.append("closed")

        return StreamingResponse(ticks())

    @app.get("/stream-fails")
    async def fails(request: Request) -> StreamingResponse:
        async def broken() -> AsyncIterator[str]:
            yield "first\n"
            raise RuntimeError("the source broke")

        return StreamingResponse(broken())

    @app.get("/me", auth=True)
    async def me(request: Request) -> dict[str, Any]:
        assert request.user is not None
        return {"user": request.user.id, "name": request.user.info.get("name")}

    @app.post("/ingest", auth=APIKeyAuth({"k-billing": "billing"}))
    async def ingest(request: Request) -> dict[str, Any]:
        assert request.user is not None
        return {"from": request.user.id}

    @app.get("/open")
    async def open_route(request: Request) -> dict[str, Any]:
        return {"user": request.user}

    return app


def token(**claims: Any) -> str:
    return jwt.encode({"sub": "ada", "name": "Ada", "exp": int(time.time()) + 60, **claims}, SECRET, "HS256")


@pytest.mark.parametrize("path", ["/int-body", "/generator-body", "/body-replaced"])
async def test_a_body_that_is_not_str_or_bytes_is_a_500_and_an_error_log(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The client is answered (500) at once instead of waiting forever, and the cause is logged."""
    async with serve_app(build_app()) as server:
        response = await asyncio.wait_for(server.request("GET", path), 5)
        assert response.status == 500
        assert response.json() == {"error": "internal server error"}
        follow_up = await server.request("GET", "/items/3")  # the server is fine
        assert follow_up.json() == {"id": 3}
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "hubbub.server"]
    assert errors and "must be str or bytes" in str(errors[0].exc_info[1])  # type: ignore[index]


async def test_generator_body_error_points_at_streaming_response() -> None:
    async def nothing() -> AsyncIterator[str]:
        yield ""

    with pytest.raises(TypeError, match="use StreamingResponse"):
        Response(nothing())  # type: ignore[arg-type]


async def test_unreadable_bodies_are_400() -> None:
    """Bad JSON and bad UTF-8 are the client's fault: 400 with a message, no traceback in the log."""
    async with serve_app(build_app()) as server:
        bad_json = await server.request("POST", "/json", body=b"{nope")
        bad_text = await server.request("POST", "/text", body=b"\xff\xfe")
        good = await server.request("POST", "/json", json={"a": 1})
        legacy = await server.request("POST", "/still-a-value-error", body=b"{nope")
    assert bad_json.status == 400
    assert bad_json.json()["error"].startswith("request body is not valid JSON")
    assert (bad_text.status, bad_text.json()) == (400, {"error": "request body is not valid UTF-8"})
    assert good.json() == {"got": {"a": 1}}
    assert legacy.json() == {"got": None}
    assert issubclass(InvalidBody, ValueError)


async def test_http_error_from_handler_and_middleware() -> None:
    """HTTPError(status, message, headers) is answered as {"error": message}; the message defaults to the phrase."""
    async with serve_app(build_app()) as server:
        missing = await server.request("GET", "/items/11")
        found = await server.request("GET", "/items/2")
        forbidden = await server.request("GET", "/forbidden")
        limited = await server.request("GET", "/guarded")
    assert (missing.status, missing.json(), missing.headers["x-hint"]) == (404, {"error": "no such item"}, "1-10")
    assert found.json() == {"id": 2}
    assert (forbidden.status, forbidden.json()) == (403, {"error": "forbidden"})
    assert (limited.status, limited.json(), limited.headers["retry-after"]) == (429, {"error": "slow down"}, "3")


async def test_streaming_response_from_an_async_iterator() -> None:
    """Server-Sent Events style: chunks arrive as produced; keep-alive still works after the stream."""
    async with (
        serve_app(build_app()) as server,
        aiohttp.ClientSession() as http,
    ):
        async with http.get(server.http_url("/stream")) as response:
            assert response.headers["content-type"] == "text/event-stream"
            assert response.headers["transfer-encoding"] == "chunked"
            assert response.headers["cache-control"] == "no-store"
            assert await response.text() == "".join(f"data: {n}\n\n" for n in range(5))
        async with http.get(server.http_url("/stream-sync")) as response:
            assert await response.read() == b"a\nb\n"
        async with http.get(server.http_url("/items/1")) as response:  # same pooled connection
            assert await response.json() == {"id": 1}


async def test_streaming_head_sends_no_body() -> None:
    async with serve_app(build_app()) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"HEAD /stream HTTP/1.1\r\nhost: x\r\n\r\nGET /items/4 HTTP/1.1\r\nhost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert b"transfer-encoding: chunked" in head
        after = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert after.startswith(b"HTTP/1.1 200")  # the next response follows at once: no body was sent
        writer.close()


async def test_streaming_stops_when_the_client_goes_away() -> None:
    """An endless stream is closed (its finally runs) once the client disconnects."""
    app = build_app()
    async with serve_app(app) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /stream-forever HTTP/1.1\r\nhost: x\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b"tick\n"), 5)
        writer.close()
        async with asyncio.timeout(5):
            while not app.stopped_streams:  # type: ignore[attr-defined]
                await asyncio.sleep(0.01)
    assert app.stopped_streams == ["closed"]  # type: ignore[attr-defined]


async def test_streaming_source_failure_is_logged_and_cuts_the_body(caplog: pytest.LogCaptureFixture) -> None:
    async with serve_app(build_app()) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /stream-fails HTTP/1.1\r\nhost: x\r\n\r\n")
        received = await asyncio.wait_for(reader.read(), 5)  # the connection is dropped: read() ends
        writer.close()
    assert b"first\n" in received
    assert not received.endswith(b"0\r\n\r\n")  # no terminating chunk: the client sees an incomplete body
    assert any("streaming response failed" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


async def test_streaming_over_http_1_0_closes_instead_of_chunking() -> None:
    async with serve_app(build_app()) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /stream-sync HTTP/1.0\r\n\r\n")
        received = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head
    assert b"connection: close" in head
    assert body == b"a\nb\n"


async def test_http_route_with_the_apps_jwt_authenticator() -> None:
    """auth=True: the same JWTAuth as the WebSocket routes; 401 {"error": reason} when refused."""
    async with serve_app(build_app()) as server:
        ok = await server.request("GET", "/me", headers={"authorization": f"Bearer {token()}"})
        by_query = await server.request("GET", f"/me?token={token()}")
        missing = await server.request("GET", "/me")
        expired = await server.request("GET", "/me", headers={"authorization": f"Bearer {token(exp=1)}"})
        wrong = await server.request("GET", "/me", headers={"authorization": "Bearer not.a.jwt"})
        open_route = await server.request("GET", "/open")
    assert (ok.status, ok.json()) == (200, {"user": "ada", "name": "Ada"})
    assert by_query.json() == {"user": "ada", "name": "Ada"}
    assert (missing.status, missing.json()) == (401, {"error": "missing token"})
    assert missing.headers["www-authenticate"] == "Bearer"
    assert (expired.status, expired.json()) == (401, {"error": "token expired"})
    assert wrong.status == 401
    assert wrong.json()["error"].startswith("invalid token")
    assert (open_route.status, open_route.json()) == (200, {"user": None})  # not opted in: no authentication


async def test_http_route_with_an_api_key() -> None:
    async with serve_app(build_app()) as server:
        ok = await server.request("POST", "/ingest", headers={"x-api-key": "k-billing"})
        wrong = await server.request("POST", "/ingest", headers={"x-api-key": "k-billinG"})
        missing = await server.request("POST", "/ingest")
        jwt_is_not_a_key = await server.request("POST", "/ingest", headers={"authorization": f"Bearer {token()}"})
    assert (ok.status, ok.json()) == (200, {"from": "billing"})
    assert (wrong.status, wrong.json()) == (401, {"error": "invalid API key"})
    assert (missing.status, missing.json()) == (401, {"error": "missing x-api-key header"})
    assert jwt_is_not_a_key.status == 401


async def test_auth_true_without_an_authenticator_fails_at_startup() -> None:
    from hubbub import ConfigurationError

    app = App()

    @app.get("/private", auth=True)
    async def private(request: Request) -> str:
        return "x"

    with pytest.raises(ConfigurationError, match="/private has auth=True but the app has no authenticator"):
        async with serve_app(app):
            pass
