"""A Client's answers to the server's requests (`Client.handle`)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

import orjson

from hubbub.errors import ClientError

logger = logging.getLogger("hubbub.client")

Answer = Callable[[Any], Any]


async def answer(fn: Answer | None, kind: str, request_id: Any, data: Any) -> str:
    """The reply to the server's request (JSON text): `fn(data)`'s result, or the error: "unknown_type"
    without `fn`, a raised `ClientError`'s code, "handler_error" for anything else or a result that is
    not JSON."""
    reply: dict[str, Any]
    if fn is None:
        reply = {"id": request_id, "error": {"code": "unknown_type", "message": f"no handler for {kind}"}}
    else:
        try:
            result = fn(data)
            if inspect.isawaitable(result):
                result = await result
            reply = {"id": request_id, "data": result}
        except ClientError as exc:
            reply = {"id": request_id, "error": {"code": exc.code, "message": exc.message}}
        except Exception as exc:
            logger.exception("answer to the server's %r failed", kind)
            reply = {"id": request_id, "error": {"code": "handler_error", "message": str(exc) or kind}}
    try:
        return orjson.dumps(reply).decode()
    except TypeError as exc:
        return orjson.dumps(
            {"id": request_id, "error": {"code": "handler_error", "message": f"reply is not JSON: {exc}"}}
        ).decode()
