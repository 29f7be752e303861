"""Helpers for testing hubbub apps with pytest.

One process: `serve_app` runs an app on a free port, with clients, HTTP requests
and `wait_for`. Many processes: `RedisServer` and `Cluster` start a private
redis-server and N nodes of your app, and can kill a node or restart Redis; `RedisClusterServer` starts a Redis Cluster
(masters and replicas) and can kill a master.
The `hubbub.testing.fixtures` pytest plugin wraps them as fixtures.
"""

from hubbub.testing._single import HttpResult, TestServer, serve_app, wait_for
from hubbub.testing.cluster import Cluster, Node, RedisServer, free_port
from hubbub.testing.redis_cluster import RedisClusterServer

__all__ = [
    "Cluster",
    "HttpResult",
    "Node",
    "RedisClusterServer",
    "RedisServer",
    "TestServer",
    "free_port",
    "serve_app",
    "wait_for",
]
