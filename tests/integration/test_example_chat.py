"""examples/chat.py over real sockets: login, rooms, history, say, whisper, typing, presence, refresh."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any, Literal

import jwt
import pytest

from hubbub.testing import TestServer, serve_app
from tests.integration.example_support import EnvelopeClient, Library, load_example, of_type, open_client

SECRET = "chat-test-secret-of-at-least-32-bytes"
TokenVia = Literal["subprotocol", "query", "header"]


class Chat:
    """The running example and what a test does with it."""

    def __init__(self, module: ModuleType, server: TestServer) -> None:
        self.module = module
        self.server = server

    async def login(self, nickname: str) -> dict[str, Any]:
        """POST /api/login; the answer (token, user_id, ...)."""
        response = await self.server.request("POST", "/api/login", json={"nickname": nickname})
        assert response.status == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def connect(
        self, token: str | None, library: Library = "websockets", via: TokenVia = "subprotocol", **kwargs: Any
    ) -> Any:
        """A channel connection carrying the token the way a browser (subprotocol) or a script would."""
        url = self.server.url("/chat")
        subprotocols = ["hubbub.v1.json"]
        headers: dict[str, str] = {}
        if token is not None and via == "subprotocol":
            subprotocols.append(f"bearer.{token}")
        elif token is not None and via == "query":
            url += f"?token={token}"
        elif token is not None:
            headers["authorization"] = f"Bearer {token}"
        return open_client(url, library, headers=headers, subprotocols=subprotocols, **kwargs)

    @asynccontextmanager
    async def user(self, nickname: str, library: Library = "websockets") -> AsyncIterator[EnvelopeClient]:
        """Log in as a new user and connect."""
        async with self.connect((await self.login(nickname))["token"], library) as client:
            yield client


@asynccontextmanager
async def running_chat(monkeypatch: pytest.MonkeyPatch, **env: str) -> AsyncIterator[Chat]:
    """The example imported with test settings (a known secret, 3 messages of history, a short grace)."""
    settings = {"CHAT_JWT_SECRET": SECRET, "CHAT_HISTORY": "3", "CHAT_PRESENCE_GRACE": "0.05", **env}
    monkeypatch.delenv("CHAT_TOKEN_TTL", raising=False)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    module = load_example("chat")
    async with serve_app(module.app) as server:
        yield Chat(module, server)


@pytest.fixture
async def chat(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Chat]:
    async with running_chat(monkeypatch) as running:
        yield running


def forged_token() -> str:
    """A well-formed token signed with another secret."""
    return jwt.encode({"sub": "u-x", "name": "x", "aud": "hubbub-chat"}, "not-the-secret-" * 3, algorithm="HS256")


async def kept(chat: Chat, room: str) -> list[dict[str, Any]]:
    """The messages the framework keeps in a room's history, oldest first."""
    page = await chat.server.app.hub.room_history(room, last=100)
    return [publication["data"] for publication in page.publications()]


async def join(client: EnvelopeClient, room: str) -> dict[str, Any]:
    """Join a room; the "joined" snapshot (history and presence) that follows the reply."""
    assert (await client.call("hubbub.join", {"room": room}))["room"] == room
    return await client.next_of("joined", room=room)


# ---- HTTP: login, refresh, page ----------------------------------------------------------------


async def test_login_issues_a_signed_short_lived_token(chat: Chat) -> None:
    first = await chat.login("  alice ")
    second = await chat.login("alice")
    claims = jwt.decode(first["token"], SECRET, algorithms=["HS256"], audience="hubbub-chat")
    assert claims["name"] == "alice" == first["nickname"]
    assert claims["sub"] == first["user_id"] and claims["sub"].startswith("u-")
    assert claims["exp"] - claims["iat"] == 600 and claims["exp"] == first["expires_at"]
    assert second["user_id"] != first["user_id"]  # a nickname is not an identity


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not json", "body must be JSON"),
        (b"", "body must be JSON"),
        (b"[1, 2]", "body"),
        (b"{}", "nickname: Field required"),
        (b'{"nickname": "   "}', "nickname: String should have at least 1 character"),
        (b'{"nickname": "' + b"x" * 25 + b'"}', "nickname: String should have at most 24 characters"),
        (b'{"nickname": "a\\nb"}', "nickname: Value error, must be one line"),
        (b'{"nickname": "a\\u0007"}', "nickname: Value error, must not contain control characters"),
        (b'{"nickname": 5}', "nickname: Input should be a valid string"),
        (b'{"nickname": "bob", "admin": true}', "admin: Extra inputs are not permitted"),
    ],
)
async def test_bad_login_bodies_get_400(chat: Chat, body: bytes, problem: str) -> None:
    response = await chat.server.request("POST", "/api/login", body=body, headers={"content-type": "application/json"})
    assert response.status == 400
    assert problem in response.json()["error"]


async def test_login_is_post_only(chat: Chat) -> None:
    response = await chat.server.request("GET", "/api/login")
    assert response.status == 405 and response.headers["allow"] == "POST"


async def test_refresh_gives_a_new_token_for_the_same_user(chat: Chat) -> None:
    alice = await chat.login("alice")
    response = await chat.server.request("POST", "/api/refresh", headers={"authorization": f"Bearer {alice['token']}"})
    assert response.status == 200
    renewed = response.json()
    assert renewed["user_id"] == alice["user_id"] and renewed["nickname"] == "alice"
    assert jwt.decode(renewed["token"], SECRET, algorithms=["HS256"], audience="hubbub-chat")["name"] == "alice"
    missing = await chat.server.request("POST", "/api/refresh")
    assert missing.status == 401 and missing.json() == {"error": "missing token"}
    forged = forged_token()
    bad = await chat.server.request("POST", "/api/refresh", headers={"authorization": f"Bearer {forged}"})
    assert bad.status == 401 and "invalid token" in bad.json()["error"]


async def test_page_and_browser_client_are_served(chat: Chat) -> None:
    page = await chat.server.request("GET", "/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert "/hubbub/hubbub.js" in page.text
    script = await chat.server.request("GET", "/hubbub/hubbub.js")
    assert script.status == 200 and "Hubbub" in script.text


# ---- connecting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("library", "via"), [("websockets", "subprotocol"), ("aiohttp", "query"), ("hubbub", "header")]
)
async def test_the_token_names_the_user(chat: Chat, library: Library, via: TokenVia) -> None:
    alice = await chat.login("alice")
    async with chat.connect(alice["token"], library, via) as client:
        assert client.welcome["user"] == alice["user_id"]
        users = await client.next_of("users")
        assert {"id": alice["user_id"], "name": "alice"} in users["users"]


async def test_no_token_or_a_bad_one_is_closed(chat: Chat) -> None:
    async with chat.connect(None, expect_welcome=False) as anonymous:
        assert await anonymous.wait_closed() == 4001
    forged = forged_token()
    async with chat.connect(forged, "hubbub", expect_welcome=False) as impostor:
        assert await impostor.wait_closed() == 4002
    assert anonymous.inbox == [] and impostor.inbox == []


async def test_an_expired_token_closes_unless_refreshed(monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_chat(monkeypatch, CHAT_TOKEN_TTL="3") as chat:
        alice = await chat.login("alice")
        async with chat.connect(alice["token"]) as stale, chat.connect(alice["token"], "aiohttp") as fresh:
            chat.module.TOKEN_TTL = 60  # tokens issued from now on last longer
            headers = {"authorization": f"Bearer {alice['token']}"}
            renewed = (await chat.server.request("POST", "/api/refresh", headers=headers)).json()
            assert renewed["expires_at"] > alice["expires_at"]
            reply = await fresh.call("hubbub.refresh", {"token": renewed["token"]})
            assert reply == {"expires_at": renewed["expires_at"]}
            refused = await fresh.error("hubbub.refresh", {"token": (await chat.login("mallory"))["token"]})
            assert refused["code"] == "unauthorized"
            assert await stale.wait_closed() == 4002  # the first token's expiry
            assert await fresh.call("rooms") == {"rooms": []}  # the refreshed one outlived it


# ---- rooms ---------------------------------------------------------------------------------------


async def test_well_named_rooms_may_be_joined_and_left(chat: Chat) -> None:
    async with chat.user("alice") as alice:
        for room in ("lobby", "a", "room-42", "x" * 32):
            await join(alice, room)
        for room in ("Lobby", "x" * 33, "bad room", "tab\t", "ümlaut"):
            error = await alice.error("hubbub.join", {"room": room})
            assert error["code"] == "forbidden", room
        assert (await alice.error("hubbub.join", {"room": ""}))["code"] == "bad_request"
        assert await alice.call("hubbub.leave", {"room": "a"}) == {"room": "a"}
        assert sorted(alice_rooms(chat, alice)) == ["lobby", "room-42", "x" * 32]
        publish = await alice.error("hubbub.publish", {"room": "lobby", "data": "hi"})
        assert publish["code"] == "forbidden"  # talking goes through "say"


def alice_rooms(chat: Chat, client: EnvelopeClient) -> set[str]:
    conn = chat.module.app.hub.get(client.welcome["client_id"])
    assert conn is not None
    return set(conn.rooms)


async def test_room_list_counts_members(chat: Chat) -> None:
    async with chat.user("alice") as alice, chat.user("bob", "aiohttp") as bob:
        await join(alice, "lobby")
        await join(bob, "lobby")
        await join(bob, "games")
        assert await alice.call("rooms") == {"rooms": [{"name": "games", "count": 1}, {"name": "lobby", "count": 2}]}


async def test_presence_on_join_leave_and_disconnect(chat: Chat) -> None:
    async with chat.user("alice") as alice:
        snapshot = await join(alice, "lobby")
        assert [(p["user"], p["info"]) for p in snapshot["presence"]] == [(alice.welcome["user"], {"name": "alice"})]
        async with chat.user("bob", "hubbub") as bob:
            snapshot = await join(bob, "lobby")
            names = sorted(member["info"]["name"] for member in snapshot["presence"])
            assert names == ["alice", "bob"]
            joined = await alice.next_of("hubbub.presence", action="join")
            assert joined == {
                "room": "lobby",
                "action": "join",
                "client_id": bob.welcome["client_id"],
                "user": bob.welcome["user"],
                "info": {"name": "bob"},
            }
            await bob.call("hubbub.leave", {"room": "lobby"})
            left = await alice.next_of("hubbub.presence", action="leave")
            assert left["client_id"] == bob.welcome["client_id"]
            await join(bob, "lobby")
            await alice.next_of("hubbub.presence", action="join")
        gone = await alice.next_of("hubbub.presence", action="leave")
        assert gone["info"] == {"name": "bob"}
        assert [p["info"]["name"] for p in await chat.module.app.hub.room_presence("lobby")] == ["alice"]


# ---- talking -------------------------------------------------------------------------------------


async def test_say_reaches_the_room_only_with_the_nickname(chat: Chat) -> None:
    async with chat.user("alice") as alice, chat.user("bob", "aiohttp") as bob, chat.user("carol", "hubbub") as carol:
        await join(alice, "lobby")
        await join(bob, "lobby")
        await join(carol, "games")
        reply = await bob.call("say", {"room": "lobby", "text": "  hello, lobby  "})
        for client in (alice, bob):
            message = await client.next_of("message", room="lobby")
            assert message["id"] == reply["id"]
            assert message["user"] == {"id": bob.welcome["user"], "name": "bob"}
            assert message["text"] == "hello, lobby" and isinstance(message["ts"], int)
        assert (await alice.error("say", {"room": "games", "text": "not in games"}))["code"] == "forbidden"
        await carol.call("say", {"room": "games", "text": "games only"})
        assert (await carol.next_of("message"))["text"] == "games only"  # the lobby message would have come first
        assert carol.taken(of_type("message")) == []
        assert alice.taken(of_type("message", room="games")) == []


async def test_say_into_a_room_not_joined_is_forbidden(chat: Chat) -> None:
    async with chat.user("alice") as alice:
        error = await alice.error("say", {"room": "lobby", "text": "hi"})
        assert error == {"code": "forbidden", "message": "join 'lobby' first"}


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({"room": "lobby", "text": "x" * 501}, ["text"]),
        ({"room": "lobby", "text": "   "}, ["text"]),
        ({"room": "lobby", "text": "bell\u0007"}, ["text"]),
        ({"room": "lobby"}, ["text"]),
        ({"room": "Lobby!", "text": "hi"}, ["room"]),
        ({"room": "lobby", "text": "hi", "html": "<b>"}, ["html"]),
        ("just text", []),
    ],
)
async def test_bad_say_is_a_validation_error(chat: Chat, data: Any, loc: list[Any]) -> None:
    async with chat.user("alice", "aiohttp") as alice:
        await join(alice, "lobby")
        error = await alice.error("say", data)
        assert error["code"] == "validation_error"
        assert [field["loc"] for field in error["fields"]] == [loc]
        await alice.emit("say", data)  # without an id: a hubbub.error event
        event = await alice.next(of_type("hubbub.error"))
        assert event["error"]["code"] == "validation_error" and event["error"]["type"] == "say"
        assert await kept(chat, "lobby") == []


async def test_a_joiner_gets_the_last_messages_of_the_room(chat: Chat) -> None:
    async with chat.user("alice") as alice:
        await join(alice, "lobby")
        for number in range(1, 6):
            await alice.call("say", {"room": "lobby", "text": f"message {number}"})
        await join(alice, "other")
        await alice.call("say", {"room": "other", "text": "elsewhere"})
        async with chat.user("bob", "hubbub") as bob:
            snapshot = await join(bob, "lobby")
            assert [m["text"] for m in snapshot["history"]] == ["message 3", "message 4", "message 5"]  # CHAT_HISTORY=3
            assert {m["user"]["name"] for m in snapshot["history"]} == {"alice"}
            assert [m["text"] for m in (await join(bob, "other"))["history"]] == ["elsewhere"]
            assert (await join(bob, "empty"))["history"] == []


async def test_a_joiner_can_recover_what_it_missed_through_the_framework(chat: Chat) -> None:
    async with chat.user("alice") as alice:
        position = await alice.call("hubbub.join", {"room": "lobby"})
        await alice.next_of("joined", room="lobby")
        await alice.call("say", {"room": "lobby", "text": "seen"})
        assert (await alice.next(of_type("message")))["offset"] == position["offset"] + 1
    async with chat.user("bob") as bob:
        await join(bob, "lobby")
        for text in ("missed 1", "missed 2"):
            await bob.call("say", {"room": "lobby", "text": text})
    async with chat.user("alice") as back:
        since = {"offset": position["offset"] + 1, "epoch": position["epoch"]}
        reply = await back.call("hubbub.join", {"room": "lobby", "since": since})
        assert reply["recovered"] is True
        assert [p["data"]["text"] for p in reply["publications"]] == ["missed 1", "missed 2"]


async def test_names_are_bounded() -> None:
    module = load_example("chat")
    names = module.Names(limit=2)
    for user in ("u-1", "u-2", "u-1", "u-3"):
        names.remember(user, user.upper())
    assert (names.get("u-1"), names.get("u-2"), names.get("u-3")) == ("U-1", None, "U-3")


async def test_typing_goes_to_the_others_in_the_room_and_is_not_kept(chat: Chat) -> None:
    async with chat.user("alice") as alice, chat.user("bob", "aiohttp") as bob, chat.user("carol", "hubbub") as carol:
        await join(alice, "lobby")
        await join(bob, "lobby")
        await join(carol, "games")
        await bob.emit("typing", {"room": "lobby"})
        typing = await alice.next_of("typing")
        assert typing == {"room": "lobby", "user": {"id": bob.welcome["user"], "name": "bob"}}
        assert (await bob.error("typing", {"room": "games"}))["code"] == "forbidden"
        assert (await bob.error("typing", {"room": "NOPE"}))["code"] == "validation_error"
        await bob.call("say", {"room": "lobby", "text": "after typing"})
        await bob.next_of("message")  # bob's own typing would have reached him before his message
        await carol.call("say", {"room": "games", "text": "mine"})
        await carol.next_of("message")
        assert bob.taken(of_type("typing")) == [] and carol.taken(of_type("typing")) == []
        assert [m["text"] for m in await kept(chat, "lobby")] == ["after typing"]  # typing is not kept


# ---- whispers ------------------------------------------------------------------------------------


async def test_whisper_reaches_every_device_of_both_users(chat: Chat) -> None:
    alice = await chat.login("alice")
    bob = await chat.login("bob")
    async with (
        chat.connect(alice["token"]) as alice_phone,
        chat.connect(alice["token"], "aiohttp") as alice_laptop,
        chat.connect(bob["token"], "hubbub") as bob_phone,
        chat.connect(bob["token"], "websockets", "header") as bob_laptop,
        chat.user("carol") as carol,
    ):
        reply = await bob_phone.call("whisper", {"to_user": alice["user_id"], "text": "psst"})
        assert reply == {"delivered": 2}
        for device in (alice_phone, alice_laptop, bob_phone, bob_laptop):
            whisper = await device.next_of("whisper")
            assert whisper["from"] == {"id": bob["user_id"], "name": "bob"}
            assert whisper["to"] == {"id": alice["user_id"], "name": "alice"}
            assert whisper["text"] == "psst"
        await carol.call("whisper", {"to_user": carol.welcome["user"], "text": "note to self"})
        assert (await carol.next_of("whisper"))["text"] == "note to self"  # bob's whisper would have come first
        assert carol.taken(of_type("whisper")) == []  # and a whisper to oneself arrives once


async def test_whisper_to_nobody_or_too_long_is_refused(chat: Chat) -> None:
    async with chat.user("alice") as alice:
        error = await alice.error("whisper", {"to_user": "u-nobody", "text": "hello?"})
        assert error == {"code": "not_found", "message": "user 'u-nobody' is not online"}
        bob = await chat.login("bob")  # logged in but never connected: offline
        assert (await alice.error("whisper", {"to_user": bob["user_id"], "text": "hi"}))["code"] == "not_found"
        too_long = await alice.error("whisper", {"to_user": bob["user_id"], "text": "x" * 501})
        assert too_long["code"] == "validation_error" and too_long["fields"][0]["loc"] == ["text"]
        no_target = await alice.error("whisper", {"to_user": "", "text": "hi"})
        assert no_target["fields"][0]["loc"] == ["to_user"]


# ---- who is online -------------------------------------------------------------------------------


async def test_online_users_list_and_changes(chat: Chat) -> None:
    async with chat.user("alice") as alice:
        users = (await alice.next_of("users"))["users"]
        assert users == [{"id": alice.welcome["user"], "name": "alice"}]
        bob = await chat.login("bob")
        async with chat.connect(bob["token"], "aiohttp") as bob_client:
            online = await alice.next_of("user.online", id=bob["user_id"])
            assert online == {"id": bob["user_id"], "name": "bob"}
            everyone = (await bob_client.next_of("users"))["users"]
            assert sorted(user["name"] for user in everyone) == ["alice", "bob"]
        offline = await alice.next_of("user.offline", id=bob["user_id"])  # after the 0.05 s grace
        assert offline == {"id": bob["user_id"], "name": "bob"}
        assert await chat.module.app.hub.online_users() == [alice.welcome["user"]]


async def test_a_second_device_is_not_a_second_arrival(chat: Chat) -> None:
    async with chat.user("alice") as alice:
        bob = await chat.login("bob")
        async with chat.connect(bob["token"]):
            await alice.next_of("user.online", id=bob["user_id"])
            async with chat.connect(bob["token"], "hubbub") as second:
                await second.next_of("users")
                await alice.call("rooms")  # an online event for the second device would have come before this reply
                assert alice.taken(of_type("user.online", id=bob["user_id"])) == []
        await alice.next_of("user.offline", id=bob["user_id"])
        assert alice.taken(of_type("user.offline")) == []
