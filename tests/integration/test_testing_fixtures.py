"""The helpers users test their own apps with: `RedisServer`, `Cluster` / `Node`, and the
`hubbub.testing.fixtures` pytest plugin (`redis_server`, `redis_url`), enabled in
tests/conftest.py exactly as a user enables it.

Redis is checked with redis-py (retries off, so "refused" is seen at once); nodes with
`websockets`' sync client and plain HTTP.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from websockets.sync.client import connect as ws_connect

from hubbub.testing import Cluster, RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]
APP = "tests/integration/apps/cli_app.py:app"  # /echo: sends the client id, then echoes


def client(port: int) -> redis.Redis:
    """A redis-py client that does not retry (a refused connection fails at once)."""
    return redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0))


def assert_refused(port: int) -> None:
    """Nothing answers on `port`."""
    with pytest.raises(redis.ConnectionError, match="refused"):
        client(port).ping()


def http_json(url: str) -> tuple[int, object]:
    """GET `url`: status and parsed JSON body (also for error statuses)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# ---- RedisServer ------------------------------------------------------------------------


def test_redis_server_stop_start_kill_restart_on_the_same_port() -> None:
    server = RedisServer()
    port = server.port
    assert port != 6379
    assert server.url == f"redis://127.0.0.1:{port}/0"
    assert server.process is None
    assert_refused(port)
    with server:
        assert client(port).ping() is True
        assert client(port).set("kept", "no")
        process = server.process
        assert process is not None
        server.stop()
        assert server.process is None
        assert process.returncode == 0
        assert_refused(port)
        server.start()
        assert server.port == port
        assert client(port).ping() is True
        assert client(port).get("kept") is None  # nothing is kept on disk
        process = server.process
        assert process is not None
        server.kill()
        assert process.returncode == -9
        assert_refused(port)
        server.restart(down_for=0.05)
        assert client(port).ping() is True
        before = server.process
        server.restart()
        assert server.process is not before
        assert client(port).ping() is True
    assert server.process is None
    assert_refused(port)


def test_redis_server_on_a_chosen_port() -> None:
    port = free_port()
    with RedisServer(port=port) as server:
        assert server.port == port
        assert redis.Redis.from_url(server.url, retry=Retry(NoBackoff(), 0)).ping() is True


def test_redis_server_refuses_a_taken_port() -> None:
    """It must not start "successfully" by talking to somebody else's server on that port."""
    with RedisServer() as first:
        second = RedisServer(port=first.port)
        with pytest.raises(RuntimeError, match=f"port {first.port} is taken"):
            second.start()
        assert second.process is None
        assert client(first.port).ping() is True
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with pytest.raises(RuntimeError, match="is taken"):
            RedisServer(port=listener.getsockname()[1]).start(timeout=2)


def test_redis_server_needs_the_executable() -> None:
    with pytest.raises(FileNotFoundError, match="no-such-redis-server"):
        RedisServer(executable="no-such-redis-server")


# ---- Cluster / Node ---------------------------------------------------------------------


def echo_through(node_url: str) -> str:
    """Open /echo on a node, check the echo, return the client id it announced."""
    with ws_connect(node_url, open_timeout=5) as ws:
        client_id = ws.recv(timeout=5)
        ws.send("ping through the node")
        assert ws.recv(timeout=5) == "ping through the node"
        assert isinstance(client_id, str)
        return client_id


def test_cluster_starts_ready_nodes_that_can_be_killed_stopped_and_restarted(redis_server: RedisServer) -> None:
    namespace = f"fixtures-{uuid.uuid4().hex[:8]}"
    probe = client(redis_server.port)
    with Cluster(APP, f"{redis_server.url}?namespace={namespace}", nodes=3, cwd=ROOT) as cluster:
        nodes = cluster.nodes
        assert len(nodes) == 3
        assert len({node.port for node in nodes}) == 3
        for node in nodes:
            assert node.alive
            assert node.ready()
            assert node.url("/echo") == f"ws://127.0.0.1:{node.port}/echo"
            assert http_json(node.http_url("/readyz")) == (200, {"status": "ready"})
        assert probe.zcard(f"{namespace}:nodes") == 3  # every node joined the cluster in Redis
        ids = {echo_through(node.url("/echo")) for node in nodes}
        assert len(ids) == 3

        assert nodes[2].stop() == 0  # SIGTERM: graceful shutdown exits 0
        assert not nodes[2].alive
        assert not nodes[2].ready()
        assert probe.zcard(f"{namespace}:nodes") == 2  # it left the cluster on the way out

        nodes[1].kill()
        assert not nodes[1].alive
        assert not nodes[1].ready()
        assert nodes[1].stop() == -9  # already dead: its status is SIGKILL's
        assert nodes[0].ready()
        echo_through(nodes[0].url("/echo"))

        nodes[1].start()  # same port again
        assert nodes[1].alive and nodes[1].ready()
        echo_through(nodes[1].url("/echo"))
    assert not any(node.alive for node in nodes)


def test_cluster_node_that_cannot_start_is_reported(redis_server: RedisServer) -> None:
    cluster = Cluster("tests/integration/apps/cli_app.py:not_an_app", redis_server.url, nodes=1, cwd=ROOT)
    with pytest.raises(RuntimeError, match="exited with"):
        cluster.start()
    assert not cluster.nodes[0].alive


# ---- the pytest plugin ------------------------------------------------------------------


def test_plugin_is_enabled(request: pytest.FixtureRequest) -> None:
    assert request.config.pluginmanager.hasplugin("hubbub.testing.fixtures")


def test_redis_server_fixture_is_a_private_server(redis_server: RedisServer) -> None:
    assert isinstance(redis_server, RedisServer)
    assert redis_server.port != 6379
    assert client(redis_server.port).ping() is True
    redis_server.restart()
    assert client(redis_server.port).ping() is True
    redis_server.kill()  # the fixture's teardown copes with a server the test killed
    assert_refused(redis_server.port)


def test_redis_url_fixture_starts_a_private_server_without_redis_url(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    url = request.getfixturevalue("redis_url")
    assert url.startswith("redis://127.0.0.1:")
    assert not url.startswith("redis://127.0.0.1:6379/")
    assert redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0)).ping() is True


def test_redis_url_fixture_honours_redis_url(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, redis_server: RedisServer
) -> None:
    wanted = f"{redis_server.url}?namespace=from-env"
    monkeypatch.setenv("REDIS_URL", wanted)
    assert request.getfixturevalue("redis_url") == wanted
    client(redis_server.port).set("marker", "mine")
    assert client(redis_server.port).get("marker") == b"mine"
