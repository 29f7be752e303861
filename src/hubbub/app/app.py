"""The App: WebSocket and HTTP routes on one port, middleware, lifecycle hooks."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from hubbub.app.channel import Channel
from hubbub.app.endpoint import AnyHandler, Handler, WebSocketEndpoint, as_async
from hubbub.app.fallback import FallbackSessions, session_of, wants_event_stream
from hubbub.app.history_api import history_endpoint
from hubbub.app.http_routes import HttpMiddleware, HttpRoutes
from hubbub.app.lifecycle import Lifecycle
from hubbub.app.pipeline import Pipeline
from hubbub.app.publish_api import publish_endpoint
from hubbub.app.upgrade import accept_upgrade
from hubbub.auth.user import CLOSE_TOO_MANY_CONNECTIONS, Authenticator
from hubbub.broker.base import Broker
from hubbub.broker.redis_target import is_redis_url
from hubbub.errors import ConfigurationError
from hubbub.history.base import HistoryPolicy
from hubbub.history.store import Store, open_store
from hubbub.inbox import Inbox, InboxStore
from hubbub.inbox.wire import BAD_DEVICE, DEVICE_PARAM, valid_device
from hubbub.options import ServerOptions
from hubbub.runtime.connection import Connection
from hubbub.runtime.hub import Hub
from hubbub.runtime.presence import PresenceHook
from hubbub.runtime.ratelimit import HandshakeLimiter
from hubbub.transport import handshake
from hubbub.transport.framing import CLOSE_TRY_AGAIN_LATER
from hubbub.transport.message import BackpressurePolicy
from hubbub.transport.session import ClosingSession
from hubbub.web.request import Request
from hubbub.web.response import JSONResponse, Response, error_response
from hubbub.web.routing import HttpRoute, PathPattern
from hubbub.web.static import StaticFiles

if TYPE_CHECKING:
    from hubbub.app.asgi import AsgiBridge


F = TypeVar("F", bound=Callable[..., Any])


def _inbox_url(store: str | Store | None) -> str | None:
    """The inbox's store URL for the app's store: the same file or server (None: the broker decides)."""
    url = store.url if isinstance(store, Store) else store
    if url is None:
        return None
    if url in ("memory", "memory://"):
        return "memory://"
    if url.startswith("sqlite:"):
        return url.split("?", 1)[0]
    if is_redis_url(url):
        return url
    return None


class App:
    """A hubbub application.

    >>> app = App(max_message_size=64 * 1024)
    >>> @app.websocket("/echo")
    ... async def echo(event):
    ...     await event.send(event.data)
    """

    def __init__(
        self,
        options: ServerOptions | None = None,
        *,
        broker: Broker | None = None,
        store: str | Store | None = None,
        inbox: Inbox | InboxStore | str | None = None,
        **option_changes: Any,
    ) -> None:
        base = options or ServerOptions()
        self._options = base.replace(**option_changes) if option_changes else base
        self._serving = False
        self.hub = Hub(
            broker,
            presence_grace=self._options.presence_grace,
            room_presence_events=self._options.room_presence_events,
            store=open_store(store),
            inbox=inbox if isinstance(inbox, Inbox) else Inbox(inbox if inbox is not None else _inbox_url(store)),
        )
        self._inbox_given = inbox is not None
        self._authenticator: Authenticator | None = None
        self._handshakes = self._handshake_limiter()
        self._ws_routes: list[tuple[PathPattern, WebSocketEndpoint]] = []
        self._http = HttpRoutes()
        self._before_ws: list[Handler] = []
        self._after_ws: list[Handler] = []
        self._lifecycle = Lifecycle()
        self._pipelines: weakref.WeakKeyDictionary[WebSocketEndpoint, Pipeline] = weakref.WeakKeyDictionary()
        self.tasks: set[asyncio.Task[Any]] = set()
        """Handler tasks still running (waited for on shutdown)."""
        self._asgi: AsgiBridge | None = None
        self.fallback = FallbackSessions()
        """The open SSE + POST sessions of channel routes (the fallback transport)."""

    # ---- ASGI ---------------------------------------------------------------------------

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        """The app as an ASGI 3 application: `uvicorn module:app`, or `fastapi_app.mount("/rt", app)`.
        WebSocket and HTTP routes, rooms, users, presence and the broker work as on the native server."""
        await self.asgi(scope, receive, send)

    @property
    def asgi(self) -> AsgiBridge:
        """What serves this app over ASGI (made on first use)."""
        bridge = self._asgi
        if bridge is None:
            from hubbub.app.asgi import AsgiBridge

            bridge = self._asgi = AsgiBridge(self)
        return bridge

    def lifespan(self, parent: object = None) -> AbstractAsyncContextManager[None]:
        """Start this app on enter and stop it gracefully on exit, for a host app's lifespan:
        `FastAPI(lifespan=rt.lifespan)` with `rt` mounted in it (without it, the app starts on
        its first request and its shutdown hooks never run)."""
        return self.asgi.lifespan(parent)

    @property
    def options(self) -> ServerOptions:
        """The server options. Assigning new ones (e.g. `app.options = app.options.replace(...)`)
        rebuilds what is made from them; it is refused (ConfigurationError) while serving."""
        return self._options

    @options.setter
    def options(self, options: ServerOptions) -> None:
        if self._serving:
            raise ConfigurationError("options cannot change while the app is serving; set them before it starts")
        self._options = options
        self._handshakes = self._handshake_limiter()
        self.hub.room_presence_events = options.room_presence_events
        self._pipelines.clear()

    def _handshake_limiter(self) -> HandshakeLimiter | None:
        opts = self._options
        if opts.handshakes_per_ip is None:
            return None
        return HandshakeLimiter(opts.handshakes_per_ip, opts.handshake_window)

    # ---- WebSocket routes ---------------------------------------------------------------

    def websocket(
        self,
        path: str,
        *,
        on_connect: AnyHandler | None = None,
        on_message: AnyHandler | None = None,
        on_disconnect: AnyHandler | None = None,
        on_drain: AnyHandler | None = None,
        subprotocols: Iterable[str] = (),
        before: Iterable[AnyHandler] = (),
        after: Iterable[AnyHandler] = (),
        auth: Authenticator | Literal[False] | None = None,
        on_ping: AnyHandler | None = None,
        on_pong: AnyHandler | None = None,
        on_error: AnyHandler | None = None,
        max_backpressure: int | None = None,
        backpressure_policy: BackpressurePolicy | None = None,
    ) -> WebSocketEndpoint:
        """Serve WebSocket connections on `path` (e.g. "/chat/{room}").

        Returns the endpoint; use it as a decorator on a message handler or a class
        of handlers, or use its `on_connect` / `on_message` / ... decorators.
        `max_backpressure` and `backpressure_policy` override the server's for this route.
        """
        endpoint = WebSocketEndpoint(
            on_connect,
            on_message,
            on_disconnect,
            on_drain,
            subprotocols=subprotocols,
            before=before,
            after=after,
            auth=auth,
            on_ping=on_ping,
            on_pong=on_pong,
            on_error=on_error,
            max_backpressure=max_backpressure,
            backpressure_policy=backpressure_policy,
        )
        self.mount_websocket(path, endpoint)
        return endpoint

    def channel(
        self,
        path: str,
        *,
        codecs: Iterable[str] = ("json",),
        timeout: float | None = 30.0,
        before: Iterable[AnyHandler] = (),
        after: Iterable[AnyHandler] = (),
        auth: Authenticator | Literal[False] | None = None,
        max_backpressure: int | None = None,
        backpressure_policy: BackpressurePolicy | None = None,
    ) -> Channel:
        """Serve an envelope route on `path`: typed events, request/response, room requests.

        `codecs` are offered as subprotocols (json: hubbub.v1.json, msgpack:
        hubbub.v1.msgpack; text and bytes carry bare payloads). `timeout` is the
        default handler timeout in seconds. `auth` overrides the app's authenticator
        (False: no authentication on this route). `max_backpressure` and
        `backpressure_policy` override the server's for this route."""
        channel = Channel(
            codecs=codecs,
            timeout=timeout,
            before=before,
            after=after,
            max_backpressure=max_backpressure,
            backpressure_policy=backpressure_policy,
        )
        channel.auth = auth
        self.mount_websocket(path, channel)
        return channel

    def mount_websocket(self, path: str, endpoint: WebSocketEndpoint) -> None:
        """Serve an existing endpoint on `path`."""
        self._ws_routes.append((PathPattern(path), endpoint))
        self._pipelines.clear()

    def before_websocket(self, fn: F) -> F:
        """Decorator: middleware run before every WebSocket event on every route."""
        self._before_ws.append(as_async(fn))
        self._pipelines.clear()
        return fn

    def after_websocket(self, fn: F) -> F:
        """Decorator: middleware run after every WebSocket handler on every route."""
        self._after_ws.append(as_async(fn))
        self._pipelines.clear()
        return fn

    # ---- users ------------------------------------------------------------------------------

    def authenticate(self, fn: Authenticator) -> Authenticator:
        """Set the authenticator of every WebSocket route (a route may override it with
        `auth=`). `fn(request)` returns a User, a user id, or None (refused with 4001),
        or raises `AuthError`. A `JWTAuth` instance works as it is. Usable as a decorator."""
        self._authenticator = fn
        return fn

    @property
    def authenticator(self) -> Authenticator | None:
        """The app-wide authenticator set with `authenticate`, if any."""
        return self._authenticator

    def on_online(self, fn: PresenceHook) -> PresenceHook:
        """Decorator: `fn(user_id)` runs when a user's first connection opens."""
        self.hub.presence.online.append(fn)
        return fn

    def on_offline(self, fn: PresenceHook) -> PresenceHook:
        """Decorator: `fn(user_id)` runs after a user's last connection closed (after the grace period)."""
        self.hub.presence.offline.append(fn)
        return fn

    def publish_api(self, api_key: str, path: str = "/api/publish") -> None:
        """Serve `POST path` for backends to publish to rooms, users, clients or everyone
        (see `hubbub.app.publish_api`); requests need `Authorization: Bearer <api_key>`."""
        self.post(path)(publish_endpoint(self.hub, api_key))

    def use_broker(self, broker: Broker) -> None:
        """Run on `broker` (e.g. a RedisBroker) instead of the embedded memory engine; call before serving."""
        self.hub.broker = broker

    def use_store(self, store: str | Store) -> None:
        """Keep history (and other lasting state) in `store`: a URL (memory, sqlite:///rel.db,
        sqlite:////abs/path.db, redis://...) or a Store; call before serving. The default is
        memory, or Redis with the Redis broker."""
        self.hub.store = open_store(store)
        if not self._inbox_given:
            self.hub.inbox = Inbox(_inbox_url(store))

    # ---- history ------------------------------------------------------------------------------

    def history(self, rooms: str, *, size: int, ttl: float) -> None:
        """Keep the last `size` publications of the rooms whose names match `rooms` (a name, or a
        pattern such as "chat:*"), each for `ttl` seconds. Their envelope publications get offsets,
        and clients can recover what they missed (docs/protocol.md, "History and recovery").
        The first pattern set that matches a room applies; set a pattern again to change it."""
        self.hub.history_rules.set(rooms, HistoryPolicy(size, ttl))

    def history_api(self, api_key: str, path: str = "/api/history") -> None:
        """Serve `GET path/{room}` for backends to read room history (see `hubbub.app.history_api`);
        requests need `Authorization: Bearer <api_key>`."""
        self.get(path.rstrip("/") + "/{room:path}")(history_endpoint(self.hub, api_key))

    # ---- HTTP routes ----------------------------------------------------------------------

    def route(
        self,
        path: str,
        methods: Iterable[str] = ("GET",),
        *,
        before: Iterable[HttpMiddleware] = (),
        after: Iterable[HttpMiddleware] = (),
        auth: Authenticator | bool = False,
    ) -> Callable[[F], F]:
        """Decorator: an HTTP handler `async def handler(request) -> Response | dict | str`.

        `auth=True` authenticates each request with the app's authenticator (`auth=fn`: with
        `fn`) before any middleware: refused requests get `401 {"error": reason}`, accepted
        ones carry the user in `request.user`. HTTP routes are not authenticated by default."""

        def register(handler: F) -> F:
            route = HttpRoute.create(path, methods, handler, before=list(before), after=list(after), auth=auth)
            self._http.routes.append(route)
            return handler

        return register

    def get(self, path: str, **kwargs: Any) -> Callable[[F], F]:
        """Decorator: a GET (and HEAD) handler."""
        return self.route(path, ("GET",), **kwargs)

    def post(self, path: str, **kwargs: Any) -> Callable[[F], F]:
        """Decorator: a POST handler."""
        return self.route(path, ("POST",), **kwargs)

    def put(self, path: str, **kwargs: Any) -> Callable[[F], F]:
        """Decorator: a PUT handler."""
        return self.route(path, ("PUT",), **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Callable[[F], F]:
        """Decorator: a PATCH handler."""
        return self.route(path, ("PATCH",), **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Callable[[F], F]:
        """Decorator: a DELETE handler."""
        return self.route(path, ("DELETE",), **kwargs)

    def static(self, prefix: str, directory: str | Path) -> None:
        """Serve the files of `directory` under the URL prefix (GET and HEAD)."""
        self._http.static.append((prefix.rstrip("/") + "/", StaticFiles(directory)))

    def before_http(self, fn: F) -> F:
        """Decorator: `fn(request)` runs before every HTTP handler; returning a Response answers instead."""
        self._http.before.append(fn)
        return fn

    def after_http(self, fn: F) -> F:
        """Decorator: `fn(request, response)` runs after every HTTP handler; may return a new Response."""
        self._http.after.append(fn)
        return fn

    # ---- lifecycle --------------------------------------------------------------------------

    def on_startup(self, fn: F) -> F:
        """Decorator: run when the server starts, before it accepts connections."""
        self._lifecycle.startup.append(fn)
        return fn

    def on_shutdown(self, fn: F) -> F:
        """Decorator: run when the server stops, after connections are closed."""
        self._lifecycle.shutdown.append(fn)
        return fn

    def background(self, fn: F) -> F:
        """Decorator: an `async def` task started with the server and cancelled when it stops."""
        self._lifecycle.background.append(fn)
        return fn

    async def startup(self) -> list[asyncio.Task[Any]]:
        """Run startup hooks and start background tasks (done by the server)."""
        if self._authenticator is None:
            needing = self._http.needing_authenticator()
            if needing:
                raise ConfigurationError(f"HTTP route {needing[0]} has auth=True but the app has no authenticator")
        self._serving = True
        return await self._lifecycle.start()

    async def shutdown(self) -> None:
        """Run shutdown hooks (done by the server)."""
        self.fallback.close_all()
        await self._lifecycle.stop()
        self._serving = False

    # ---- dispatch (the server calls these) -------------------------------------------------

    def _pipeline(self, endpoint: WebSocketEndpoint) -> Pipeline:
        pipeline = self._pipelines.get(endpoint)
        if pipeline is None or pipeline.revision != endpoint.revision:
            pipeline = self._pipelines[endpoint] = Pipeline(endpoint, self._before_ws, self._after_ws, self.options)
        return pipeline

    def _match_websocket(self, path: str) -> tuple[WebSocketEndpoint, dict[str, str]] | None:
        for pattern, endpoint in self._ws_routes:
            params = pattern.match(path)
            if params is not None:
                return endpoint, params
        return None

    def _match_http(self, request: Request) -> HttpRoute | Response:
        matched = self._http.match(request)
        if matched is not None:
            return matched
        if self._match_websocket(request.path) is not None:
            return error_response(400, "websocket upgrade required")
        if request.path == "/healthz" and request.method in ("GET", "HEAD"):
            return JSONResponse({"status": "ok"})
        if request.path == "/readyz" and request.method in ("GET", "HEAD"):
            if self.hub.ready:
                return JSONResponse({"status": "ready"})
            return JSONResponse({"status": "not ready", "reason": "broker unreachable"}, status=503)
        static = self._http.static_file(request)
        return static if static is not None else error_response(404, "not found")

    async def handle_http(self, request: Request) -> Response:
        """Answer a plain HTTP request."""
        request.app = self
        matched = self._match_http(request)
        if isinstance(matched, Response):
            if matched.status == 400 and not request.is_websocket:
                return await self._fallback(request, matched)
            return matched
        return await self._run_http(matched, request)

    async def _fallback(self, request: Request, refused: Response) -> Response:
        """A channel route's SSE stream (GET) or POSTed envelopes; else the refusal as it was."""
        found = self._match_websocket(request.path)
        if found is None or not isinstance(found[0], Channel):
            return refused
        endpoint = found[0]
        posting = request.method == "POST" and session_of(request) is not None
        if not posting and not wants_event_stream(request):
            return refused
        if not handshake.origin_allowed(request, self.options.allowed_origins):
            return error_response(403, "origin not allowed")
        if posting:
            authenticator = self._authenticator if endpoint.auth is None else endpoint.auth or None
            return await self.fallback.post(request, self.options, authenticator)
        decided = await self.handle_upgrade(request)
        if isinstance(decided, ClosingSession):
            status = {CLOSE_TRY_AGAIN_LATER: 503, CLOSE_TOO_MANY_CONNECTIONS: 429}.get(decided.code, 401)
            return JSONResponse({"error": decided.reason, "code": decided.code}, status=status)
        if isinstance(decided, Response):
            return decided
        return self.fallback.start(decided, self.options, self.hub.stats)

    async def _run_http(self, route: HttpRoute, request: Request) -> Response:
        return await self._http.run(route, request, self._authenticator)

    async def handle_upgrade(self, request: Request) -> Response | Connection | ClosingSession:
        """Decide a WebSocket upgrade: rate limit, route, authenticate, run connect
        before-middleware; or refuse."""
        request.app = self
        limiter = self._handshakes
        if limiter is not None:
            now = asyncio.get_running_loop().time()
            if not limiter.allow(request.client[0], now):
                retry = str(limiter.retry_after(request.client[0], now))
                return error_response(429, "too many connection attempts", {"retry-after": retry})
        matched = self._match_websocket(request.path)
        if matched is None:
            http = self._match_http(request)
            if isinstance(http, Response):
                return http
            response = await self._run_http(http, request)
            endpoint = request._upgrade_to
            if not isinstance(endpoint, WebSocketEndpoint) or response.status != 101:
                return response
        else:
            endpoint, request.path_params = matched
        device = request.query.get(DEVICE_PARAM) if isinstance(endpoint, Channel) else None
        if device is not None and not valid_device(device):
            return error_response(400, BAD_DEVICE)
        authenticator = self._authenticator if endpoint.auth is None else endpoint.auth or None
        pipeline = self._pipeline(endpoint)
        return await accept_upgrade(request, endpoint, pipeline, authenticator, self.hub, self.options, self.tasks)
