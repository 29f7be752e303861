"""Sharded pub/sub on a Redis Cluster: SSUBSCRIBE on each slot's master, SPUBLISH grouped by slot.

A shard channel is served only by the master of its hash slot, so a node holds one
subscription connection per master that owns any of its channels, and reads them all
into one queue (`ShardedSubscription`, the same calls the engine makes on a redis-py
`PubSub`). When a connection breaks (a master died), a master answers MOVED, or Redis
tells it a channel's slot moved away (an unasked `sunsubscribe`), the subscription fails
as a whole; the engine makes a new one, which first refreshes the slot map, so it lands
on the promoted replica. Publications are sent per slot: one `PUBLISH` script call per
slot in one cluster pipeline (each call stays within its slot).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

_KINDS = {b"smessage": "message", b"ssubscribe": "subscribe", b"sunsubscribe": "unsubscribe"}


def slot_of(channel: str) -> int:
    """The hash slot of a channel or key."""
    return int(key_slot(channel.encode()))


class ShardedSubscription:
    """Shard channels subscribed on their masters, read as one stream of messages."""

    def __init__(self, cluster: Any) -> None:
        self._cluster = cluster
        self._shards: dict[str, Any] = {}
        """Master name -> its PubSub."""
        self._readers: set[asyncio.Task[None]] = set()
        self._owner: dict[str, str] = {}
        """Channel -> the master it was subscribed on."""
        self._leaving: set[str] = set()
        self._queue: asyncio.Queue[dict[str, Any] | BaseException] = asyncio.Queue()

    async def refresh(self) -> None:
        """Read the slot map again (after a failover the promoted replica serves the slots)."""
        await self._cluster.nodes_manager.initialize()

    async def subscribe(self, *channels: str) -> None:
        """SSUBSCRIBE each channel on its slot's master (one command per slot)."""
        by_slot: dict[int, list[str]] = defaultdict(list)
        for channel in channels:
            by_slot[slot_of(channel)].append(channel)
        for group in by_slot.values():
            node = self._cluster.get_node_from_key(group[0])
            assert node is not None
            pubsub = self._shard(node)
            self._leaving.difference_update(group)
            await pubsub.ssubscribe(*group)
            for channel in group:
                self._owner[channel] = node.name

    async def unsubscribe(self, *channels: str) -> None:
        """SUNSUBSCRIBE each channel where it was subscribed."""
        for channel in channels:
            name = self._owner.pop(channel, None)
            if name is not None and name in self._shards:
                self._leaving.add(channel)
                await self._shards[name].sunsubscribe(channel)

    def _shard(self, node: ClusterNode) -> Any:
        pubsub = self._shards.get(node.name)
        if pubsub is None:
            kwargs = {k: v for k, v in node.connection_kwargs.items() if k != "event_dispatcher"}
            kwargs["retry"] = Retry(NoBackoff(), 0)  # a broken shard fails now: the engine resubscribes
            pool = aioredis.ConnectionPool(connection_class=node.connection_class, **kwargs)
            pubsub = aioredis.Redis(connection_pool=pool).pubsub()
            self._shards[node.name] = pubsub
            reader = asyncio.create_task(self._read(pubsub), name=f"hubbub-redis-shard-{node.name}")
            self._readers.add(reader)
        return pubsub

    async def _read(self, pubsub: Any) -> None:
        try:
            while True:
                if pubsub.connection is None:
                    await asyncio.sleep(0.01)  # its first SSUBSCRIBE is on its way
                    continue
                message = await pubsub.get_message(timeout=1.0)
                if message is not None:
                    self._queue.put_nowait(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the engine makes a new subscription
            self._queue.put_nowait(exc)

    async def get_message(self, timeout: float) -> dict[str, Any] | None:
        """The next message of any shard (types as a plain subscription's: message, subscribe,
        unsubscribe), None after `timeout`; raises what broke a shard's connection."""
        try:
            async with asyncio.timeout(timeout):
                item = await self._queue.get()
        except TimeoutError:
            return None
        if isinstance(item, BaseException):
            raise item
        kind = _KINDS.get(item["type"] if isinstance(item["type"], bytes) else str(item["type"]).encode())
        if kind is None:
            return None
        channel = item["channel"].decode() if isinstance(item["channel"], bytes) else str(item["channel"])
        if kind == "unsubscribe":
            if channel not in self._leaving:  # Redis took it from us: its slot moved to another master
                raise RedisConnectionError(f"the slot of {channel} moved: resubscribing")
            self._leaving.discard(channel)
        return {**item, "type": kind}

    async def aclose(self) -> None:
        """Stop reading and close every shard connection."""
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        for pubsub in self._shards.values():
            with contextlib.suppress(Exception):
                await pubsub.aclose()
                await pubsub.connection_pool.disconnect()
        self._shards.clear()


async def publish_sharded(
    cluster: RedisCluster, script: str, sha: str, deadline: int, entries: list[tuple[str, bytes]]
) -> int:
    """Run the publish script once per slot (ARGV: deadline, channel, payload, ...) in one pipeline;
    returns how many publications Redis sent (a slot whose call failed or came too late sends none)."""
    by_slot: dict[int, list[tuple[str, bytes]]] = defaultdict(list)
    for channel, payload in entries:
        by_slot[slot_of(channel)].append((channel, payload))
    groups = list(by_slot.values())
    results = await _run_groups(cluster, sha, deadline, groups)
    missing = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
    if missing:  # a promoted replica or a restarted master does not know the script yet
        await cluster.script_load(script)
        retried = await _run_groups(cluster, sha, deadline, [groups[i] for i in missing])
        for i, result in zip(missing, retried, strict=True):
            results[i] = result
    return sum(len(group) for group, result in zip(groups, results, strict=True) if result == 1)


async def _run_groups(
    cluster: RedisCluster, sha: str, deadline: int, groups: list[list[tuple[str, bytes]]]
) -> list[Any]:
    async with cluster.pipeline(transaction=False) as pipe:
        for group in groups:
            args: list[Any] = [deadline]
            for channel, payload in group:
                args.extend((channel, payload))
            pipe.execute_command("EVALSHA", sha, 1, group[0][0], *args)
        return list(await pipe.execute(raise_on_error=False))
