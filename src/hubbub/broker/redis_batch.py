"""Script calls batched into pipelines: one round trip for everything asked in a loop iteration.

Every connection that opens or closes, joins or leaves a room runs one Lua script
in Redis. Sent one by one, redis-py spends ~150 µs of this process's CPU on each
(measured: 10,000 connections took 3.3 s to take out of Redis at shutdown);
pipelined, ~26 µs. Calls are sent in the order they were made, one pipeline at a
time, so a connection's register, joins and unregister reach Redis in order.
Scripts go by their SHA1 (EVALSHA); a Redis that lost them (restarted) gets them
loaded again and the calls retried. On a Redis Cluster (`routed`) each call names its
first argument as its key, so it runs on the master of that slot; the scripts build
every key they touch from that argument, hash tag included, so they stay in its slot.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

Call = tuple[str, tuple[Any, ...], "asyncio.Future[Any]"]


def sha1(script: str) -> str:
    """The SHA1 Redis knows a script by."""
    return hashlib.sha1(script.encode()).hexdigest()


class ScriptBatch:
    """Runs Lua scripts through pipelines; `client()` gives the current connection (None: unreachable)."""

    __slots__ = ("_client", "_in_flight", "_queue", "_routed", "_scheduled", "_sender", "_shas")

    def __init__(self, client: Callable[[], aioredis.Redis | None], *, routed: bool = False) -> None:
        self._client = client
        self._routed = routed
        self._queue: list[Call] = []
        self._scheduled = False
        self._sender: asyncio.Task[None] | None = None
        self._shas: dict[str, str] = {}
        self._in_flight: list[Call] = []

    async def call(self, script: str, *args: Any) -> Any:
        """Run `script` with `args` (no keys; routed by `args[0]` on a cluster); raises RedisError/OSError
        like a direct call."""
        return await self.submit(script, *args)

    def submit(self, script: str, *args: Any) -> asyncio.Future[Any]:
        """Queue a call now (calls run in the order they were submitted); its future gets the result."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((script, args, future))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start)
        return future

    @property
    def idle(self) -> bool:
        """Whether no call is queued or in flight."""
        return not self._queue and self._sender is None

    def abandon(self, exc: BaseException) -> None:
        """Redis stopped answering: fail every call not answered yet, so no caller waits on it any longer.
        Calls not sent yet are dropped; the batch in flight still runs if Redis gets to it."""
        queued, self._queue = self._queue, []
        _fail(queued, exc)
        _fail(self._in_flight, exc)

    def _start(self) -> None:
        self._scheduled = False
        if self._sender is None and self._queue:
            self._sender = asyncio.create_task(self._send())

    async def _send(self) -> None:
        batch: list[Call] = []
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                await self._run(batch)
        finally:
            self._sender = None
            _fail(batch, ConnectionError("Redis calls were cancelled"))  # only those still unanswered

    async def _run(self, batch: list[Call]) -> None:
        client = self._client()
        if client is None:
            _fail(batch, ConnectionError("Redis is unreachable"))
            return
        self._in_flight = batch
        try:
            results = await self._execute(client, batch)
            missing = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
            if missing:  # Redis restarted and forgot the scripts: load them and run those calls again
                for script in {batch[i][0] for i in missing}:
                    await client.script_load(script)
                retried = await self._execute(client, [batch[i] for i in missing])
                for i, result in zip(missing, retried, strict=True):
                    results[i] = result
        except (RedisError, RedisClusterException, OSError) as exc:
            _fail(batch, exc)
            return
        finally:
            self._in_flight = []
        for (_, _, future), result in zip(batch, results, strict=True):
            if future.done():
                continue  # the caller gave up waiting
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _execute(self, client: aioredis.Redis, batch: list[Call]) -> list[Any]:
        if not self._routed:
            return await self._pipeline(client, batch)
        try:
            results = await self._pipeline(client, batch)
        except RedisConnectionError:
            results = [RedisConnectionError("the connection broke")] * len(batch)
        broken = [i for i, result in enumerate(results) if isinstance(result, RedisConnectionError)]
        if broken:
            # A master died and a replica took over its slots, but the cluster client still held a
            # connection to the dead one: read the slot map again and send those calls once more. A call the
            # dead master ran (and replicated) just before dying runs twice (docs/guide.md, Redis Cluster).
            await client.nodes_manager.initialize()  # type: ignore[attr-defined]
            retried = await self._pipeline(client, [batch[i] for i in broken])
            for i, result in zip(broken, retried, strict=True):
                results[i] = result
        return results

    async def _pipeline(self, client: aioredis.Redis, batch: list[Call]) -> list[Any]:
        async with client.pipeline(transaction=False) as pipe:
            for script, args, _ in batch:
                sha = self._shas.get(script)
                if sha is None:
                    sha = self._shas[script] = sha1(script)
                if self._routed:  # a cluster pipeline refuses evalsha() by name, not the command
                    pipe.execute_command("EVALSHA", sha, 1, args[0], *args)
                else:
                    pipe.evalsha(sha, 0, *args)
            return list(await pipe.execute(raise_on_error=False))

    async def drain(self) -> None:
        """Wait until every call made so far has been answered."""
        while self._sender is not None or self._queue:
            if self._sender is None:
                self._start()
            sender = self._sender
            if sender is not None:
                await asyncio.gather(sender, return_exceptions=True)


def _fail(batch: list[Call], exc: BaseException) -> None:
    for _, _, future in batch:
        if not future.done():
            future.set_exception(exc)
