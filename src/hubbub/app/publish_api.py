"""`POST /api/publish`: backends in any language send to clients over HTTP.

Body (JSON): exactly one target — {"room": R} | {"user": U} | {"users": [U...]} |
{"client": C} | {"all": true} — and exactly one payload — {"text": "..."} |
{"binary": "<base64>"} | {"envelope": {"type": T, "data": D}}; optionally, with
a room or all, {"exclude": client id}; with a user or users and an envelope,
{"durable": true} keeps the message in each user's inbox until every device has it.
Authorised by `Authorization: Bearer <key>` or `X-API-Key: <key>`; 401 without it, 400 for a malformed body.
Answer: {"ok": true, "delivered": N}. N is the number of connections of the user in
the whole cluster for a "user" target, 1 or 0 for a "client" target (connected
anywhere or not), and this node's deliveries for "room", "users" and "all" (other
nodes deliver too, but do not report back).

An envelope to a room that keeps history (`App.history`) is kept first: the answer adds
"offset", "epoch" and "duplicate", and the body may carry "idempotency_key" (a string
of 1 to 128 characters): a retried request with the same key publishes nothing again
and answers the first one's offset with "duplicate": true.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from hubbub.errors import ConfigurationError
from hubbub.protocol.envelope import Envelope
from hubbub.runtime.hub import Hub
from hubbub.web.request import Request
from hubbub.web.response import JSONResponse, Response, error_response

_TARGETS = ("room", "user", "users", "client", "all")
_PAYLOADS = ("text", "binary", "envelope")


def _key_of(request: Request) -> str:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return request.headers.get("x-api-key", "")


def _payload(body: dict[str, Any]) -> str | bytes | Envelope:
    given = [name for name in _PAYLOADS if name in body]
    if len(given) != 1:
        raise ValueError("give exactly one of text, binary, envelope")
    if "text" in body:
        if not isinstance(body["text"], str):
            raise ValueError("'text' must be a string")
        return str(body["text"])
    if "binary" in body:
        try:
            return base64.b64decode(body["binary"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise ValueError("'binary' must be base64") from None
    envelope = body["envelope"]
    if not isinstance(envelope, dict) or not isinstance(envelope.get("type"), str):
        raise ValueError("'envelope' must be an object with a string 'type'")
    return Envelope(envelope["type"], envelope.get("data"))


async def _publish(hub: Hub, body: dict[str, Any]) -> int | dict[str, Any]:
    targets = [name for name in _TARGETS if name in body]
    if len(targets) != 1:
        raise ValueError("give exactly one of room, user, users, client, all")
    data = _payload(body)
    exclude = body.get("exclude")
    if exclude is not None and not isinstance(exclude, str):
        raise ValueError("'exclude' must be a client id")
    target = targets[0]
    if exclude is not None and target not in ("room", "all"):
        raise ValueError("'exclude' works with room and all only")
    durable = body.get("durable", False)
    if not isinstance(durable, bool):
        raise ValueError("'durable' must be true or false")
    if durable and (target not in ("user", "users") or not isinstance(data, Envelope)):
        raise ValueError("'durable' works with user or users and an envelope only")
    value = body[target]
    if target == "users":
        if not isinstance(value, list) or not all(isinstance(user, str) for user in value):
            raise ValueError("'users' must be a list of user ids")
        return await hub.send_to_users(value, data, durable=durable)
    if target == "all":
        if value is not True:
            raise ValueError("'all' must be true")
        return await hub.broadcast(data, exclude=exclude)
    if not isinstance(value, str) or not value:
        raise ValueError(f"'{target}' must be a non-empty string")
    key = body.get("idempotency_key")
    if key is not None and (target != "room" or not isinstance(data, Envelope)):
        raise ValueError("'idempotency_key' works with an envelope to a room only")
    if key is not None and (not isinstance(key, str) or not 0 < len(key) <= 128):
        raise ValueError("'idempotency_key' must be a string of 1 to 128 characters")
    if target == "room" and isinstance(data, Envelope):
        published = await hub.publish(value, data, exclude=exclude, idempotency_key=key)
        if not published.epoch:
            return published.delivered
        return {
            "delivered": published.delivered,
            "offset": published.offset,
            "epoch": published.epoch,
            "duplicate": published.duplicate,
        }
    if target == "room":
        return await hub.room_broadcast(value, data, exclude=exclude)
    if target == "user":
        return await hub.send_to_user(value, data, durable=durable)
    return 1 if await hub.send(value, data) else 0


def publish_endpoint(hub: Hub, api_key: str) -> Callable[[Request], Awaitable[Response]]:
    """The HTTP handler of the publish endpoint, sending through `hub`, protected by `api_key`."""
    if not api_key:
        raise ConfigurationError("the publish API needs a non-empty api_key")

    async def publish(request: Request) -> Response:
        if not hmac.compare_digest(_key_of(request).encode(), api_key.encode()):
            return error_response(401, "missing or wrong API key", {"www-authenticate": "Bearer"})
        try:
            body = request.json()
        except ValueError:
            return error_response(400, "body is not JSON")
        if not isinstance(body, dict):
            return error_response(400, "body must be a JSON object")
        try:
            answer = await _publish(hub, body)
        except ValueError as exc:
            return error_response(400, str(exc))
        if isinstance(answer, dict):
            return JSONResponse({"ok": True, **answer})
        return JSONResponse({"ok": True, "delivered": answer})

    return publish
