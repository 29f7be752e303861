"""What hubbub serves about itself: /metrics and the dashboard, on the app's port or an internal one.

These routes belong to a small App of their own (its own hub, so dashboard
viewers are not counted as the app's connections). On the main port a
`FrontDispatcher` sends their paths to it and everything else to the app; with
`internal_port` they are served only there, as Centrifugo's internal port does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hubbub.app.app import App
from hubbub.serve.dashboard import DASHBOARD_PATH, DashboardAccess, Sampler, mount_dashboard
from hubbub.serve.metrics import METRICS_PATH, metrics_response, registry_for
from hubbub.web.request import Request
from hubbub.web.response import Response

if TYPE_CHECKING:
    from hubbub.transport.session import Session


class Operations:
    """The metrics and dashboard routes of one app (None of them when both are off: see `for_app`)."""

    def __init__(self, app: App) -> None:
        opts = app.options
        # The app's limits are for its own clients: dashboard viewers are few and share one user id.
        self.app = App(
            opts.replace(
                room_presence_events=False,
                handshakes_per_ip=None,
                max_connections=None,
                max_connections_per_user=None,
                message_rate=None,
            )
        )
        self.metrics = opts.metrics
        self.dashboard = opts.dashboard_key is not None or opts.dashboard_auth
        if self.metrics:
            registry = registry_for(app.hub)

            @self.app.get(METRICS_PATH)
            async def metrics(request: Request) -> Response:
                return metrics_response(registry)

        if self.dashboard:
            access = DashboardAccess(opts.dashboard_key, app.authenticator if opts.dashboard_auth else None)
            mount_dashboard(self.app, access, Sampler(app.hub))

    @classmethod
    def for_app(cls, app: App) -> Operations | None:
        """The operations routes `app`'s options ask for, or None."""
        opts = app.options
        if not opts.metrics and opts.dashboard_key is None and not opts.dashboard_auth:
            return None
        return cls(app)

    def claims(self, path: str) -> bool:
        """Whether `path` is one of these routes."""
        if self.metrics and path == METRICS_PATH:
            return True
        return self.dashboard and (path == DASHBOARD_PATH or path.startswith(DASHBOARD_PATH + "/"))


class FrontDispatcher:
    """The app's port when it also serves the operations routes."""

    def __init__(self, app: App, ops: Operations) -> None:
        self.app = app
        self.ops = ops

    async def handle_http(self, request: Request) -> Response:
        """The operations routes first, then the app."""
        if self.ops.claims(request.path):
            return await self.ops.app.handle_http(request)
        return await self.app.handle_http(request)

    async def handle_upgrade(self, request: Request) -> Response | Session:
        """The dashboard's live route, or the app's routes."""
        if self.ops.claims(request.path):
            return await self.ops.app.handle_upgrade(request)
        return await self.app.handle_upgrade(request)
