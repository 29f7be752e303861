"""HTTP responses: `Response`, its JSON, HTML, text and streaming kinds, and hubbub's error answers."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Mapping
from http import HTTPStatus
from typing import Any

import orjson

from hubbub.errors import HTTPError


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
