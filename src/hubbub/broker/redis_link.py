"""The Redis engine's connection state: options, names, the client, the helpers every part shares.

The engine is built in layers, one concern each: `RedisLink` (this module: the client and
the state), `RedisPubSub` (publishing and the subscription), `RedisHealth` (lease, heartbeat,
reaping, recovery), `RedisMembership` (connections, rooms, users) and `RedisBroker`
(`broker/redis.py`: lifecycle and queries).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hubbub.broker.base import ClusterListener, Member, new_node_id
from hubbub.broker.redis_lease import LeaseKeeper
from hubbub.broker.redis_sharded import ShardedLedger
from hubbub.broker.redis_target import RedisTarget
from hubbub.broker.redis_values import member_blob, member_from_blob, text
from hubbub.errors import BrokerUnavailable, ConfigurationError

try:
    import redis.asyncio as aioredis
    from redis.exceptions import NoScriptError, RedisClusterException, RedisError

    from hubbub.broker.redis_batch import ScriptBatch
    from hubbub.broker.redis_wire import Channels, pack, unpack
except ImportError:  # pragma: no cover - checked when a RedisBroker is made
    aioredis = None  # type: ignore[assignment]
    RedisError = NoScriptError = RedisClusterException = OSError  # type: ignore[assignment,misc]
    ScriptBatch = Channels = pack = unpack = None  # type: ignore[assignment,misc]

__all__ = [
    "Channels",
    "NoScriptError",
    "RedisClusterException",
    "RedisError",
    "RedisLink",
    "ScriptBatch",
    "aioredis",
    "member_blob",
    "member_from_blob",
    "pack",
    "text",
    "unpack",
]


class RedisLink:
    """The state of a Redis node: options, the client, local bookkeeping."""

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "hubbub",
        node_timeout: float = 5.0,
        presence_grace: float = 2.0,
        reconnect_max: float = 5.0,
        publish_timeout: float = 1.0,
    ) -> None:
        if aioredis is None:
            raise ConfigurationError("the Redis broker needs redis and msgpack: pip install 'hubbub[redis]'")
        target, options = RedisTarget.parse(url)
        namespace = options.get("namespace", namespace)
        node_timeout = float(options.get("node_timeout", node_timeout))
        if node_timeout <= 0:
            raise ConfigurationError("node_timeout must be positive")
        if publish_timeout <= 0:
            raise ConfigurationError("publish_timeout must be positive")
        self.target = target
        """Where Redis is: one server, or a Redis Cluster (`redis+cluster://` URL)."""
        self.url = target.url
        self.ns = namespace
        self.keys = target.keys(namespace)
        self.prefix = self.keys.members
        """The prefix of the membership keys (`{ns}` on a cluster: they share one hash slot)."""
        self._channels = Channels(namespace, cluster=target.cluster)
        self.node_id = new_node_id()
        self.node_timeout = node_timeout
        """A killed node's connections are gone from the cluster within this many seconds (docs/guide.md)."""
        self.heartbeat = node_timeout / 4
        """Seconds between two checks of this node's lease (and the cluster's housekeeping)."""
        self.lease = node_timeout * 0.75
        """How long a renewal keeps this node alive: three heartbeats."""
        self.check_timeout = self.heartbeat / 2
        """A heartbeat that Redis does not answer within this many seconds marks it unreachable."""
        self.socket_timeout = node_timeout
        """redis-py's bound on any one command (a stalled Redis answers later or not at all)."""
        self.publish_timeout = publish_timeout
        """A publication Redis has not carried within this many seconds is dropped and counted lost."""
        self.presence_grace = presence_grace
        self.reconnect_max = reconnect_max
        self.lost_publications = 0
        self.stale_publications = 0
        self.reconnects = 0
        """How many times the subscription was rebuilt."""
        self.publication_lag: float | None = None
        """Seconds the node's last ping took through Redis pub/sub and back (None before the first)."""
        self._redis: aioredis.Redis | None = None
        self._listener: ClusterListener | None = None
        self._members: dict[str, Member] = {}
        self._local_rooms: dict[str, set[str]] = {}
        self._member_rooms: dict[str, set[str]] = {}
        self._subscribed: set[str] = set()
        self._pubsub: Any = None
        self._outgoing: list[tuple[str, bytes, int]] = []
        """Publications to send: channel, payload, when it was made (ms, Redis's clock)."""
        self._flush_scheduled = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._flushes: set[asyncio.Task[None]] = set()
        self._listen_task: asyncio.Task[None] | None = None
        self._beat_task: asyncio.Task[None] | None = None
        self._renewal: asyncio.Future[Any] | None = None
        """A cluster's `RENEW` call in flight (`RedisHealth._renew`)."""
        self._epoch = ""
        """This node's current epoch in Redis (`redis_scripts`: fencing); every write carries it."""
        self._clock_offset = 0
        """Redis's clock minus this machine's (ms), measured by each heartbeat."""
        self._connected = False
        """Redis answered the last heartbeat (or a later command)."""
        self._subscribed_ok = False
        self._subscription_stale = False
        """A room (un)subscription may not have reached Redis: the subscription is rebuilt on recovery."""
        self._stopping = False
        self._ping_sent: str | None = None
        self._ping_sent_at = 0.0
        self._needs_resync = False
        """This node's state in Redis may differ from its own: rewrite it (`RedisHealth._recover`)."""
        self._subscribed_event = asyncio.Event()
        self._confirmations: dict[tuple[str, str], asyncio.Future[None]] = {}
        self._last_beat = (0.0, 0.0)
        """When the heartbeat last finished (monotonic and wall clock): a long gap means this node was paused."""
        self._reap_after = 0.0
        """No reaping before this monotonic time (others get the chance to renew after a stall or pause)."""
        self._count_mismatch: int | None = None
        self._wake = asyncio.Event()
        """Set to run the heartbeat now (something suggests Redis or this node's state changed)."""
        self._scripts = ScriptBatch(lambda: self._redis if self._connected else None, routed=target.cluster)
        self._sharded = (
            ShardedLedger(self.keys, self.node_id, self._scripts, lambda: self._redis, self._live_nodes)
            if target.cluster
            else None
        )
        """On a Redis Cluster, the membership sharded over hash slots (else the one-server scripts)."""
        self._keeper: LeaseKeeper | None = None
        """Renews the lease from a thread while the loop runs late (`redis_lease`); started with the node."""
        self._cleaning: asyncio.Task[None] | None = None
        """On a cluster, the cleanup after stopped or dead nodes in progress (`RedisHealth._clean_orphans`)."""
        self._cluster_epoch: int | None = None
        """The Redis Cluster's epoch at the last heartbeat: when it grows, a failover happened somewhere."""

    # ---- names -------------------------------------------------------------------

    def _room_channel(self, room: str) -> str:
        return self._channels.room(room)

    @property
    def _all_channel(self) -> str:
        return self._channels.all

    @property
    def _node_channel(self) -> str:
        return self._channels.node(self.node_id)

    @property
    def ready(self) -> bool:
        return self._connected and self._subscribed_ok and not self._needs_resync

    def _redis_now(self) -> int:
        """Now on Redis's clock (ms), as this node estimates it."""
        return int(time.time() * 1000) + self._clock_offset

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Run `coro` as a task of this node (cancelled when it stops)."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _out_of_sync(self) -> None:
        """A write was refused or skipped: rewrite this node's state at the next heartbeat (now, unless
        Redis is known unreachable: then the heartbeat that finds it back does it)."""
        self._needs_resync = True
        if self._connected:
            self._wake.set()

    @property
    def _lease_ms(self) -> int:
        return int(self.lease * 1000)

    def _client(self) -> aioredis.Redis:
        if self._redis is None or not self._connected:
            raise BrokerUnavailable("Redis is unreachable")
        return self._redis

    async def _live_nodes(self) -> list[str]:
        """The nodes whose lease has not expired."""
        nodes = await self._client().zrangebyscore(f"{self.prefix}:nodes", self._redis_now(), "+inf")
        return [text(raw) for raw in nodes]

    async def _eval(self, script: str, *args: Any) -> Any:
        """Run a membership script now (on a cluster, routed by its first argument, the key prefix)."""
        assert self._redis is not None
        if self.target.cluster:
            return await self._redis.eval(script, 1, args[0], *args)
        return await self._redis.eval(script, 0, *args)

    async def _publish_raw(self, channel: str, payload: bytes) -> bool:
        """PUBLISH one payload now; raises when Redis fails. On a cluster, SPUBLISH, and a failure returns
        False instead: the channel's master may be down while the rest of the cluster (and the membership
        slot the heartbeat checks) answers, so it says nothing of whether Redis is reachable."""
        assert self._redis is not None
        if not self.target.cluster:
            await self._redis.publish(channel, payload)
            return True
        try:
            await self._redis.spublish(channel, payload)
        except (RedisError, RedisClusterException, OSError):
            return False
        return True
