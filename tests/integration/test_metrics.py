"""/metrics: what it counts, read from a real server over real sockets, and where it is served."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hubbub import App, Envelope, Event, Request
from hubbub.broker.redis import RedisBroker
from hubbub.testing import RedisServer, TestServer, serve_app, wait_for
from tests.support.stalled import stalled_client

BURST = 16
SIZE = 32 * 1024
FITS = 2
LIMIT = FITS * SIZE + 64
"""Two 32 KiB frames (with their headers) fit in what a client that stopped reading may leave
behind; a burst of 16 to a client that reads is never dropped."""


def samples(text: str) -> dict[str, float]:
    """name{labels} -> value of every sample of an exposition."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


async def scrape(server: TestServer, port: int | None = None) -> dict[str, float]:
    if port is None:
        result = await server.request("GET", "/metrics")
    else:
        import aiohttp

        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 200
            return samples(await response.text())
    assert result.status == 200, result.body
    assert result.headers["content-type"].startswith("text/plain; version=")
    return samples(result.text)


def burst_app(**options: Any) -> App:
    app = App(max_backpressure=LIMIT, **options)
    echo = app.websocket("/echo")

    @echo.on_message
    async def reply(event: Event) -> None:
        if event.data == "burst":
            for _ in range(BURST):
                event.connection.send_nowait("x" * SIZE)
        else:
            await event.send(event.data)

    @app.post("/room/{room}")
    async def to_room(request: Request) -> dict[str, int]:
        return {"sent": await app.hub.room_broadcast(request.path_params["room"], request.body.decode())}

    @echo.on_connect
    async def join(event: Event) -> None:
        await event.hub.join("lobby", event.client_id)

    return app


async def test_messages_connections_and_rooms_are_counted() -> None:
    async with serve_app(burst_app()) as server:
        before = await scrape(server)
        assert before["hubbub_connections"] == 0
        assert before["hubbub_messages_received_total"] == 0
        clients = [await server.connect("/echo") for _ in range(3)]
        for client in clients:
            for i in range(5):
                await client.send(f"m{i}")
                assert await client.recv() == f"m{i}"
        result = await server.request("POST", "/room/lobby", body="hello all")
        assert result.json() == {"sent": 3}
        for client in clients:
            assert await client.recv() == "hello all"
        after = await scrape(server)
        assert after["hubbub_connections"] == 3
        assert after["hubbub_rooms"] == 1
        assert after["hubbub_messages_received_total"] == 15
        assert after["hubbub_messages_sent_total"] == 15 + 3
        assert after["hubbub_dropped_messages_total"] == 0
        assert after["hubbub_backpressure_closes_total"] == 0
        # 3 connects + 15 messages ran handlers; one run in 8 is timed and counted 8 times.
        count = after["hubbub_handler_seconds_count"]
        assert count == 8 * len(range(0, 18, 8))
        assert after['hubbub_handler_seconds_bucket{le="+Inf"}'] == count
        assert after["hubbub_broker_up"] == 1
        assert any(key.startswith('hubbub_broker_info{engine="memory"') for key in after)
        assert "process_cpu_seconds_total" in after
        for client in clients:
            await client.close()
        await wait_for(lambda: server.app.hub.gauges.value("hubbub_connections") == 0)
        assert (await scrape(server))["hubbub_connections"] == 0


async def flood_until_dropped(server: TestServer) -> tuple[int, int]:
    """Send 32 KiB messages to the only connection (a client that stopped reading), 4 per loop
    iteration, until one is not taken; (sent, dropped)."""
    conn = next(iter(server.app.hub._local.by_id.values()))
    sent = dropped = 0
    async with asyncio.timeout(20):
        while not dropped:
            for _ in range(4):
                taken = conn.send_nowait("x" * SIZE)
                sent += taken
                dropped += not taken
            await asyncio.sleep(0.001)
    return sent, dropped


async def test_drops_are_counted_under_the_drop_policy_and_not_below_the_limit() -> None:
    async with serve_app(burst_app(backpressure_policy="drop")) as server:
        client = await server.connect("/echo")
        await client.send("burst")  # a reader that keeps up takes a whole burst: nothing dropped
        for _ in range(BURST):
            assert await client.recv() == "x" * SIZE
        assert (await scrape(server))["hubbub_dropped_messages_total"] == 0
        await client.close()
        await wait_for(lambda: server.app.hub.gauges.value("hubbub_connections") == 0)
        async with stalled_client(server, "/echo"):
            await wait_for(lambda: server.app.hub.gauges.value("hubbub_connections") == 1)
            before = (await scrape(server))["hubbub_messages_sent_total"]
            sent, dropped = await flood_until_dropped(server)
            metrics = await scrape(server)
            assert metrics["hubbub_dropped_messages_total"] == dropped
            assert metrics["hubbub_messages_sent_total"] == before + sent
            assert metrics["hubbub_backpressure_closes_total"] == 0


async def test_backpressure_closes_are_counted_under_the_close_policy() -> None:
    async with (
        serve_app(burst_app(backpressure_policy="close", close_timeout=1.0)) as server,
        stalled_client(server, "/echo"),
    ):
        await wait_for(lambda: server.app.hub.gauges.value("hubbub_connections") == 1)
        calm = await server.connect("/echo")
        await calm.send("fine")
        assert await calm.recv() == "fine"
        await flood_until_dropped_first(server)
        await wait_for(lambda: server.app.hub.gauges.value("hubbub_connections") == 1)
        metrics = await scrape(server)
        assert metrics["hubbub_backpressure_closes_total"] == 1
        assert metrics["hubbub_dropped_messages_total"] == 1
        await calm.close()


async def flood_until_dropped_first(server: TestServer) -> None:
    """Send 32 KiB messages to the first connection (a client that stopped reading) until one is refused."""
    conn = next(iter(server.app.hub._local.by_id.values()))
    async with asyncio.timeout(20):
        while conn.send_nowait("x" * SIZE):
            await asyncio.sleep(0.001)


async def test_registered_sizes_are_read_at_scrape_time_and_a_failing_one_is_left_out() -> None:
    app = burst_app()
    pending = {"alice": 2, "bob": 5}
    app.hub.gauges.add("hubbub_inbox_pending", "Undelivered messages per user.", lambda: pending, label="user")
    app.hub.gauges.add("hubbub_history_streams", "Streams kept.", lambda: 7)
    app.hub.gauges.add("hubbub_broken", "A reader that fails.", lambda: 1 / 0)
    async with serve_app(app) as server:
        metrics = await scrape(server)
        assert metrics['hubbub_inbox_pending{user="alice"}'] == 2
        assert metrics['hubbub_inbox_pending{user="bob"}'] == 5
        assert metrics["hubbub_history_streams"] == 7
        assert "hubbub_broken" not in metrics
        pending["alice"] = 0
        assert (await scrape(server))['hubbub_inbox_pending{user="alice"}'] == 0
        app.hub.gauges.remove("hubbub_history_streams")
        assert "hubbub_history_streams" not in await scrape(server)


def test_gauge_names_are_checked() -> None:
    with pytest.raises(ValueError, match="not a valid metric name"):
        App().hub.gauges.add("bad name", "x", lambda: 1)


async def test_metrics_can_be_turned_off() -> None:
    async with serve_app(App(metrics=False)) as server:
        assert (await server.request("GET", "/metrics")).status == 404


async def test_an_app_route_keeps_working_beside_metrics() -> None:
    app = App()

    @app.get("/status")
    async def status(request: Request) -> dict[str, str]:
        return {"ok": "yes"}

    async with serve_app(app) as server:
        assert (await server.request("GET", "/status")).json() == {"ok": "yes"}
        assert (await server.request("GET", "/metrics")).status == 200


async def test_the_internal_port_serves_metrics_and_the_main_port_does_not() -> None:
    from tests.support.processes import free_port

    internal = free_port()
    async with serve_app(burst_app(internal_port=internal)) as server:
        assert server.running.internal_port == internal
        assert (await server.request("GET", "/metrics")).status == 404
        client = await server.connect("/echo")
        await client.send("one")
        assert await client.recv() == "one"
        metrics = await scrape(server, port=internal)
        assert metrics["hubbub_messages_received_total"] == 1
        assert metrics["hubbub_connections"] == 1
        await client.close()


async def test_redis_broker_state_and_publication_lag() -> None:
    with RedisServer() as redis:
        app = burst_app()
        app.use_broker(RedisBroker(redis.url, node_timeout=0.4))
        async with serve_app(app) as server:
            broker = app.hub.broker
            assert isinstance(broker, RedisBroker)
            await wait_for(lambda: broker.publication_lag is not None, timeout=10)
            metrics = await scrape(server)
            assert metrics["hubbub_broker_up"] == 1
            assert 0 <= metrics["hubbub_broker_publication_lag_seconds"] < 5
            assert metrics["hubbub_broker_lost_publications_total"] == 0
            assert any(key.startswith('hubbub_broker_info{engine="redis"') for key in metrics)
            redis.stop()
            await wait_for(lambda: not broker.ready, timeout=10)
            assert (await scrape(server))["hubbub_broker_up"] == 0


async def test_history_and_inbox_sizes_are_reported_where_this_process_keeps_them() -> None:
    app = App()
    app.history("kept:*", size=2, ttl=60)
    async with serve_app(app) as server:
        metrics = await scrape(server)
        assert metrics['hubbub_history_size{kind="streams"}'] == 0
        assert metrics['hubbub_inbox_size{kind="messages"}'] == 0
        for n in range(3):  # the history keeps the last 2
            await app.hub.room_broadcast("kept:a", Envelope("n", n))
        await app.hub.room_broadcast("plain", Envelope("n", 0))  # no history: not counted
        await app.hub.send_to_user("away", Envelope("note", "hi"), durable=True)
        metrics = await scrape(server)
        assert metrics['hubbub_history_size{kind="streams"}'] == 1
        assert metrics['hubbub_history_size{kind="publications"}'] == 2
        assert metrics['hubbub_inbox_size{kind="users"}'] == 1
        assert metrics['hubbub_inbox_size{kind="messages"}'] == 1
