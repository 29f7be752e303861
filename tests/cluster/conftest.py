"""Fixtures of the cluster tests: a private redis-server per test module, and clients closed after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from hubbub.testing import RedisServer
from tests.cluster.support import Clients, opened_clients


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    """A redis-server of this module's own, on a free port (never the machine's 6379)."""
    with RedisServer() as server:
        yield server


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    """Opens WebSocket clients; every one is closed when the test ends."""
    async with opened_clients() as opened:
        yield opened
