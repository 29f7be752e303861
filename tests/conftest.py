"""Shared fixtures: every test gets real sockets on 127.0.0.1."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from hubbub.testing import RedisClusterServer

pytest_plugins = ["hubbub.testing.fixtures"]  # redis_server, redis_url (the plugin users enable the same way)


@pytest.fixture(autouse=True)
def _hubbub_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hubbub")


@pytest.fixture(scope="session")
def redis_cluster_server() -> Iterator[RedisClusterServer]:
    """One Redis Cluster (3 masters, 3 replicas) for the conformance suites of the session; each test
    uses a namespace of its own. Tests that kill a master start a cluster of their own."""
    with RedisClusterServer() as server:
        yield server
