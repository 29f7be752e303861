"""The Redis engine: many worker processes and machines behave as one server.

- Publications go through Redis pub/sub (`redis_pubsub`; sharded pub/sub on a Redis
  Cluster, `redis_shards`).
- Membership, users and presence live in Redis, changed by Lua scripts
  (`redis_scripts`, `redis_members`), so limits and online/offline decisions are
  cluster-wide and happen once.
- Each node holds a lease renewed by a heartbeat; a node that stops renewing it
  is reaped by the others (`redis_health`).
- Outages and stalls: local clients keep being served; the node finds out within a
  heartbeat, reports not ready and stops waiting on Redis, then rewrites its state
  when Redis answers again. Cross-node publications that Redis did not carry within
  `publish_timeout` are lost (counted in `lost_publications`), never delivered late.
"""

from __future__ import annotations

import asyncio
import contextlib

from hubbub.broker.base import Broker, ClusterListener, Member
from hubbub.broker.redis_link import RedisClusterException, RedisError, member_from_blob, text
from hubbub.broker.redis_members import RedisMembership, _in_task
from hubbub.broker.redis_sharded import ShardedLedger
from hubbub.errors import BrokerUnavailable


class RedisBroker(RedisMembership, Broker):
    """A broker on a Redis server or a Redis Cluster (redis-py asyncio client; see `redis_target` for URLs)."""

    is_cluster = True

    async def probe(self) -> None:
        client = self.target.client(max_connections=2, socket_timeout=self.socket_timeout)
        try:
            await client.ping()
        except (RedisError, RedisClusterException, OSError) as exc:
            raise BrokerUnavailable(f"cannot reach Redis at {self.url}: {exc}") from None
        finally:
            await client.aclose()

    async def start(self, listener: ClusterListener) -> None:
        self._listener = listener
        # One server: a blocking pool of 64, so a burst of joins/leaves waits for a free connection instead
        # of failing with "Too many connections" (which would look like an outage). A cluster client's
        # pools do not block: it gets more connections per master.
        self._redis = self.target.client(
            max_connections=256 if self.target.cluster else 64, socket_timeout=self.socket_timeout
        )
        try:
            await self._redis.ping()
            self._connected = True
            await self._claim()
            if self._sharded is not None:  # a failover from now on may lose this node's writes
                self._cluster_epoch = await self._sharded.cluster_epoch()
        except (RedisError, RedisClusterException, OSError) as exc:
            self._connected = False
            await self._redis.aclose()
            raise BrokerUnavailable(f"cannot reach Redis at {self.url}: {exc}") from None
        self._listen_task = asyncio.create_task(self._listen_forever(), name="hubbub-redis-listen")
        self._beat_task = asyncio.create_task(self._beat_forever(), name="hubbub-redis-heartbeat")
        self._start_lease_keeper()
        await asyncio.wait_for(self._subscribed_event.wait(), 5.0)

    async def stop(self) -> None:
        self._stopping = True
        if self._keeper is not None:
            await asyncio.to_thread(self._keeper.stop)
        self._start_flush()  # publications made before the stop still leave
        await asyncio.gather(*self._flushes, return_exceptions=True)
        for task in (self._listen_task, self._beat_task, self._renewal, *self._tasks):
            if task is not None:
                task.cancel()
        for task in (self._listen_task, self._beat_task, self._renewal, *self._tasks):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._redis is not None:
            await self._scripts.drain()
            with contextlib.suppress(RedisError, RedisClusterException, OSError):
                members = list(self._members.values())
                await asyncio.gather(*(self.unregister(member, []) for member in members))
                if self._sharded is not None:
                    await self._sharded.stop(self._epoch)
                else:
                    await self._redis.zrem(f"{self.prefix}:nodes", self.node_id)
                    await self._redis.hdel(f"{self.prefix}:epochs", self.node_id)
                    await self._redis.delete(f"{self.prefix}:conns:{self.node_id}")
            # Offline decisions still pending here are made by the other nodes (`SWEEP_LEAVING`; on a cluster,
            # the node's slot is cleaned up by another as an orphan's, and they adopt its pending decisions).
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._redis.aclose()
        self._connected = False
        self._subscribed_ok = False

    def _shards(self) -> ShardedLedger | None:
        """On a Redis Cluster the sharded membership (BrokerUnavailable while Redis is unreachable), else None."""
        if self._sharded is None:
            return None
        self._client()
        return self._sharded

    @_in_task
    async def clients(self) -> list[str]:
        if (shards := self._shards()) is not None:
            return await shards.clients()
        redis = self._client()
        out: list[str] = []
        for node in await self._live_nodes():
            out.extend(text(key) for key in await redis.hkeys(f"{self.prefix}:conns:{node}"))
        return out

    @_in_task
    async def connection_count(self) -> int:
        if (shards := self._shards()) is not None:
            return await shards.connection_count()
        redis = self._client()
        nodes = await self._live_nodes()
        async with redis.pipeline(transaction=False) as pipe:
            for node in nodes:
                pipe.hlen(f"{self.prefix}:conns:{node}")
            counts = await pipe.execute()
        return int(sum(counts))

    @_in_task
    async def locate(self, client_id: str) -> Member | None:
        local = self._members.get(client_id)
        if local is not None:
            return local
        if (shards := self._shards()) is not None:
            return await shards.locate(client_id)
        redis = self._client()
        for node in await self._live_nodes():
            blob = await redis.hget(f"{self.prefix}:conns:{node}", client_id)
            if blob is not None:
                return member_from_blob(blob)
        return None

    @_in_task
    async def room_members(self, room: str) -> list[Member]:
        if (shards := self._shards()) is not None:
            return await shards.room_members(room)
        values = await self._client().hvals(f"{self.prefix}:room:{room}")
        return [member_from_blob(blob) for blob in values]

    @_in_task
    async def in_room(self, room: str, client_id: str) -> bool:
        if (shards := self._shards()) is not None:
            return await shards.in_room(room, client_id)
        return bool(await self._client().hexists(f"{self.prefix}:room:{room}", client_id))

    @_in_task
    async def room_count(self, room: str) -> int:
        if (shards := self._shards()) is not None:
            return await shards.room_count(room)
        return int(await self._client().hlen(f"{self.prefix}:room:{room}"))

    @_in_task
    async def rooms(self) -> list[str]:
        if (shards := self._shards()) is not None:
            return await shards.rooms()
        return [text(raw) for raw in await self._client().smembers(f"{self.prefix}:rooms")]

    @_in_task
    async def user_clients(self, user_id: str) -> list[str]:
        if (shards := self._shards()) is not None:
            return await shards.user_clients(user_id)
        return [text(raw) for raw in await self._client().hkeys(f"{self.prefix}:user:{user_id}")]

    @_in_task
    async def is_online(self, user_id: str) -> bool:
        if (shards := self._shards()) is not None:
            return await shards.is_online(user_id)
        return bool(await self._client().sismember(f"{self.prefix}:online", user_id))

    @_in_task
    async def online_users(self) -> list[str]:
        if (shards := self._shards()) is not None:
            return await shards.online_users()
        return [text(raw) for raw in await self._client().smembers(f"{self.prefix}:online")]

    @_in_task
    async def add_dropped(self, count: int) -> None:
        if count:
            await self._client().incrby(f"{self.prefix}:dropped", count)

    @_in_task
    async def dropped_count(self) -> int:
        return int(await self._client().get(f"{self.prefix}:dropped") or 0)
