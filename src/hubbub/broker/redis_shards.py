"""Sharded pub/sub on a Redis Cluster: SSUBSCRIBE on each slot's master, SPUBLISH grouped by slot.

A shard channel is served only by the master of its hash slot, so a node holds one
subscription connection per master that owns any of its channels, and reads them all
into one queue (`ShardedSubscription`, the calls the engine makes on a redis-py `PubSub`).
Each master's connection fails on its own: when it breaks (the master died), a master
answers an SSUBSCRIBE with an error (MOVED), or Redis tells us a channel's slot moved away
(an unasked `sunsubscribe`), the channels it carried are pending, and are subscribed again
with backoff, each time on a freshly read slot map, so they land on the promoted replica.
The channels of the other masters keep delivering meanwhile; the subscription is
`complete` again once nothing is pending. Publications are sent per slot: one `PUBLISH`
script call per slot in one cluster pipeline (each call stays within its slot).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

logger = logging.getLogger("hubbub.broker.redis")

_KINDS = {b"smessage": "message", b"ssubscribe": "subscribe", b"sunsubscribe": "unsubscribe"}
_FAILURES = (RedisError, RedisClusterException, OSError)


def slot_of(channel: str) -> int:
    """The hash slot of a channel or key."""
    return int(key_slot(channel.encode()))


class ShardedSubscription:
    """Shard channels subscribed on their masters, read as one stream of messages.

    `on_health(complete)` is called when the subscription stops being complete (a master's
    connection broke) and when it is complete again (every pending channel subscribed)."""

    def __init__(self, cluster: Any, on_health: Callable[[bool], None], *, max_delay: float = 5.0) -> None:
        self._cluster = cluster
        self._on_health = on_health
        self._max_delay = max_delay
        self._shards: dict[str, Any] = {}
        """Master name -> its PubSub."""
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._connecting: dict[str, asyncio.Lock] = {}
        """Master name -> the lock its PubSub's first command holds: redis-py's PubSub opens its connection
        in its first command, and two commands racing there would each open one, leaving a subscription on
        a connection nobody reads."""
        self._owner: dict[str, str] = {}
        """Channel -> the master it is subscribed on."""
        self._pending: set[str] = set()
        """Channels to subscribe again once their slot's master answers."""
        self._leaving: set[str] = set()
        self._retry: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    @property
    def complete(self) -> bool:
        """Whether every channel asked for is subscribed."""
        return not self._pending

    async def refresh(self) -> None:
        """Read the slot map again (after a failover the promoted replica serves the slots)."""
        await self._cluster.nodes_manager.initialize()

    async def subscribe(self, *channels: str) -> None:
        """SSUBSCRIBE each channel on its slot's master (one command per slot). A channel whose master
        does not answer is pending (`complete` is false) and subscribed later; its confirmation comes now."""
        for group in _by_slot(channels).values():
            self._leaving.difference_update(group)
            try:
                await self._subscribe_group(group)
            except _FAILURES as exc:
                self._set_pending(group, exc)
                for channel in group:  # nobody waits on a master that is down
                    self._queue.put_nowait({"type": "subscribe", "channel": channel, "data": None})

    async def _subscribe_group(self, group: list[str]) -> None:
        node = self._cluster.get_node_from_key(group[0])
        pubsub = self._shard(node)
        try:
            if pubsub.connection is None:
                async with self._connecting.setdefault(node.name, asyncio.Lock()):
                    await pubsub.ssubscribe(*group)
            else:
                await pubsub.ssubscribe(*group)
        except _FAILURES as exc:
            self._lose_shard(node.name, exc)
            raise
        for channel in group:
            self._owner[channel] = node.name
            self._pending.discard(channel)

    async def unsubscribe(self, *channels: str) -> None:
        """SUNSUBSCRIBE each channel where it was subscribed (a pending one is just forgotten)."""
        for channel in channels:
            self._pending.discard(channel)
            name = self._owner.pop(channel, None)
            if name is None or name not in self._shards:
                self._queue.put_nowait({"type": "unsubscribe", "channel": channel, "data": None})
                continue
            self._leaving.add(channel)
            try:
                await self._shards[name].sunsubscribe(channel)
            except _FAILURES:
                self._leaving.discard(channel)
                self._queue.put_nowait({"type": "unsubscribe", "channel": channel, "data": None})
        self._report()

    def _shard(self, node: ClusterNode) -> Any:
        pubsub = self._shards.get(node.name)
        if pubsub is None:
            kwargs = {k: v for k, v in node.connection_kwargs.items() if k != "event_dispatcher"}
            kwargs["retry"] = Retry(NoBackoff(), 0)  # a broken shard fails now: its channels are retried here
            pool = aioredis.ConnectionPool(connection_class=node.connection_class, **kwargs)
            pubsub = aioredis.Redis(connection_pool=pool).pubsub()
            self._shards[node.name] = pubsub
            self._readers[node.name] = asyncio.create_task(
                self._read(node.name, pubsub), name=f"hubbub-redis-shard-{node.name}"
            )
        return pubsub

    async def _read(self, name: str, pubsub: Any) -> None:
        try:
            while True:
                if pubsub.connection is None:
                    await asyncio.sleep(0.01)  # its first SSUBSCRIBE is on its way
                    continue
                message = await pubsub.get_message(timeout=1.0)
                if message is not None:
                    self._take(name, message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure of this master's connection
            self._readers.pop(name, None)  # this task ends here: it must not be cancelled
            self._lose_shard(name, exc)

    def _take(self, name: str, message: dict[str, Any]) -> None:
        raw = message["type"]
        kind = _KINDS.get(raw if isinstance(raw, bytes) else str(raw).encode())
        if kind is None:
            return
        channel = message["channel"].decode() if isinstance(message["channel"], bytes) else str(message["channel"])
        if kind == "unsubscribe":
            if channel not in self._leaving:  # Redis took it from us: its slot moved to another master
                if self._owner.pop(channel, None) is not None:
                    self._set_pending([channel], RedisError(f"the slot of {channel} moved"))
                return
            self._leaving.discard(channel)
        self._queue.put_nowait({**message, "type": kind})

    def _lose_shard(self, name: str, reason: BaseException) -> None:
        """A master's connection failed: close it; the channels it carried are pending."""
        pubsub = self._shards.pop(name, None)
        reader = self._readers.pop(name, None)
        if reader is not None:
            reader.cancel()
        lost = [channel for channel, owner in self._owner.items() if owner == name]
        for channel in lost:
            del self._owner[channel]
        if pubsub is not None:
            asyncio.get_running_loop().create_task(_close(pubsub))
        self._set_pending(lost, reason)

    def _set_pending(self, channels: list[str], reason: BaseException) -> None:
        if not channels:
            return
        if self.complete:
            logger.warning("shard subscription lost (%s): %d channel(s) pending", reason, len(channels))
        self._pending.update(channels)
        self._report()
        if self._retry is None or self._retry.done():
            self._retry = asyncio.get_running_loop().create_task(self._resubscribe())

    def _report(self) -> None:
        self._on_health(self.complete)

    async def _resubscribe(self) -> None:
        """Subscribe the pending channels again, with backoff, on a fresh slot map each time."""
        delay = 0.1
        while self._pending:
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_delay)
            try:
                await self.refresh()
            except _FAILURES:
                continue
            for group in _by_slot(sorted(self._pending)).values():
                with contextlib.suppress(*_FAILURES):
                    await self._subscribe_group(group)
        self._report()

    async def get_message(self, timeout: float) -> dict[str, Any] | None:
        """The next message of any shard (types as a plain subscription's: message, subscribe,
        unsubscribe), None after `timeout`."""
        try:
            async with asyncio.timeout(timeout):
                return await self._queue.get()
        except TimeoutError:
            return None

    async def aclose(self) -> None:
        """Stop reading and retrying, and close every shard connection."""
        tasks = [*self._readers.values(), *([self._retry] if self._retry is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._readers.clear()
        for pubsub in self._shards.values():
            await _close(pubsub)
        self._shards.clear()


def _by_slot(channels: Any) -> dict[int, list[str]]:
    groups: dict[int, list[str]] = defaultdict(list)
    for channel in channels:
        groups[slot_of(channel)].append(channel)
    return groups


async def _close(pubsub: Any) -> None:
    with contextlib.suppress(Exception):
        await pubsub.aclose()
        await pubsub.connection_pool.disconnect()


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
