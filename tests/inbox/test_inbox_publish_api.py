"""`POST /api/publish` with `"durable": true`: backends in any language fill users' inboxes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from hubbub.testing import TestServer, serve_app
from tests.inbox.devices import device, durable, notice
from tests.inbox.inbox_app import make_app

KEY = "inbox-publish-key"


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    app = make_app()
    app.publish_api(KEY)
    async with serve_app(app) as served:
        yield served


async def publish(server: TestServer, body: Any) -> tuple[int, Any]:
    response = await server.request("POST", "/api/publish", json=body, headers={"authorization": f"Bearer {KEY}"})
    return response.status, response.json()


async def test_a_durable_publish_to_a_user_waits_for_each_device(server: TestServer) -> None:
    body = {"user": "alice", "envelope": {"type": "bill", "data": {"due": 3}}, "durable": True}
    assert await publish(server, body) == (200, {"ok": True, "delivered": 0})
    base = server.url("").rstrip("/")
    async with device(base, "alice", "phone") as phone:
        assert (await notice(phone))["pending"] == 1
        assert await durable(phone, 1) == [{"type": "bill", "inbox": 1, "data": {"due": 3}}]
        body = {"users": ["alice", "bob"], "envelope": {"type": "news"}, "durable": True}
        assert await publish(server, body) == (200, {"ok": True, "delivered": 1})
        assert await durable(phone, 1) == [{"type": "news", "inbox": 2, "data": None}]
    async with device(base, "bob", "laptop") as laptop:
        assert await durable(laptop, 1) == [{"type": "news", "inbox": 1, "data": None}]


async def test_a_publish_that_is_not_durable_is_not_kept(server: TestServer) -> None:
    body = {"user": "carol", "envelope": {"type": "gone"}, "durable": False}
    assert await publish(server, body) == (200, {"ok": True, "delivered": 0})
    async with device(server.url("").rstrip("/"), "carol", "phone") as phone:
        assert (await notice(phone))["pending"] == 0


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"user": "alice", "envelope": {"type": "x"}, "durable": "yes"}, "'durable' must be true or false"),
        ({"user": "alice", "text": "hi", "durable": True}, "'durable' works with user or users and an envelope only"),
        (
            {"room": "lobby", "envelope": {"type": "x"}, "durable": True},
            "'durable' works with user or users and an envelope only",
        ),
        (
            {"all": True, "envelope": {"type": "x"}, "durable": True},
            "'durable' works with user or users and an envelope only",
        ),
    ],
)
async def test_bad_durable_publishes_are_400(server: TestServer, body: dict[str, Any], error: str) -> None:
    assert await publish(server, body) == (400, {"error": error})
