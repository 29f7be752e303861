"""Lua script calls of the Redis engine go through pipelines (`ScriptBatch`), against a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from hubbub.broker.redis_batch import ScriptBatch
from hubbub.testing import RedisServer

ECHO_ARGS = "return ARGV"
INCR = "return redis.call('INCR', ARGV[1])"
FAILS = "return redis.error_reply('no such thing')"


@pytest.fixture
async def client(broker_redis: RedisServer) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.Redis.from_url(broker_redis.url)
    await redis.script_flush()
    yield redis
    await redis.aclose()


class CountingClient:
    """The real client, counting the pipelines it opens."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.pipelines = 0

    def pipeline(self, **kwargs: Any) -> Any:
        self.pipelines += 1
        return self.redis.pipeline(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.redis, name)


async def test_calls_made_together_share_one_pipeline_and_keep_their_order(client: aioredis.Redis) -> None:
    counting = CountingClient(client)
    batch = ScriptBatch(lambda: counting)  # type: ignore[arg-type, return-value]
    await client.delete("batch:n")
    results = await asyncio.gather(*(batch.call(INCR, "batch:n") for _ in range(500)))
    assert results == list(range(1, 501))  # executed in the order asked
    # The first pipeline failed with NOSCRIPT (scripts were flushed) and was retried once after loading.
    assert counting.pipelines == 2
    assert await batch.call(INCR, "batch:n") == 501  # loaded now: one pipeline, no retry
    assert counting.pipelines == 3


async def test_a_redis_that_forgot_its_scripts_gets_them_again(client: aioredis.Redis) -> None:
    batch = ScriptBatch(lambda: client)
    assert await batch.call(ECHO_ARGS, "x") == [b"x"]
    await client.script_flush()
    assert await batch.call(ECHO_ARGS, "y") == [b"y"]


async def test_a_failing_script_fails_only_its_own_caller(client: aioredis.Redis) -> None:
    batch = ScriptBatch(lambda: client)
    results = await asyncio.gather(
        batch.call(ECHO_ARGS, "ok"), batch.call(FAILS), batch.call(ECHO_ARGS, "ok too"), return_exceptions=True
    )
    assert results[0] == [b"ok"] and results[2] == [b"ok too"]
    assert isinstance(results[1], ResponseError) and "no such thing" in str(results[1])


async def test_unreachable_redis_fails_every_call_with_a_connection_error() -> None:
    batch = ScriptBatch(lambda: None)
    results = await asyncio.gather(batch.call(ECHO_ARGS), batch.call(ECHO_ARGS), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)


async def test_a_dead_server_fails_the_batch_instead_of_hanging() -> None:
    with RedisServer() as server:
        redis = aioredis.Redis.from_url(server.url, socket_timeout=2)
    batch = ScriptBatch(lambda: redis)  # the server is gone now
    with pytest.raises(RedisError):  # redis-py's ConnectionError
        await asyncio.wait_for(batch.call(ECHO_ARGS), 10)
    await redis.aclose()


async def test_a_caller_that_stops_waiting_does_not_disturb_the_others(client: aioredis.Redis) -> None:
    batch = ScriptBatch(lambda: client)
    gone = asyncio.ensure_future(batch.call(ECHO_ARGS, "gone"))
    kept = asyncio.ensure_future(batch.call(ECHO_ARGS, "kept"))
    await asyncio.sleep(0)
    gone.cancel()
    assert await asyncio.wait_for(kept, 5) == [b"kept"]
    await batch.drain()
    assert gone.cancelled()
