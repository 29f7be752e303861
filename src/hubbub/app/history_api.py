"""`GET /api/history/{room}`: backends read a room's history over HTTP.

Query: `last=N` (the latest N), or `since=N` (the publications after offset N) with
optional `epoch=E` (the stream the offset belongs to) and `limit=L` (a page, at most
1000; default 100), or nothing (the room's position only). The room name is the rest
of the path, percent-decoded. Authorised by `Authorization: Bearer <key>` or
`X-API-Key: <key>`; 401 without it, 400 for bad parameters.

Answer: {"room", "offset", "epoch", "complete", "publications": [{"type", "data",
"room", "offset"}...], "next"}: `next` is the `since` of the following page, or null when
this page reached the room's latest offset. `complete: false` means the history no
longer covers what was asked (or the epoch is not the room's).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from urllib.parse import unquote

from hubbub.app.publish_api import _key_of
from hubbub.errors import ConfigurationError
from hubbub.runtime.hub import Hub
from hubbub.web.request import Request
from hubbub.web.response import JSONResponse, Response, error_response

PAGE = 100
MAX_PAGE = 1000


def _count(request: Request, name: str, limit: int | None = None) -> int | None:
    value = request.query.get(name)
    if value is None:
        return None
    if not value.isdigit() or len(value) > 18:
        raise ValueError(f"'{name}' must be a non-negative integer")
    number = int(value)
    if limit is not None and number > limit:
        raise ValueError(f"'{name}' must be at most {limit}")
    return number


def history_endpoint(hub: Hub, api_key: str) -> Callable[[Request], Awaitable[Response]]:
    """The HTTP handler of the history endpoint (its route ends in `{room:path}`), reading `hub`'s
    history, protected by `api_key`."""
    if not api_key:
        raise ConfigurationError("the history API needs a non-empty api_key")

    async def history(request: Request) -> Response:
        if not hmac.compare_digest(_key_of(request).encode(), api_key.encode()):
            return error_response(401, "missing or wrong API key", {"www-authenticate": "Bearer"})
        room = unquote(request.path_params["room"])
        try:
            since = _count(request, "since")
            last = _count(request, "last", MAX_PAGE)
            limit = _count(request, "limit", MAX_PAGE)
            if since is not None and last is not None:
                raise ValueError("give since or last, not both")
        except ValueError as exc:
            return error_response(400, str(exc))
        if since is not None and limit is None:
            limit = PAGE
        page = await hub.room_history(room, since=since, epoch=request.query.get("epoch"), limit=limit, last=last)
        publications = page.publications()
        more = since is not None and page.complete and bool(publications) and publications[-1]["offset"] < page.offset
        return JSONResponse(
            {
                "room": room,
                "offset": page.offset,
                "epoch": page.epoch,
                "complete": page.complete,
                "publications": publications,
                "next": publications[-1]["offset"] if more else None,
            }
        )

    return history
