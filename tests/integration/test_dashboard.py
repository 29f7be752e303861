"""The dashboard's page and live route: who gets in, and what the live route sends."""

from __future__ import annotations

import json

import pytest

from hubbub import App, AuthError, Event, Request
from hubbub.errors import HandshakeError
from hubbub.testing import TestServer, serve_app, wait_for

LIVE = ["hubbub.v1.json"]


def room_app(**options: object) -> App:
    app = App(**options)

    chat = app.websocket("/room/{room}")

    @chat.on_message
    async def say(event: Event) -> None:
        await event.hub.room_broadcast(event.params["room"], event.data)

    @chat.on_connect
    async def join(event: Event) -> None:
        await event.hub.join(event.params["room"], event.client_id)

    return app


async def envelopes(server: TestServer, query: str, count: int) -> list[dict[str, object]]:
    client = await server.connect(f"/_hubbub/live{query}", subprotocols=LIVE)
    try:
        return [json.loads(await client.recv(timeout=5)) for _ in range(count)]
    finally:
        await client.close()


async def test_off_unless_a_key_or_auth_is_set() -> None:
    async with serve_app(room_app()) as server:
        assert (await server.request("GET", "/_hubbub")).status == 404
        assert (await server.request("GET", "/_hubbub?key=anything")).status == 404


async def test_the_key_opens_the_page_and_the_live_route() -> None:
    async with serve_app(room_app(dashboard_key="k3y")) as server:
        assert (await server.request("GET", "/_hubbub")).status == 401
        assert (await server.request("GET", "/_hubbub?key=wrong")).status == 401
        assert (await server.request("GET", "/_hubbub", headers={"authorization": "Bearer wrong"})).status == 401
        page = await server.request("GET", "/_hubbub?key=k3y")
        assert page.status == 200
        assert page.headers["content-type"].startswith("text/html")
        assert (await server.request("GET", "/_hubbub", headers={"authorization": "Bearer k3y"})).status == 200
        assert (await server.request("GET", "/_hubbub/static/hubbub.js")).status == 200

        refused = await server.connect("/_hubbub/live?key=wrong", subprotocols=LIVE)
        assert await refused.wait_closed() == 4001


async def test_live_route_sends_history_then_samples_of_real_activity() -> None:
    async with serve_app(room_app(dashboard_key="k3y")) as server:
        members = [await server.connect("/room/lobby") for _ in range(3)]
        await members[0].send("hello")
        for member in members:
            assert await member.recv() == "hello"
        welcome, history, sample = await envelopes(server, "?key=k3y", 3)
        assert welcome["type"] == "hubbub.welcome"
        assert history["type"] == "history"
        assert sample["type"] == "sample"
        point = sample["data"]
        assert isinstance(point, dict)
        assert point["connections"] == 3  # the dashboard's own connection is not the app's
        assert point["rooms"] == 1
        assert {"t", "users", "received", "sent", "dropped", "closes"} <= point.keys()
        for member in members:
            await member.close()
        await wait_for(lambda: server.app.hub.gauges.value("hubbub_connections") == 0)


async def test_the_apps_authenticator_can_guard_it() -> None:
    app = room_app(dashboard_auth=True)

    @app.authenticate
    def operators_only(request: Request) -> str | None:
        token = request.query.get("token")
        if token is None:
            return None
        if token != "op":
            raise AuthError(4002, "not an operator")
        return "operator"

    async with serve_app(app) as server:
        assert (await server.request("GET", "/_hubbub")).status == 401
        assert (await server.request("GET", "/_hubbub?token=guest")).status == 401
        assert (await server.request("GET", "/_hubbub?token=op")).status == 200
        assert (await server.request("GET", "/_hubbub?key=op")).status == 401  # no key configured
        refused = await server.connect("/_hubbub/live?token=guest", subprotocols=LIVE)
        assert await refused.wait_closed() == 4001
        _welcome, history = await envelopes(server, "?token=op", 2)
        assert history["type"] == "history"


async def test_refusal_as_http_when_the_app_says_so() -> None:
    async with serve_app(room_app(dashboard_key="k3y", auth_failure="http")) as server:
        with pytest.raises(HandshakeError) as refused:
            await server.connect("/_hubbub/live", subprotocols=LIVE)
        assert refused.value.status == 401


async def test_the_apps_own_limits_do_not_apply_to_viewers() -> None:
    app = room_app(dashboard_key="k3y", max_connections_per_user=1, auth_failure="http")
    app.authenticate(lambda request: request.query.get("user"))
    async with serve_app(app) as server:
        member = await server.connect("/room/lobby?user=ann")
        viewers = [await server.connect("/_hubbub/live?key=k3y", subprotocols=LIVE) for _ in range(3)]
        for viewer in viewers:
            assert json.loads(await viewer.recv(timeout=5))["type"] == "hubbub.welcome"
            assert json.loads(await viewer.recv(timeout=5))["type"] == "history"
            await viewer.close()
        with pytest.raises(HandshakeError) as refused:  # the app's own limit still holds for its clients
            await server.connect("/room/lobby?user=ann")
        assert refused.value.status == 429
        await member.close()
