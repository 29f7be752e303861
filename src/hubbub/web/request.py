"""HTTP requests as handlers see them: `Request`, its `Headers` and `QueryParams`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl

import orjson

from hubbub.errors import InvalidBody
from hubbub.web.response import JSONResponse, Response


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
