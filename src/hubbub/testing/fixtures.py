"""pytest fixtures for multi-node tests. Enable with `pytest_plugins = ["hubbub.testing.fixtures"]`.

- `redis_server`: a private redis-server for the test (it may be stopped and restarted).
- `redis_url`: `REDIS_URL` from the environment if set, else a private server's URL.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from hubbub.testing.cluster import RedisServer


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of the test's own, on a free port."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis to use: REDIS_URL if set, else a private server."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    with RedisServer() as server:
        yield server.url
