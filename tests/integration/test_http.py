"""HTTP routes beside the WebSocket routes: methods, return types, request data, errors, keep-alive, upgrades."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from hubbub import App, Event, HTMLResponse, JSONResponse, Request, Response, WebSocketEndpoint
from hubbub.errors import HandshakeError
from hubbub.testing import serve_app


def build_app() -> App:
    """A small REST-ish app plus one WebSocket-only path."""
    app = App()
    items: dict[str, Any] = {"1": {"name": "one"}}

    @app.get("/items/{item_id}")
    async def get_item(request: Request) -> dict[str, Any]:
        return {"id": request.path_params["item_id"], **items.get(request.path_params["item_id"], {})}

    @app.post("/items")
    async def create_item(request: Request) -> Response:
        body = request.json()
        items[body["id"]] = {"name": body["name"]}
        return JSONResponse({"created": body["id"]}, status=201)

    @app.put("/items/{item_id}")
    def replace_item(request: Request) -> dict[str, Any]:
        items[request.path_params["item_id"]] = request.json()
        return {"replaced": request.path_params["item_id"], "now": items[request.path_params["item_id"]]}

    @app.delete("/items/{item_id}")
    async def delete_item(request: Request) -> None:
        items.pop(request.path_params["item_id"], None)

    @app.get("/html")
    async def html(request: Request) -> Response:
        return HTMLResponse("<h1>hi</h1>")

    @app.get("/text")
    async def text(request: Request) -> str:
        return "plain words"

    @app.get("/bytes")
    async def raw(request: Request) -> bytes:
        return b"\x00\x01\x02"

    @app.get("/inspect")
    async def inspect_request(request: Request) -> dict[str, Any]:
        return {
            "tags": request.query.getlist("tag"),
            "q": request.query.get("q"),
            "agent": request.headers.get("X-Agent"),
            "cookies": request.cookies,
            "client": request.client[0],
        }

    @app.websocket("/ws")
    async def echo(event: Event) -> None:
        await event.send(event.data)  # type: ignore[arg-type]

    return app


async def test_methods_with_path_params() -> None:
    """GET, POST (JSON body), PUT and DELETE routes, with path parameters (aiohttp)."""
    async with serve_app(build_app()) as server, aiohttp.ClientSession(server.http_url("/")) as http:
        async with http.get("/items/1") as response:
            assert response.status == 200
            assert await response.json() == {"id": "1", "name": "one"}
        async with http.post("/items", json={"id": "2", "name": "two"}) as response:
            assert response.status == 201
            assert await response.json() == {"created": "2"}
        async with http.put("/items/2", json={"name": "deux"}) as response:
            assert await response.json() == {"replaced": "2", "now": {"name": "deux"}}
        async with http.get("/items/2") as response:
            assert await response.json() == {"id": "2", "name": "deux"}
        async with http.delete("/items/2") as response:
            assert response.status == 204
            assert await response.read() == b""
        async with http.get("/items/2") as response:
            assert await response.json() == {"id": "2"}


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("/items/1", "application/json", b'{"id":"1","name":"one"}'),
        ("/html", "text/html; charset=utf-8", b"<h1>hi</h1>"),
        ("/text", "text/plain; charset=utf-8", b"plain words"),
        ("/bytes", "application/octet-stream", b"\x00\x01\x02"),
    ],
)
async def test_return_types(path: str, content_type: str, body: bytes) -> None:
    """dict -> JSON, HTMLResponse -> HTML, str -> text, bytes -> octet-stream."""
    async with serve_app(build_app()) as server:
        response = await server.request("GET", path)
    assert response.status == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["content-length"] == str(len(body))
    assert response.body == body


async def test_query_headers_and_cookies() -> None:
    """Handlers see repeated query values, headers case-insensitively, and parsed cookies."""
    headers = {"x-agent": "tester", "Cookie": "session=abc; theme=dark"}
    async with (
        serve_app(build_app()) as server,
        aiohttp.ClientSession() as http,
        http.get(server.http_url("/inspect?tag=a&tag=b&q=hello%20world"), headers=headers) as response,
    ):
        data = await response.json()
    assert data == {
        "tags": ["a", "b"],
        "q": "hello world",
        "agent": "tester",
        "cookies": {"session": "abc", "theme": "dark"},
        "client": "127.0.0.1",
    }


async def test_unknown_path_is_404_json() -> None:
    async with serve_app(build_app()) as server:
        response = await server.request("GET", "/nowhere")
    assert response.status == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "not found"}


async def test_wrong_method_is_405_with_allow() -> None:
    async with serve_app(build_app()) as server:
        response = await server.request("PATCH", "/items/1", json={})
    assert response.status == 405
    assert response.headers["allow"] == "DELETE, GET, HEAD, PUT"
    assert response.json() == {"error": "method not allowed"}


async def test_head_returns_headers_without_body() -> None:
    """HEAD on a GET route: same status and headers (content-length included), no body."""
    async with serve_app(build_app()) as server:
        get = await server.request("GET", "/text")
        head = await server.request("HEAD", "/text")
        async with aiohttp.ClientSession() as http, http.head(server.http_url("/html")) as response:
            assert response.status == 200
            assert response.headers["content-type"] == "text/html; charset=utf-8"
            assert await response.read() == b""
    assert head.status == 200
    assert head.headers["content-length"] == get.headers["content-length"] == str(len(b"plain words"))
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.body == b""


async def _read_response(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status_line, *lines = head.strip().split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    body = await reader.readexactly(int(headers["content-length"]))
    return status_line, headers, body


async def test_keep_alive_serves_two_requests_on_one_connection() -> None:
    """Without "connection: close", the socket stays open for the next request."""
    async with serve_app(build_app()) as server:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            async with asyncio.timeout(5):
                writer.write(b"GET /text HTTP/1.1\r\nhost: x\r\n\r\n")
                status, headers, body = await _read_response(reader)
                assert (status, body) == ("HTTP/1.1 200 OK", b"plain words")
                assert "connection" not in headers
                writer.write(b"GET /items/1 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                status, headers, body = await _read_response(reader)
                assert (status, body) == ("HTTP/1.1 200 OK", b'{"id":"1","name":"one"}')
                assert headers["connection"] == "close"
                assert await reader.read() == b""
        finally:
            writer.close()


async def test_websocket_only_path_with_plain_http_is_400() -> None:
    async with serve_app(build_app()) as server:
        response = await server.request("GET", "/ws")
    assert response.status == 400
    assert response.json() == {"error": "websocket upgrade required"}


def gated_app() -> App:
    """GET /gate upgrades to a WebSocket only with ?token=yes; anyone else gets 403."""
    app = App()

    async def shout(event: Event) -> None:
        await event.send(event.text.upper())

    endpoint = WebSocketEndpoint(on_message=shout)

    @app.get("/gate")
    async def gate(request: Request) -> Response:
        if request.query.get("token") == "yes":
            return request.upgrade(endpoint)
        return JSONResponse({"error": "no token"}, status=403)

    return app


async def test_http_handler_accepts_an_upgrade() -> None:
    """`request.upgrade(endpoint)` turns the request into a WebSocket served by that endpoint."""
    async with serve_app(gated_app()) as server:
        async with ws_connect(server.url("/gate?token=yes")) as ws:
            await ws.send("hello")
            assert await asyncio.wait_for(ws.recv(), 5) == "HELLO"
        async with await server.connect("/gate?token=yes") as ws:
            await ws.send("again")
            assert await ws.recv(timeout=5) == "AGAIN"
        plain = await server.request("GET", "/gate?token=yes")
    assert plain.status == 400
    assert plain.json() == {"error": "websocket upgrade required"}


async def test_http_handler_refuses_an_upgrade() -> None:
    """Returning a 403 Response instead of an upgrade refuses the handshake; clients see 403."""
    async with serve_app(gated_app()) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with ws_connect(server.url("/gate?token=no")):
                pass
        assert refused.value.response.status_code == 403
        with pytest.raises(HandshakeError) as own_refused:
            await server.connect("/gate")
        assert own_refused.value.status == 403
        assert own_refused.value.body == b'{"error":"no token"}'


@pytest.fixture
def static_app(tmp_path: Path) -> App:
    """/static serves tmp_path/public; a secret file sits one level above it."""
    public = tmp_path / "public"
    (public / "docs").mkdir(parents=True)
    (public / "style.css").write_text("body { color: red; }")
    (public / "index.html").write_text("<p>home</p>")
    (public / "docs" / "index.html").write_text("<p>docs</p>")
    (public / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "pyproject.toml").write_text("SECRET = true")
    app = App()
    app.static("/static", public)
    return app


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("/static/style.css", "text/css; charset=utf-8", b"body { color: red; }"),
        ("/static/logo.png", "image/png", b"\x89PNG\r\n\x1a\n"),
        ("/static/", "text/html; charset=utf-8", b"<p>home</p>"),
        ("/static", "text/html; charset=utf-8", b"<p>home</p>"),
        ("/static/docs", "text/html; charset=utf-8", b"<p>docs</p>"),
        ("/static/docs/", "text/html; charset=utf-8", b"<p>docs</p>"),
    ],
)
async def test_static_files(static_app: App, path: str, content_type: str, body: bytes) -> None:
    """Files are served with their content type; a directory serves its index.html."""
    async with serve_app(static_app) as server:
        response = await server.request("GET", path)
    assert response.status == 200
    assert response.headers["content-type"] == content_type
    assert response.body == body


async def test_static_missing_file_is_404(static_app: App) -> None:
    async with (
        serve_app(static_app) as server,
        aiohttp.ClientSession() as http,
        http.get(server.http_url("/static/nope.txt")) as response,
    ):
        assert response.status == 404
        assert await response.json() == {"error": "not found"}


@pytest.mark.parametrize(
    "target",
    [
        "/static/../pyproject.toml",
        "/static/%2e%2e/pyproject.toml",
        "/static/%2E%2E/pyproject.toml",
        "/static/..%2fpyproject.toml",
        "/static/%2e%2e%2fpyproject.toml",
        "/static/docs/../../pyproject.toml",
        "/static/docs/%2e%2e/%2e%2e/pyproject.toml",
        "/static/..\\pyproject.toml",
        "/static//../pyproject.toml",
        "/static/%00../pyproject.toml",
        "/static/" + "a" * 300,
    ],
)
async def test_static_path_traversal_is_404(static_app: App, target: str) -> None:
    """Paths that climb out of the static directory (or cannot be files) get 404, never the file or a 500."""
    async with serve_app(static_app) as server:
        response = await server.request("GET", target)
    assert response.status == 404
    assert b"SECRET" not in response.body
