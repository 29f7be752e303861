"""An App's HTTP routes: matching a request, the app-wide middleware around the handler,
authenticating routes that ask for it, and the static folders."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from hubbub.auth.user import Authenticator, AuthError, as_user
from hubbub.errors import ConfigurationError, HTTPError
from hubbub.web.request import Request
from hubbub.web.response import JSONResponse, PlainTextResponse, Response, error_response, http_error_response
from hubbub.web.routing import HttpRoute
from hubbub.web.static import StaticFiles

HttpMiddleware = Callable[..., Awaitable[Any] | Any]


async def call(fn: Callable[..., Any], *args: Any) -> Any:
    """Call a function that may be async; its result, awaited if it is awaitable."""
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


def to_response(result: Any) -> Response:
    """Turn what an HTTP handler returned into a Response."""
    if isinstance(result, Response):
        return result
    if result is None:
        return Response(status=204)
    if isinstance(result, dict | list):
        return JSONResponse(result)
    if isinstance(result, str):
        return PlainTextResponse(result)
    if isinstance(result, bytes):
        return Response(result, media_type="application/octet-stream")
    raise TypeError(f"an HTTP handler returned {type(result).__name__}; return a Response, dict, list, str or bytes")


class HttpRoutes:
    """The HTTP routes, the middleware run around every one of them, and the static folders."""

    def __init__(self) -> None:
        self.routes: list[HttpRoute] = []
        self.static: list[tuple[str, StaticFiles]] = []
        self.before: list[HttpMiddleware] = []
        self.after: list[HttpMiddleware] = []

    def needing_authenticator(self) -> list[str]:
        """The paths of the routes with `auth=True` (they use the app's authenticator)."""
        return [route.pattern.template for route in self.routes if route.auth is True]

    def match(self, request: Request) -> HttpRoute | Response | None:
        """The route for the request (its path parameters set on it), a 405 if only other methods
        match, or None if no route's path does."""
        allowed: set[str] = set()
        for route in self.routes:
            params = route.pattern.match(request.path)
            if params is None:
                continue
            if request.method in route.methods:
                request.path_params = params
                return route
            allowed |= route.methods
        if allowed:
            return error_response(405, "method not allowed", {"allow": ", ".join(sorted(allowed))})
        return None

    def static_file(self, request: Request) -> Response | None:
        """The answer of the static folder whose prefix the path is under; None if none is."""
        for prefix, files in self.static:
            if request.path.startswith(prefix) or request.path == prefix.rstrip("/"):
                if request.method not in ("GET", "HEAD"):
                    return error_response(405, "method not allowed", {"allow": "GET, HEAD"})
                return files.response(request.path[len(prefix) :])
        return None

    async def run(self, route: HttpRoute, request: Request, authenticator: Authenticator | None) -> Response:
        """Authenticate if the route asks for it, then run the middleware and the handler."""
        try:
            if route.auth is not False:
                refused = await _authenticate(route, request, authenticator)
                if refused is not None:
                    return refused
            for middleware in [*self.before, *route.before]:
                early = await call(middleware, request)
                if early is not None:
                    return to_response(early)
            response = to_response(await call(route.handler, request))
            for middleware in [*route.after, *self.after]:
                replaced = await call(middleware, request, response)
                if replaced is not None:
                    response = to_response(replaced)
        except HTTPError as error:
            return http_error_response(error)
        return response


async def _authenticate(route: HttpRoute, request: Request, app_authenticator: Authenticator | None) -> Response | None:
    """Set `request.user`; or the 401 that refuses the request."""
    authenticator = app_authenticator if route.auth is True else route.auth
    if not callable(authenticator):
        template = route.pattern.template
        raise ConfigurationError(f"HTTP route {template} has auth=True but the app has no authenticator")
    try:
        user = as_user(await call(authenticator, request))
    except AuthError as refused:
        return error_response(401, refused.reason, {"www-authenticate": "Bearer"})
    if user is None:
        return error_response(401, "authentication required", {"www-authenticate": "Bearer"})
    request.user = user
    return None
