"""Room history over real sockets: offsets, hubbub.join with history / since, recovery without a gap
or a duplicate, idempotent publish, join/leave hooks, the HTTP history API, and drops seen as gaps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hubbub import App, Event
from hubbub.history.base import HistoryPolicy
from hubbub.protocol.envelope import Envelope
from hubbub.testing import TestServer, serve_app, wait_for
from tests.integration.example_support import EnvelopeClient, load_example, open_client

JSON = ["hubbub.v1.json"]


@pytest.fixture
async def echo() -> AsyncIterator[TestServer]:
    """examples/echo.py (its /rooms route keeps 10,000 publications per room for 10 minutes)."""
    async with serve_app(load_example("echo").app) as server:
        yield server


def rooms_client(server: TestServer, path: str = "/rooms") -> Any:
    return open_client(server.url(path), subprotocols=JSON)


async def publish(client: EnvelopeClient, room: str, n: int, **extra: Any) -> dict[str, Any]:
    reply: dict[str, Any] = await client.call("hubbub.publish", {"room": room, "data": {"n": n}, **extra})
    return reply


def published(envelope: dict[str, Any]) -> bool:
    return envelope.get("type") == "hubbub.message"


async def live_until(client: EnvelopeClient, last_offset: int, timeout: float = 20) -> list[dict[str, Any]]:
    """Room publications received live, up to the one at `last_offset`."""
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while not got or got[-1]["offset"] < last_offset:
            got.append(await client.next(published))
    return got


async def test_a_client_away_while_1000_are_published_recovers_all_then_gets_live_ones_without_gap(
    echo: TestServer,
) -> None:
    async with rooms_client(echo) as away:
        joined = await away.call("hubbub.join", {"room": "lobby"})
    assert joined["offset"] == 0 and joined["epoch"]
    async with rooms_client(echo) as publisher:
        for n in range(1, 1001):
            assert (await publish(publisher, "lobby", n))["offset"] == n

        async def keep_publishing() -> None:  # live publications race the recovery
            for n in range(1001, 1201):
                await publish(publisher, "lobby", n)

        racing = asyncio.create_task(keep_publishing())
        async with rooms_client(echo) as back:
            await asyncio.sleep(0)
            reply = await back.call("hubbub.join", {"room": "lobby", "since": {"offset": 0, "epoch": joined["epoch"]}})
            await racing
            assert reply["recovered"] is True and reply["epoch"] == joined["epoch"]
            recovered = reply["publications"]
            assert len(recovered) >= 1000 and reply["offset"] == recovered[-1]["offset"]
            live = await live_until(back, 1200) if reply["offset"] < 1200 else []
    everything = recovered + live
    assert [p["offset"] for p in everything] == list(range(1, 1201))  # in order, no gap, no duplicate
    assert [p["data"]["data"]["n"] for p in everything] == list(range(1, 1201))
    assert all(p["type"] == "hubbub.message" and p["data"]["room"] == "lobby" for p in everything)


async def test_history_20_on_join_then_live_with_the_next_offset(echo: TestServer) -> None:
    async with rooms_client(echo) as publisher, rooms_client(echo) as joiner:
        for n in range(1, 31):
            await publish(publisher, "r", n)
        reply = await joiner.call("hubbub.join", {"room": "r", "history": 20})
        assert reply["recovered"] is True and reply["offset"] == 30
        assert [p["offset"] for p in reply["publications"]] == list(range(11, 31))
        assert reply["publications"][0] == {
            "type": "hubbub.message",
            "data": {"room": "r", "from": publisher.welcome["client_id"], "user": None, "data": {"n": 11}},
            "room": "r",
            "offset": 11,
        }
        await publish(publisher, "r", 31)
        live = await joiner.next(published)
        assert live == {**reply["publications"][0], "data": {**live["data"], "data": {"n": 31}}, "offset": 31}


async def test_every_join_reply_carries_the_position_and_history_0_lists_nothing(echo: TestServer) -> None:
    async with rooms_client(echo) as client:
        plain = await client.call("hubbub.join", {"room": "p"})
        assert set(plain) == {"room", "offset", "epoch"} and plain["offset"] == 0
        await publish(client, "p", 1)
        await client.next(published)
        zero = await client.call("hubbub.join", {"room": "p", "history": 0})
        assert zero == {"room": "p", "offset": 1, "epoch": plain["epoch"], "recovered": True, "publications": []}


async def test_a_wrong_epoch_is_answered_recovered_false(echo: TestServer) -> None:
    async with rooms_client(echo) as client:
        await client.call("hubbub.join", {"room": "e"})
        await publish(client, "e", 1)
        reply = await client.call("hubbub.join", {"room": "e", "since": {"offset": 0, "epoch": "other"}})
        assert reply["recovered"] is False and reply["publications"] == [] and reply["offset"] == 1


@pytest.fixture
async def small() -> AsyncIterator[TestServer]:
    """Rooms that keep 5 publications; "plain:*" rooms keep none."""
    app = App()
    app.hub.history_rules.set("plain:*", None)  # the first pattern that matches applies
    app.history("*", size=5, ttl=60)
    rooms = app.channel("/rooms")
    rooms.authorize(lambda event, action, room: True)
    async with serve_app(app) as server:
        yield server


async def test_recovered_false_after_trimming_and_true_right_at_the_edge(small: TestServer) -> None:
    async with rooms_client(small) as client:
        epoch = (await client.call("hubbub.join", {"room": "t"}))["epoch"]
        for n in range(1, 11):
            await publish(client, "t", n)
        edge = await client.call("hubbub.join", {"room": "t", "since": {"offset": 5, "epoch": epoch}})
        assert edge["recovered"] is True and [p["offset"] for p in edge["publications"]] == [6, 7, 8, 9, 10]
        past = await client.call("hubbub.join", {"room": "t", "since": {"offset": 4, "epoch": epoch}})
        assert past["recovered"] is False  # 5 was trimmed: the client must reload


async def test_a_room_without_history_answers_offset_0_and_recovered_false(small: TestServer) -> None:
    async with rooms_client(small) as client:
        reply = await client.call("hubbub.join", {"room": "plain:x", "history": 5})
        assert reply == {"room": "plain:x", "offset": 0, "epoch": "", "recovered": False, "publications": []}
        await publish(client, "plain:x", 1)
        assert "offset" not in await client.next(published)


@pytest.mark.parametrize(
    "data",
    [
        {"room": "r", "history": -1},
        {"room": "r", "history": "20"},
        {"room": "r", "history": True},
        {"room": "r", "history": 100_001},
        {"room": "r", "since": 3},
        {"room": "r", "since": {"offset": -1, "epoch": "e"}},
        {"room": "r", "since": {"offset": 1}},
        {"room": "r", "since": {"offset": 1, "epoch": "e" * 65}},
        {"room": "r", "history": 1, "since": {"offset": 1, "epoch": "e"}},
    ],
)
async def test_bad_positions_are_refused_with_bad_request(small: TestServer, data: dict[str, Any]) -> None:
    async with rooms_client(small) as client:
        assert (await client.error("hubbub.join", data))["code"] == "bad_request"
        assert (await client.call("hubbub.join", {"room": "r", "history": 100_000}))["recovered"] is True


async def test_an_idempotency_key_publishes_once(small: TestServer) -> None:
    async with rooms_client(small) as member, rooms_client(small) as publisher:
        await member.call("hubbub.join", {"room": "i"})
        first = await publish(publisher, "i", 1, idempotency_key="order-17")
        retry = await publish(publisher, "i", 1, idempotency_key="order-17")
        other = await publish(publisher, "i", 2, idempotency_key="order-18")
        assert (first["offset"], first["duplicate"]) == (1, False)
        assert (retry["offset"], retry["duplicate"], retry["delivered"]) == (1, True, 0)
        assert other["offset"] == 2
        offsets = [(await member.next(published))["offset"] for _ in range(2)]
        assert offsets == [1, 2]
        for bad in ("", "k" * 129, 5):
            assert (await publisher.error("hubbub.publish", {"room": "i", "idempotency_key": bad}))[
                "code"
            ] == "bad_request"
        assert (await publish(publisher, "i", 3, idempotency_key="k" * 128))["offset"] == 3


async def test_join_and_leave_hooks_run_after_the_reply() -> None:
    app = App()
    app.history("*", size=10, ttl=60)
    rooms = app.channel("/rooms")
    rooms.authorize(lambda event, action, room: True)
    left: list[str] = []

    @rooms.on_join
    async def greet(event: Event, room: str) -> None:
        await event.send(Envelope("welcome.room", {"room": room, "members": await event.hub.room_count(room)}))

    @rooms.on_leave
    def bye(event: Event, room: str) -> None:
        left.append(room)

    @rooms.on_join
    def broken(event: Event, room: str) -> None:
        raise RuntimeError("a failing hook is logged, not fatal")

    async with serve_app(app) as server, rooms_client(server) as client:
        await client.call("hubbub.join", {"room": "g"})
        assert client.inbox == [] or client.inbox[0]["type"] == "welcome.room"
        assert await client.next_of("welcome.room") == {"room": "g", "members": 1}
        await client.call("hubbub.leave", {"room": "g"})
        await wait_for(lambda: left == ["g"])
        assert (await client.error("hubbub.leave", {"room": "g"}))["code"] == "bad_request"
        assert left == ["g"]  # a refused leave runs no hook


async def test_handlers_read_history_and_http_pages_through_it(small: TestServer) -> None:
    small.app.history_api("secret")
    async with rooms_client(small) as client:
        for n in range(1, 5):
            await publish(client, "h", n)
    page = await small.app.hub.room_history("h", last=2)
    assert [p["data"]["data"]["n"] for p in page.publications()] == [3, 4]
    auth = {"authorization": "Bearer secret"}
    first = (await small.request("GET", "/api/history/h?since=0&limit=3", headers=auth)).json()
    assert [p["offset"] for p in first["publications"]] == [1, 2, 3] and first["next"] == 3
    second = (await small.request("GET", f"/api/history/h?since={first['next']}&limit=3", headers=auth)).json()
    assert [p["offset"] for p in second["publications"]] == [4] and second["next"] is None
    assert second["complete"] is True and second["epoch"] == first["epoch"]
    last = (await small.request("GET", "/api/history/h?last=1", headers=auth)).json()
    assert last["publications"][0]["data"]["data"] == {"n": 4}
    stale = (await small.request("GET", "/api/history/h?since=0&epoch=old", headers=auth)).json()
    assert stale["complete"] is False and stale["publications"] == []
    assert (await small.request("GET", "/api/history/h?last=1")).status == 401
    for bad in ("last=-1", "since=x", "limit=1001", "since=1&last=1"):
        assert (await small.request("GET", f"/api/history/h?{bad}", headers=auth)).status == 400


async def test_a_publication_dropped_by_backpressure_shows_as_an_offset_gap() -> None:
    app = App(backpressure_policy="drop", max_backpressure=16 * 1024)
    app.history("*", size=10_000, ttl=60)
    rooms = app.channel("/rooms")
    rooms.authorize(lambda event, action, room: True)
    async with serve_app(app) as server, rooms_client(server) as reader:
        await reader.call("hubbub.join", {"room": "d"})
        conn = app.hub.get(reader.welcome["client_id"])
        assert conn is not None
        # The reader takes nothing until the end: its socket buffers fill, then the server's outbox.
        big = "x" * 4096
        sent = 0
        async with asyncio.timeout(10):
            while conn.dropped_count == 0:
                for _ in range(16):
                    sent += 1
                    await app.hub.room_broadcast("d", Envelope("hubbub.message", {"n": sent, "pad": big}))
                await asyncio.sleep(0.001)
            for _ in range(3):  # these follow the drop and do arrive
                sent += 1
                await app.hub.room_broadcast("d", Envelope("hubbub.message", {"n": sent, "pad": ""}))
        offsets = [p["offset"] for p in await live_until(reader, sent)]
    assert offsets == sorted(offsets) and offsets[-1] == sent
    missing = sorted(set(range(1, sent + 1)) - set(offsets))
    assert missing and len(missing) == conn.dropped_count  # each drop is a visible gap


async def test_the_http_publish_api_keeps_envelopes_and_honours_idempotency_keys(small: TestServer) -> None:
    small.app.publish_api("key")
    auth = {"authorization": "Bearer key"}
    body = {"room": "api", "envelope": {"type": "news", "data": 1}, "idempotency_key": "evt-1"}
    async with rooms_client(small) as member:
        await member.call("hubbub.join", {"room": "api"})
        first = (await small.request("POST", "/api/publish", json=body, headers=auth)).json()
        retry = (await small.request("POST", "/api/publish", json=body, headers=auth)).json()
        assert first == {"ok": True, "delivered": 1, "offset": 1, "epoch": first["epoch"], "duplicate": False}
        assert retry == {"ok": True, "delivered": 0, "offset": 1, "epoch": first["epoch"], "duplicate": True}
        assert await member.next(lambda e: e.get("type") == "news") == {
            "type": "news",
            "data": 1,
            "room": "api",
            "offset": 1,
        }
        for bad in (
            {**body, "idempotency_key": ""},
            {**body, "idempotency_key": 7},
            {"room": "api", "text": "raw", "idempotency_key": "k"},
            {"user": "u", "envelope": {"type": "x"}, "idempotency_key": "k"},
        ):
            assert (await small.request("POST", "/api/publish", json=bad, headers=auth)).status == 400
        plain = {"room": "plain:x", "envelope": {"type": "news"}}
        assert (await small.request("POST", "/api/publish", json=plain, headers=auth)).json() == {
            "ok": True,
            "delivered": 0,
        }


async def test_echo_rooms_contract_any_client_joins_leaves_and_publishes_anywhere(echo: TestServer) -> None:
    assert echo.app.hub.history_rules.policy("any:room/name") == HistoryPolicy(size=10_000, ttl=600)
    async with rooms_client(echo) as client, rooms_client(echo) as other:
        await client.call("hubbub.join", {"room": "any:room/name"})
        assert (await publish(other, "any:room/name", 1))["delivered"] == 1  # not a member, may publish
        assert (await client.next(published))["offset"] == 1
        assert await client.call("hubbub.leave", {"room": "any:room/name"}) == {"room": "any:room/name"}
        assert (await publish(other, "any:room/name", 2))["delivered"] == 0
