"""A WebSocket upgrade once its route is known: the subprotocol, authentication, the connect
before-middleware and admission (cluster-wide limits) make the Connection, or refuse it."""

from __future__ import annotations

import asyncio
from typing import Any

from hubbub.app.channel import Channel
from hubbub.app.endpoint import WebSocketEndpoint
from hubbub.app.http_routes import call
from hubbub.app.pipeline import Pipeline
from hubbub.auth.jwt_auth import JWTAuth
from hubbub.auth.user import (
    CLOSE_MISSING_TOKEN,
    CLOSE_TOO_MANY_CONNECTIONS,
    SUBPROTOCOL_TOKEN_PREFIX,
    Authenticator,
    AuthError,
    User,
    as_user,
)
from hubbub.broker.base import Registration
from hubbub.errors import Abort
from hubbub.options import AuthFailure, ServerOptions
from hubbub.runtime.connection import Connection
from hubbub.runtime.events import Event
from hubbub.runtime.hub import Hub
from hubbub.transport import handshake
from hubbub.transport.framing import CLOSE_TRY_AGAIN_LATER
from hubbub.transport.session import ClosingSession
from hubbub.web.request import Request
from hubbub.web.response import JSONResponse, Response, error_response


async def accept_upgrade(
    request: Request,
    endpoint: WebSocketEndpoint,
    pipeline: Pipeline,
    authenticator: Authenticator | None,
    hub: Hub,
    options: ServerOptions,
    tasks: set[asyncio.Task[Any]],
) -> Response | Connection | ClosingSession:
    """The started Connection of an upgrade to `endpoint`, or the answer that refuses it."""
    offered = [
        name for name in handshake.offered_subprotocols(request) if not name.startswith(SUBPROTOCOL_TOKEN_PREFIX)
    ]
    subprotocol = handshake.choose_subprotocol(offered, endpoint.subprotocols)
    if subprotocol is None and isinstance(endpoint, Channel) and any(n.startswith("hubbub.") for n in offered):
        return error_response(400, f"unsupported subprotocol; this route speaks {', '.join(endpoint.subprotocols)}")
    user: User | None = None
    if authenticator is not None:
        identified = await identify(authenticator, request, subprotocol, options.auth_failure)
        if not isinstance(identified, User):
            return identified
        user = identified
    verifier = authenticator if isinstance(authenticator, JWTAuth) else None
    conn = Connection(request, hub, pipeline, subprotocol, tasks, user, verifier)
    event = Event("connect", conn)
    if not await pipeline.run_before(event):
        abort = event.aborted or Abort()
        return error_response(abort.status, abort.reason)
    # Counting the connection in is one atomic step in the broker, so the global and
    # per-user limits hold for the whole cluster even when handshakes race.
    registration = await hub.admit(
        conn,
        max_connections=options.max_connections,
        max_per_user=options.max_connections_per_user if user is not None else None,
    )
    if registration is Registration.OVER_CAPACITY:
        if options.over_capacity == "reject":
            return error_response(503, "server at capacity", {"retry-after": "5"})
        refused = ClosingSession(CLOSE_TRY_AGAIN_LATER, "server at capacity")
        refused.subprotocol = subprotocol
        return refused
    if registration is Registration.TOO_MANY_FOR_USER:
        reason = "too many connections for this user"
        return refuse(CLOSE_TOO_MANY_CONNECTIONS, reason, subprotocol, options.auth_failure)
    conn.start(event)
    return conn


async def identify(
    authenticator: Authenticator, request: Request, subprotocol: str | None, auth_failure: AuthFailure
) -> User | Response | ClosingSession:
    """The handshake's user; or its refusal (see `refuse`)."""
    try:
        user = as_user(await call(authenticator, request))
    except AuthError as refused:
        return refuse(refused.code, refused.reason, subprotocol, auth_failure)
    if user is None:
        return refuse(CLOSE_MISSING_TOKEN, "authentication required", subprotocol, auth_failure)
    return user


def refuse(code: int, reason: str, subprotocol: str | None, auth_failure: AuthFailure) -> Response | ClosingSession:
    """A refused handshake: accepted then closed with `code` ("close"), or an HTTP 401 (429 for too
    many connections of the user) with the code and reason in JSON ("http")."""
    if auth_failure == "close":
        session = ClosingSession(code, reason)
        # Select the subprotocol the route would have: a browser fails a 101 that drops the
        # one it offered (1006), and then could not read the close code.
        session.subprotocol = subprotocol
        return session
    status = 429 if code == CLOSE_TOO_MANY_CONNECTIONS else 401
    return JSONResponse({"error": reason, "code": code}, status=status)
