"""examples/notifications.py over real sockets: HTTP push to a user's devices (live, or kept in the
inbox while a device is away), API key, periodic notices."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jwt
import pytest

from hubbub.testing import HttpResult, TestServer, serve_app
from tests.integration.example_support import EnvelopeClient, Library, load_example, of_type, open_client

SECRET = "notifications-test-secret-32-bytes!"
API_KEY = "test-api-key"


class Notifications:
    """The running example and what a test does with it."""

    def __init__(self, server: TestServer) -> None:
        self.server = server

    async def token(self, user_id: str) -> str:
        """A token from the development login."""
        response = await self.server.request("POST", "/api/login", json={"user_id": user_id})
        assert response.status == 200, response.text
        token: str = response.json()["token"]
        return token

    @asynccontextmanager
    async def device(
        self, user_id: str, library: Library = "websockets", name: str | None = None
    ) -> AsyncIterator[EnvelopeClient]:
        """A connection of `user_id`, authenticated with ?token=; with `name`, as that inbox device."""
        url = self.server.url(f"/notifications?token={await self.token(user_id)}")
        if name is not None:
            url += f"&device={name}"
        async with open_client(url, library) as client:
            assert client.welcome["user"] == user_id
            yield client

    async def notify(self, user_id: str, body: bytes, key: str | None = API_KEY) -> HttpResult:
        """POST /api/notify/{user_id} with a raw body."""
        headers = {"content-type": "application/json"}
        if key is not None:
            headers["x-api-key"] = key
        return await self.server.request("POST", f"/api/notify/{user_id}", body=body, headers=headers)


@pytest.fixture
async def app(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Notifications]:
    monkeypatch.setenv("NOTIFY_API_KEY", API_KEY)
    monkeypatch.setenv("NOTIFY_JWT_SECRET", SECRET)
    monkeypatch.setenv("NOTIFY_INTERVAL", "0.1")
    async with serve_app(load_example("notifications").app) as server:
        yield Notifications(server)


def notifications(client: EnvelopeClient) -> list[Any]:
    """The data of the notifications this client has received so far (taken)."""
    return [envelope["data"] for envelope in client.taken(of_type("notification"))]


async def test_a_notification_reaches_every_device_of_the_user_only(app: Notifications) -> None:
    async with (
        app.device("alice") as phone,
        app.device("alice", "aiohttp") as laptop,
        app.device("bob", "hubbub") as bob,
    ):
        payload = {"title": "Build finished", "body": "main is green", "url": "/builds/42", "n": [1, 2.5, None]}
        response = await app.notify("alice", json.dumps(payload).encode())
        assert response.status == 200 and response.json() == {"delivered": 2}
        for device in (phone, laptop):
            assert await device.next(of_type("notification")) == {"type": "notification", "inbox": 1, "data": payload}
        assert (await app.notify("bob", b'"for bob"')).json() == {"delivered": 1}
        assert (await bob.next(of_type("notification")))["data"] == "for bob"
        assert notifications(bob) == []  # alice's notification would have come first


async def test_nobody_connected_means_nothing_delivered_now_and_it_waits(app: Notifications) -> None:
    response = await app.notify("carol", b'{"hello": "carol"}')
    assert response.status == 200 and response.json() == {"delivered": 0}
    async with app.device("carol", name="phone") as phone:
        assert await phone.next_of("hubbub.inbox") == {"device": "phone", "pending": 1, "missed": 0}
        assert await phone.next(of_type("notification")) == {
            "type": "notification",
            "inbox": 1,
            "data": {"hello": "carol"},
        }


async def test_notifications_sent_while_away_reach_each_device_once(app: Notifications) -> None:
    for n in range(3):
        assert (await app.notify("dave", json.dumps({"n": n}).encode())).json() == {"delivered": 0}
    async with app.device("dave", name="phone") as phone:
        got = [await phone.next(of_type("notification")) for _ in range(3)]
        assert [(e["inbox"], e["data"]) for e in got] == [(1, {"n": 0}), (2, {"n": 1}), (3, {"n": 2})]
        assert await phone.call("hubbub.ack", {"inbox": 3}) == {"inbox": 3}
        assert (await app.notify("dave", b'"live"')).json() == {"delivered": 1}  # the laptop is still away
        assert (await phone.next(of_type("notification")))["inbox"] == 4
        await phone.call("hubbub.ack", {"inbox": 4})
    async with app.device("dave", "aiohttp", name="laptop") as laptop:
        assert (await laptop.next_of("hubbub.inbox"))["pending"] == 4
        assert [(await laptop.next(of_type("notification")))["inbox"] for _ in range(4)] == [1, 2, 3, 4]
    async with app.device("dave", "hubbub", name="phone") as phone:
        assert (await phone.next_of("hubbub.inbox"))["pending"] == 0  # acknowledged: not sent again
        await app.notify("dave", b'"fence"')
        assert await phone.next(of_type("notification")) == {"type": "notification", "inbox": 5, "data": "fence"}


async def test_an_unacknowledged_notification_comes_again(app: Notifications) -> None:
    await app.notify("erin", b'"again"')
    async with app.device("erin", name="tablet") as tablet:
        assert (await tablet.next(of_type("notification")))["data"] == "again"
    async with app.device("erin", name="tablet") as tablet:
        assert await tablet.next(of_type("notification")) == {"type": "notification", "inbox": 1, "data": "again"}


async def test_the_inbox_keeps_what_the_environment_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_API_KEY", API_KEY)
    monkeypatch.setenv("NOTIFY_JWT_SECRET", SECRET)
    monkeypatch.setenv("NOTIFY_KEEP", "2")
    async with serve_app(load_example("notifications").app) as server:
        app = Notifications(server)
        async with app.device("fay", name="phone"):
            pass
        for n in range(3):
            await app.notify("fay", str(n).encode())
        async with app.device("fay", name="phone") as phone:
            assert await phone.next_of("hubbub.inbox") == {"device": "phone", "pending": 2, "missed": 1}
            assert [(await phone.next(of_type("notification")))["data"] for _ in range(2)] == [1, 2]


async def test_a_device_that_left_gets_nothing(app: Notifications) -> None:
    async with app.device("alice") as phone:
        async with app.device("alice", "hubbub"):
            pass
        assert (await app.notify("alice", b"{}")).json() == {"delivered": 1}
        assert (await phone.next(of_type("notification")))["data"] == {}


@pytest.mark.parametrize("key", [None, "", "wrong-key", API_KEY + "x", "dev-notify-key"])
async def test_the_api_key_is_required(app: Notifications, key: str | None) -> None:
    async with app.device("alice") as alice:
        refused = await app.notify("alice", b'{"secret": "no"}', key=key)
        assert refused.status == 401
        assert refused.json() == {"error": "missing or invalid x-api-key"}
        assert (await app.notify("alice", b'{"secret": "yes"}')).json() == {"delivered": 1}
        assert (await alice.next(of_type("notification")))["data"] == {"secret": "yes"}  # the refused one never came


@pytest.mark.parametrize("body", [b"", b"not json", b'{"unterminated": ', b"\xff\xfe"])
async def test_a_body_that_is_not_json_is_400(app: Notifications, body: bytes) -> None:
    async with app.device("alice", "aiohttp") as alice:
        response = await app.notify("alice", body)
        assert response.status == 400 and response.json() == {"error": "body must be JSON"}
        await app.notify("alice", b"[1]")
        assert (await alice.next(of_type("notification")))["data"] == [1]


async def test_only_post_notifies(app: Notifications) -> None:
    response = await app.server.request("GET", "/api/notify/alice", headers={"x-api-key": API_KEY})
    assert response.status == 405 and response.headers["allow"] == "POST"


async def test_everyone_gets_the_periodic_notice(app: Notifications) -> None:
    async with app.device("alice") as alice, app.device("bob", "hubbub") as bob:
        for client in (alice, bob):
            first = await client.next_of("notice")
            second = await client.next_of("notice")
            assert second["seq"] > first["seq"] >= 1
            assert second["ts"] >= first["ts"]
            assert second["text"].startswith(f"periodic notice #{second['seq']}: ")


async def test_the_default_interval_is_thirty_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_INTERVAL", raising=False)
    monkeypatch.delenv("NOTIFY_API_KEY", raising=False)
    module = load_example("notifications")
    assert module.INTERVAL == 30.0
    assert module.API_KEY == "dev-notify-key"
    assert (module.STORE, module.KEEP, module.KEEP_FOR) == (None, 100, 7 * 86400.0)


async def test_connections_need_a_valid_token(app: Notifications) -> None:
    async with open_client(app.server.url("/notifications"), "aiohttp", expect_welcome=False) as anonymous:
        assert await anonymous.wait_closed() == 4001
    forged = jwt.encode({"sub": "alice", "aud": "hubbub-notifications"}, "x" * 32, algorithm="HS256")
    url = app.server.url(f"/notifications?token={forged}")
    async with open_client(url, "hubbub", expect_welcome=False) as impostor:
        assert await impostor.wait_closed() == 4002
    assert [e for e in anonymous.inbox + impostor.inbox if e.get("type") == "notification"] == []


async def test_the_login_token_names_the_user(app: Notifications) -> None:
    response = await app.server.request("POST", "/api/login", json={"user_id": "alice@example.com"})
    answer = response.json()
    claims = jwt.decode(answer["token"], SECRET, algorithms=["HS256"], audience="hubbub-notifications")
    assert claims["sub"] == answer["user_id"] == "alice@example.com"
    assert claims["exp"] == answer["expires_at"]


@pytest.mark.parametrize(
    "body", [b"nope", b"{}", b'{"user_id": ""}', b'{"user_id": "has space"}', b'{"user_id": 7}', b'["alice"]']
)
async def test_bad_login_bodies_are_400(app: Notifications, body: bytes) -> None:
    response = await app.server.request("POST", "/api/login", body=body)
    assert response.status == 400 and "error" in response.json()


async def test_the_development_login_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_DEV_LOGIN", "0")
    async with serve_app(load_example("notifications").app) as server:
        response = await server.request("POST", "/api/login", json={"user_id": "alice"})
        assert response.status == 404


async def test_page_and_browser_client_are_served(app: Notifications) -> None:
    page = await app.server.request("GET", "/")
    assert page.status == 200 and "/hubbub/hubbub.js" in page.text
    assert (await app.server.request("GET", "/hubbub/hubbub.js")).status == 200


async def test_with_a_sqlite_store_notifications_wait_across_a_restart(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NOTIFY_API_KEY", API_KEY)
    monkeypatch.setenv("NOTIFY_JWT_SECRET", SECRET)
    monkeypatch.setenv("NOTIFY_STORE", f"sqlite:///{tmp_path / 'notifications.db'}")
    async with serve_app(load_example("notifications").app) as server:
        assert (await Notifications(server).notify("gus", b'"kept on disk"')).json() == {"delivered": 0}
    restarted = load_example("notifications").app
    async with serve_app(restarted) as server, Notifications(server).device("gus", name="phone") as phone:
        assert await phone.next(of_type("notification")) == {"type": "notification", "inbox": 1, "data": "kept on disk"}
