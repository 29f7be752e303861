"""HTTP requests and responses as handlers see them."""

from __future__ import annotations

import mimetypes
import os
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Iterator, Mapping
from http import HTTPStatus
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import orjson

from hubbub.errors import ConfigurationError, HTTPError, InvalidBody


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only request headers.

    Held either parsed (a list of pairs) or, for long-lived WebSocket connections,
    compacted into one block of bytes that is parsed again on the next use.
    """

    __slots__ = ("_index", "_items", "_raw")

    def __init__(self, raw_head: bytes = b"", items: Iterable[tuple[str, str]] | None = None) -> None:
        self._raw = raw_head
        self._items: list[tuple[str, str]] | None = list(items) if items is not None else None
        self._index: dict[str, str] | None = None

    def _parse(self) -> list[tuple[str, str]]:
        items = self._items
        if items is None:
            items = []
            for line in self._raw.split(b"\r\n")[1:]:
                name, sep, value = line.partition(b":")
                if sep:
                    items.append((name.strip().decode("latin-1").lower(), value.strip().decode("latin-1")))
            self._items = items
            self._raw = b""
        return items

    def compact(self) -> None:
        """Keep only one bytes block (a fraction of the parsed form); the next use parses it again."""
        items = self._items
        if items is not None:
            self._raw = "\r\n".join(["", *(f"{name}: {value}" for name, value in items)]).encode("latin-1")
            self._items = None
        self._index = None

    def _lookup(self) -> dict[str, str]:
        index = self._index
        if index is None:
            index = {}
            for name, value in self._parse():
                index[name] = f"{index[name]}, {value}" if name in index else value
            self._index = index
        return index

    def __getitem__(self, name: str) -> str:
        return self._lookup()[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._lookup())

    def __len__(self) -> int:
        return len(self._lookup())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lookup()

    def getlist(self, name: str) -> list[str]:
        """Every value of a header that may repeat, in order."""
        name = name.lower()
        return [value for key, value in self._parse() if key == name]

    def raw(self) -> list[tuple[str, str]]:
        """All (lower-cased name, value) pairs in order."""
        return list(self._parse())

    def __repr__(self) -> str:
        return f"Headers({self._parse()!r})"


class QueryParams(Mapping[str, str]):
    """Query-string parameters; the last value wins for `[]`, `getlist` gives all."""

    __slots__ = ("_items", "_last")

    def __init__(self, query_string: str) -> None:
        self._items = parse_qsl(query_string, keep_blank_values=True)
        self._last = dict(self._items)

    def __getitem__(self, name: str) -> str:
        return self._last[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._last)

    def __len__(self) -> int:
        return len(self._last)

    def getlist(self, name: str) -> list[str]:
        """Every value given for `name`."""
        return [value for key, value in self._items if key == name]

    def __repr__(self) -> str:
        return f"QueryParams({self._items!r})"


class Request:
    """One HTTP request (also the handshake of a WebSocket connection)."""

    __slots__ = (
        "_headers",
        "_query",
        "_upgrade_to",
        "app",
        "body",
        "client",
        "http_version",
        "method",
        "path",
        "path_params",
        "query_string",
        "user",
    )

    def __init__(
        self,
        method: str,
        path: str,
        query_string: str,
        headers: Headers,
        client: tuple[str, int],
        body: bytes = b"",
        http_version: str = "1.1",
    ) -> None:
        self.method = method
        self.path = path
        self.query_string = query_string
        self.client = client
        self.body = body
        self.http_version = http_version
        self.path_params: dict[str, Any] = {}
        self._headers = headers
        self._query: QueryParams | None = None
        self._upgrade_to: object | None = None
        self.user: Any = None
        """The `hubbub.User` an authenticated HTTP route's authenticator returned (None elsewhere)."""
        self.app: Any = None
        """The App answering this request (set before any handler or middleware runs)."""

    @property
    def headers(self) -> Headers:
        """The request headers (case-insensitive)."""
        return self._headers

    @property
    def query(self) -> QueryParams:
        """The parsed query string."""
        query = self._query
        if query is None:
            query = self._query = QueryParams(self.query_string)
        return query

    @property
    def cookies(self) -> dict[str, str]:
        """Cookies sent with the request."""
        jar: SimpleCookie = SimpleCookie()
        for header in self._headers.getlist("cookie"):
            jar.load(header)
        return {name: morsel.value for name, morsel in jar.items()}

    @property
    def is_websocket(self) -> bool:
        """Whether this request asks to upgrade to WebSocket."""
        return self._headers.get("upgrade", "").lower() == "websocket"

    def text(self) -> str:
        """The body decoded as UTF-8 (raises `InvalidBody`, answered 400, if it is not UTF-8)."""
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidBody("request body is not valid UTF-8") from None

    def json(self) -> Any:
        """The body parsed as JSON (raises `InvalidBody`, answered 400 and also a ValueError, if it is not JSON)."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise InvalidBody(f"request body is not valid JSON: {exc}") from None

    def upgrade(self, endpoint: object) -> Response:
        """From an HTTP handler: accept this WebSocket upgrade, served by `endpoint` (a WebSocketEndpoint)."""
        if not self.is_websocket:
            return JSONResponse({"error": "websocket upgrade required"}, status=400)
        self._upgrade_to = endpoint
        return Response(status=101)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path}>"


class Response:
    """An HTTP response; `body` is bytes or str (encoded as UTF-8).

    Any other body raises TypeError (a handler doing so is answered 500 and logged);
    to send an async iterator or a generator, use `StreamingResponse`.
    """

    __slots__ = ("body", "headers", "media_type", "status")

    def __init__(
        self,
        body: bytes | str = b"",
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        self.status = status
        self.body = as_body(body)
        self.headers: dict[str, str] = dict(headers or {})
        self.media_type = media_type

    def head_lines(self) -> list[str]:
        """The status line and headers (content-length aside)."""
        lines = [f"HTTP/1.1 {self.status} {status_phrase(self.status)}"]
        if self.media_type is not None:
            lines.append(f"content-type: {self.media_type}")
        lines.extend(f"{name}: {value}" for name, value in self.headers.items())
        return lines

    def encode(self, *, keep_alive: bool, head_only: bool = False) -> bytes:
        """The response as bytes on the wire (HTTP/1.1)."""
        body = as_body(self.body)  # after-middleware may have replaced it
        lines = self.head_lines()
        lines.append(f"content-length: {len(body)}")
        if not keep_alive:
            lines.append("connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head if head_only else head + body


def as_body(body: object) -> bytes:
    """A response body as bytes; TypeError for anything but bytes, bytearray, memoryview or str."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    hint = " (use StreamingResponse for an iterator)" if hasattr(body, "__aiter__") or hasattr(body, "__next__") else ""
    raise TypeError(f"a Response body must be str or bytes, not {type(body).__name__}{hint}")


def status_phrase(status: int) -> str:
    """The reason phrase of an HTTP status ("Unknown" for codes without one)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class StreamingResponse(Response):
    """A response whose body comes piece by piece from an async iterator (or a plain
    iterable) of str or bytes, sent as it is produced (chunked transfer encoding).

    Server-Sent Events: `StreamingResponse(events(), media_type="text/event-stream")`.
    """

    __slots__ = ("content",)

    def __init__(
        self,
        content: AsyncIterable[str | bytes] | Iterable[str | bytes],
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        if not isinstance(content, AsyncIterable | Iterable) or isinstance(content, str | bytes):
            raise TypeError(f"StreamingResponse needs an iterator of str or bytes, not {type(content).__name__}")
        super().__init__(b"", status, headers, media_type)
        self.content = content

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """The body's pieces as bytes (empty pieces skipped); the source is closed at the end."""
        content = self.content
        try:
            if isinstance(content, AsyncIterable):
                async for piece in content:
                    data = as_body(piece)
                    if data:
                        yield data
            else:
                for piece in content:
                    data = as_body(piece)
                    if data:
                        yield data
        finally:
            aclose = getattr(content, "aclose", None)
            if aclose is not None:
                await aclose()
            else:
                close = getattr(content, "close", None)
                if close is not None:
                    close()


class JSONResponse(Response):
    """A JSON response (orjson)."""

    __slots__ = ()

    def __init__(self, content: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(orjson.dumps(content), status, headers, "application/json")


class HTMLResponse(Response):
    """An HTML response."""

    __slots__ = ()

    def __init__(self, content: str, status: int = 200, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(content, status, headers, "text/html; charset=utf-8")


class PlainTextResponse(Response):
    """A plain-text response."""

    __slots__ = ()

    def __init__(self, content: str, status: int = 200, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(content, status, headers, "text/plain; charset=utf-8")


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """The JSON error body hubbub answers with: {"error": message}."""
    return JSONResponse({"error": message}, status=status, headers=headers)


def http_error_response(error: HTTPError) -> Response:
    """The answer to an `HTTPError` a handler raised."""
    return error_response(error.status, error.message, error.headers)


_MEDIA_TYPES = {".ts": "application/typescript", ".mjs": "text/javascript", ".js": "text/javascript"}
"""Types the platform's mimetypes table gets wrong for the web (".ts" is not MPEG transport here)."""


class StaticFiles:
    """Serves the files below a directory (GET and HEAD), refusing paths that escape it."""

    def __init__(self, directory: str | os.PathLike[str], *, index: str = "index.html") -> None:
        self.directory = Path(directory).resolve()
        self.index = index
        if not self.directory.is_dir():
            raise ConfigurationError(f"static directory not found: {self.directory}")

    def resolve(self, relative: str) -> Path | None:
        """The file to serve for `relative`, or None if there is none (or it escapes)."""
        try:
            target = (self.directory / relative.lstrip("/")).resolve()
            if target != self.directory and self.directory not in target.parents:
                return None
            if target.is_dir():
                target = target / self.index
            return target if target.is_file() else None
        except (ValueError, OSError, RuntimeError):  # a NUL byte ("%00"), a name too long, a symlink loop
            return None

    def response(self, relative: str) -> Response:
        """A response with the file's content, or a 404 JSON error."""
        target = self.resolve(relative)
        if target is None:
            return error_response(404, "not found")
        media_type = _MEDIA_TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0]
        if media_type is None:
            media_type = "application/octet-stream"
        elif media_type.startswith("text/") or media_type in ("application/javascript", "application/json"):
            media_type += "; charset=utf-8"
        return Response(target.read_bytes(), media_type=media_type)
