"""The Redis inbox engine when Redis is gone: a clear BrokerUnavailable, and it works again once Redis is back."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from hubbub.errors import BrokerUnavailable
from hubbub.inbox.redis import RedisInboxStore
from hubbub.testing import RedisServer


async def test_a_durable_write_without_redis_raises_broker_unavailable_until_it_is_back() -> None:
    with RedisServer() as server:
        client = aioredis.from_url(server.url, socket_connect_timeout=1.0)
        store = RedisInboxStore(client, namespace="gone")
        await store.start()
        assert await store.append("alice", b"{}") == 1
        server.stop()
        with pytest.raises(BrokerUnavailable, match="cannot reach the Redis inbox"):
            await store.append("alice", b"{}")
        with pytest.raises(BrokerUnavailable):
            await store.backlog("alice", "phone")
        server.start()  # empty: this server keeps nothing on disk
        assert await store.append("alice", b"{}") == 1
        await store.close()
        await client.aclose()
