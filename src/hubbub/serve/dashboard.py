"""The live dashboard at /_hubbub: who may see it, what it shows, and how it stays live.

Once a second the `Sampler` measures the app (connections, rooms and users
online cluster-wide; messages in, out and dropped per second on this process)
and publishes the point to the dashboard's own channel route, `/_hubbub/live`,
where every open dashboard has joined the room `samples`. A dashboard that
connects first gets the recent points (`history`), then one `sample` a second.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import logging
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubbub.auth.user import Authenticator, AuthError, User, as_user
from hubbub.protocol.envelope import Envelope
from hubbub.web.request import Request
from hubbub.web.response import Response, error_response

if TYPE_CHECKING:
    from hubbub.app.app import App
    from hubbub.runtime.events import Event
    from hubbub.runtime.hub import Hub

logger = logging.getLogger("hubbub.dashboard")

DASHBOARD_PATH = "/_hubbub"
LIVE_PATH = "/_hubbub/live"
STATIC_PREFIX = "/_hubbub/static"
ROOM = "samples"
STATIC = Path(__file__).resolve().parents[1] / "static"
PAGE = STATIC / "dashboard" / "index.html"


class DashboardAccess:
    """Who may open the dashboard: a request with the key (`?key=` or `Authorization: Bearer`),
    or one the app's authenticator accepts."""

    def __init__(self, key: str | None, authenticator: Authenticator | None) -> None:
        self.key = key
        self.authenticator = authenticator

    async def allows(self, request: Request) -> bool:
        """Whether `request` may see the dashboard."""
        if self.key is not None:
            offered = request.query.get("key") or _bearer(request.headers.get("authorization"))
            if offered and hmac.compare_digest(offered.encode(), self.key.encode()):
                return True
        if self.authenticator is not None:
            try:
                result = self.authenticator(request)
                if inspect.isawaitable(result):
                    result = await result
                return as_user(result) is not None
            except AuthError:
                return False
        return False

    async def authenticate(self, request: Request) -> User | None:
        """The dashboard route's authenticator: a viewer, or None (refused with 4001)."""
        return User("dashboard") if await self.allows(request) else None


def _bearer(header: str | None) -> str | None:
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


class Sampler:
    """Measures the app once per `interval` and keeps the last `keep` points."""

    def __init__(self, hub: Hub, interval: float = 1.0, keep: int = 300) -> None:
        self.hub = hub
        self.interval = interval
        self.history: deque[dict[str, Any]] = deque(maxlen=keep)
        self._last: tuple[float, int, int, int, int] | None = None

    async def sample(self) -> dict[str, Any]:
        """One point: totals now, rates since the previous point."""
        hub = self.hub
        stats = hub.stats
        now = time.monotonic()
        counters = (stats.messages_received, stats.messages_sent, stats.dropped_messages, stats.backpressure_closes)
        last = self._last
        self._last = (now, *counters)
        elapsed = now - last[0] if last is not None else 0.0

        def rate(index: int) -> float:
            if last is None or elapsed <= 0:
                return 0.0
            return round((counters[index] - last[index + 1]) / elapsed, 2)

        point = {
            "t": int(time.time() * 1000),
            "connections": await hub.connection_count(),
            "rooms": len(await hub.rooms()),
            "users": len(await hub.online_users()),
            "received": rate(0),
            "sent": rate(1),
            "dropped": rate(2),
            "closes": rate(3),
        }
        self.history.append(point)
        return point

    async def run(self, dashboard_hub: Hub) -> None:
        """Sample forever, publishing each point to the dashboards watching `dashboard_hub`."""
        while True:
            try:
                point = await self.sample()
                await dashboard_hub.room_broadcast(ROOM, Envelope("sample", point))
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("dashboard sample failed")
            await asyncio.sleep(self.interval)


def mount_dashboard(ops: App, access: DashboardAccess, sampler: Sampler) -> None:
    """Serve the dashboard page, its files and its live channel on `ops`, and sample while it runs."""

    @ops.get(DASHBOARD_PATH)
    async def page(request: Request) -> Response:
        if not await access.allows(request):
            return error_response(401, "the dashboard needs its key (?key=...) or the app's credentials")
        return Response(PAGE.read_bytes(), media_type="text/html; charset=utf-8", headers={"cache-control": "no-store"})

    ops.static(STATIC_PREFIX, STATIC)
    live = ops.channel(LIVE_PATH, auth=access.authenticate)

    @live.on_connect
    async def watch(event: Event) -> None:
        await event.hub.join(ROOM, event.client_id)
        await event.emit("history", {"interval": sampler.interval, "points": list(sampler.history)})

    @ops.background
    async def sample_forever() -> None:
        await sampler.run(ops.hub)
