"""The Redis engine's cluster mode outside the conformance suites: cluster URLs (good and bad),
key names that keep each script in one hash slot, the command line, and `Emitter` reaching the
clients of two nodes (served in this process) through sharded pub/sub and the inbox."""

from __future__ import annotations

import uuid
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from redis.crc import key_slot

from hubbub.app.app import App
from hubbub.broker.redis import RedisBroker
from hubbub.broker.redis_target import Keys, RedisTarget
from hubbub.errors import BrokerUnavailable, ConfigurationError
from hubbub.protocol.envelope import Envelope
from hubbub.runtime.emitter import Emitter
from hubbub.serve.cli import broker_from_url
from hubbub.testing import Cluster, RedisClusterServer, RedisServer, free_port, serve_app
from tests.broker.recording import Journal, RecordingListener
from tests.support.raw_and_channel import make_app, open_peer

ROOT = Path(__file__).resolve().parents[2]


def slot(key: str) -> int:
    return int(key_slot(key.encode()))


def test_a_cluster_url_names_its_seeds_credentials_and_hubbub_options() -> None:
    target, own = RedisTarget.parse(
        "rediss+cluster://ana:s%3Acret@10.0.0.1:7000,[::1]:7001/?namespace=chat&node_timeout=3"
    )
    assert target.cluster
    assert target.seeds == (("10.0.0.1", 7000), ("::1", 7001))
    assert target.options == {"ssl": True, "username": "ana", "password": "s:cret"}
    assert own == {"namespace": "chat", "node_timeout": "3"}
    plain, _ = RedisTarget.parse("redis://127.0.0.1:6379/0?namespace=chat")
    assert not plain.cluster and plain.url == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("redis+cluster://127.0.0.1", "bad Redis Cluster seed"),
        ("redis+cluster://127.0.0.1:7000,:7001", "bad Redis Cluster seed"),
        ("redis+cluster://127.0.0.1:7000/2", "only database 0"),
        ("redis+cluster://127.0.0.1:7000?decode_responses=1", "unknown Redis Cluster URL option"),
        ("http://127.0.0.1:7000", "not a Redis URL"),
    ],
)
def test_bad_cluster_urls_are_refused_with_the_reason(url: str, complaint: str) -> None:
    with pytest.raises(ConfigurationError, match=complaint):
        RedisTarget.parse(url)


def test_a_namespace_with_braces_is_refused_on_a_cluster_only() -> None:
    with pytest.raises(ConfigurationError, match="cannot hold braces"):
        RedisBroker("redis+cluster://127.0.0.1:7000?namespace=a{b}")
    assert RedisBroker("redis://127.0.0.1:6379/0?namespace=a{b}").prefix == "a{b}"


@pytest.mark.parametrize("name", ["lobby", "a}b", "}x", "{y}", "ü:{}"])
def test_each_room_and_user_keeps_its_keys_and_channel_in_one_slot(name: str) -> None:
    keys = Keys("ns", cluster=True)
    room = {slot(keys.room_channel(name)), slot(keys.history(name)), slot(keys.history(name) + ":meta")}
    assert len(room) == 1
    inbox = keys.inbox(name)
    assert len({slot(f"{inbox}:inbox:{kind}:{name}") for kind in ("m", "last", "cur")}) == 1
    assert slot(f"{keys.room_slot(name)}:members") in room
    user = {slot(f"{keys.user_slot(name)}:{kind}") for kind in ("conns", "gone", "fence", "fence_at")}
    assert user == {slot(f"{inbox}:inbox:m:{name}")}
    own = {slot(f"{keys.node_slot(name)}:{kind}") for kind in ("epoch", "conns", f"crooms:{name}", "rooms", "leaving")}
    assert len(own) == 1


def test_on_one_server_the_key_names_are_unchanged() -> None:
    keys = Keys("ns")
    assert (keys.members, keys.room_channel("r"), keys.history("r"), keys.inbox("u")) == (
        "ns",
        "ns:ch:room:r",
        "ns:hist:r",
        "ns",
    )


async def test_a_cluster_url_to_nothing_or_to_a_plain_server_is_unavailable_with_the_reason(
    redis_server: RedisServer,
) -> None:
    nowhere = RedisBroker(f"redis+cluster://127.0.0.1:{free_port()}")
    with pytest.raises(BrokerUnavailable, match=r"cannot reach Redis at redis\+cluster://"):
        await nowhere.probe()
    plain = RedisBroker(f"redis+cluster://127.0.0.1:{redis_server.port}")
    with pytest.raises(BrokerUnavailable, match="Cluster mode is not enabled"):
        await plain.start(RecordingListener(Journal(), 0))


def test_a_test_cluster_needs_three_masters() -> None:
    with pytest.raises(ValueError, match="at least 3 masters"):
        RedisClusterServer(masters=2)
    cluster = RedisClusterServer(masters=3, replicas=0)  # not started: nothing runs, nothing to stop
    assert cluster.url.count(",") == 2
    cluster.stop()


def test_hubbub_run_takes_a_cluster_for_broker_and_store(redis_cluster_server: RedisClusterServer) -> None:
    url = f"{redis_cluster_server.url}?namespace=run{uuid.uuid4().hex[:6]}"
    with Cluster("examples/echo.py:app", url, nodes=1, args=["--store", url], cwd=ROOT) as cluster:
        assert cluster.nodes[0].ready()


def test_the_command_line_takes_a_cluster_url() -> None:
    broker = broker_from_url("redis+cluster://127.0.0.1:7000,127.0.0.1:7001?namespace=x", App())
    assert isinstance(broker, RedisBroker)
    assert broker.target.cluster and broker.ns == "x" and broker.prefix == "{x}"


async def test_the_emitter_reaches_users_and_rooms_on_two_nodes_through_a_cluster(
    redis_cluster_server: RedisClusterServer,
) -> None:
    namespace = f"em{uuid.uuid4().hex[:8]}"
    url = redis_cluster_server.url
    async with AsyncExitStack() as stack:
        nodes = [
            await stack.enter_async_context(serve_app(make_app(RedisBroker(url, namespace=namespace))))
            for _ in range(2)
        ]
        emitter = await stack.enter_async_context(Emitter(url, namespace=namespace))
        async with AsyncExitStack() as clients:
            ana_a = await open_peer(clients, nodes[0], "hubbub", "ana", room="lobby")
            ana_b = await open_peer(clients, nodes[1], "websockets", "ana")
            bob_b = await open_peer(clients, nodes[1], "aiohttp", "bob", room="lobby")
            await emitter.send_to_user("ana", "hello ana")
            assert await ana_a.recv() == "hello ana"
            assert await ana_b.recv() == "hello ana"
            await emitter.room_broadcast("lobby", "to the lobby")  # both joined (and subscribed) before their hello
            assert await ana_a.recv() == "to the lobby"
            assert await bob_b.recv() == "to the lobby"
            await emitter.send_to_user("bob", Envelope("notification", {"n": 1}), durable=True)
            assert (await bob_b.recv_json())["data"] == {"n": 1}
            assert await emitter._inbox.last("bob") == 1  # kept in bob's inbox, in his slot
