"""The Redis engine: many worker processes and machines behave as one server.

- Publications go through Redis pub/sub: one channel per room (a node subscribes
  to the rooms it has members in), one for everything else. A broadcast crosses
  Redis once and each node fans it out locally. Publishes are pipelined: all
  those made in one event-loop iteration leave in one round trip.
- Membership, users and presence live in Redis, changed by Lua scripts
  (`redis_scripts`), so limits and online/offline decisions are cluster-wide and
  happen once.
- Each node holds a lease renewed by a heartbeat; a node that stops renewing it
  (killed) is reaped by the others: its connections leave their rooms and users
  who had no other connection go offline. An offline decision still waiting out
  its grace on a node that stops or dies is made by the others' heartbeat.
- Outages: local clients keep being served; the node reconnects with backoff,
  resubscribes, rewrites its state, and reports not ready meanwhile. Cross-node
  publications made while Redis is down are lost (counted in `lost_publications`),
  not queued. A subscription that goes silent while commands still work (a
  "deaf" node) is detected by a ping through its own channel and rebuilt.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from hubbub.broker import redis_scripts as lua
from hubbub.broker.base import Broker, ClusterListener, Member, Publication, Registration, new_node_id
from hubbub.errors import BrokerUnavailable, ConfigurationError

logger = logging.getLogger("hubbub.broker.redis")

try:
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    from hubbub.broker.redis_batch import ScriptBatch
    from hubbub.broker.redis_wire import Channels, pack, unpack
except ImportError:  # pragma: no cover - checked when a RedisBroker is made
    aioredis = None  # type: ignore[assignment]


P = ParamSpec("P")
R = TypeVar("R")


def _in_task(method: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Run a Redis operation inside an asyncio Task.

    Handlers and the Hub's broker writes start eagerly (`hubbub._eager`): they run outside
    any Task until they first wait. redis-py opens a new connection under asyncio.timeout(),
    which needs a current Task (RuntimeError, raised as ConnectionError, otherwise), so the
    operation yields once first and goes on in the Task that carries the coroutine.
    """

    @functools.wraps(method)
    async def in_task(*args: P.args, **kwargs: P.kwargs) -> R:
        if asyncio.current_task() is None:
            await asyncio.sleep(0)
        return await method(*args, **kwargs)

    return in_task


def _member_blob(member: Member) -> str:
    return json.dumps(
        {"c": member.client_id, "n": member.node_id, "u": member.user_id, "i": dict(member.info)},
        separators=(",", ":"),
    )


def _member_from_blob(blob: bytes | str) -> Member:
    raw = json.loads(blob)
    return Member(raw["c"], raw["n"], raw.get("u"), raw.get("i") or {})


class RedisBroker(Broker):
    """A broker on a Redis server (redis-py asyncio client)."""

    is_cluster = True

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "hubbub",
        node_timeout: float = 5.0,
        presence_grace: float = 2.0,
        reconnect_max: float = 5.0,
    ) -> None:
        if aioredis is None:
            raise ConfigurationError("the Redis broker needs redis and msgpack: pip install 'hubbub[redis]'")
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigurationError(f"not a Redis URL: {url!r} (expected redis://HOST:PORT/DB)")
        url, options = _split_options(url)
        namespace = options.get("namespace", namespace)
        node_timeout = float(options.get("node_timeout", node_timeout))
        if node_timeout <= 0:
            raise ConfigurationError("node_timeout must be positive")
        self.url = url
        self.ns = namespace
        self._channels = Channels(namespace)
        self.node_id = new_node_id()
        self.node_timeout = node_timeout
        """A killed node's connections are gone from the cluster within this many seconds."""
        self.lease = node_timeout * 0.75
        self.heartbeat = node_timeout / 4
        self.presence_grace = presence_grace
        self.reconnect_max = reconnect_max
        self.lost_publications = 0
        """Publications that could not be sent because Redis was unreachable."""
        self.reconnects = 0
        """How many times the subscription was rebuilt."""
        self._redis: aioredis.Redis | None = None
        self._listener: ClusterListener | None = None
        self._members: dict[str, Member] = {}
        self._orphans: dict[str, Member] = {}
        """Connections that closed while Redis was unreachable: taken out of Redis once it is back."""
        self._local_rooms: dict[str, set[str]] = {}
        self._member_rooms: dict[str, set[str]] = {}
        self._subscribed: set[str] = set()
        self._pubsub: Any = None
        self._outgoing: list[tuple[str, bytes]] = []
        self._flush_scheduled = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._flushes: set[asyncio.Task[None]] = set()
        self._listen_task: asyncio.Task[None] | None = None
        self._beat_task: asyncio.Task[None] | None = None
        self._connected = False
        self._subscribed_ok = False
        self._stopping = False
        self._ping_sent: str | None = None
        self._ping_sent_at = 0.0
        self._needs_resync = False
        self._subscribed_event = asyncio.Event()
        self._confirmations: dict[tuple[str, str], asyncio.Future[None]] = {}
        self._recovering = asyncio.Lock()
        self._scripts = ScriptBatch(lambda: self._redis if self._connected else None)

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

    # ---- lifecycle -----------------------------------------------------------------

    async def probe(self) -> None:
        client = aioredis.from_url(self.url, socket_connect_timeout=2.0, socket_timeout=5.0)
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"cannot reach Redis at {self.url}: {exc}") from None
        finally:
            await client.aclose()

    async def start(self, listener: ClusterListener) -> None:
        self._listener = listener
        try:
            # A blocking pool: a burst of joins/leaves waits for a free connection instead of
            # failing with "Too many connections" (which would look like an outage).
            pool = aioredis.BlockingConnectionPool.from_url(
                self.url, max_connections=64, timeout=10.0, socket_connect_timeout=2.0, socket_timeout=5.0
            )
            self._redis = aioredis.Redis(connection_pool=pool)
        except ValueError as exc:
            raise ConfigurationError(f"bad Redis URL {self.url!r}: {exc}") from None
        try:
            await self._redis.ping()
            await self._renew_lease()
        except (RedisError, OSError) as exc:
            await self._redis.aclose()
            raise BrokerUnavailable(f"cannot reach Redis at {self.url}: {exc}") from None
        self._connected = True
        self._listen_task = asyncio.create_task(self._listen_forever(), name="hubbub-redis-listen")
        self._beat_task = asyncio.create_task(self._beat_forever(), name="hubbub-redis-heartbeat")
        await asyncio.wait_for(self._subscribed_event.wait(), 5.0)

    async def stop(self) -> None:
        self._stopping = True
        self._start_flush()  # publications made before the stop still leave
        await asyncio.gather(*self._flushes, return_exceptions=True)
        for task in (self._listen_task, self._beat_task, *self._tasks):
            if task is not None:
                task.cancel()
        for task in (self._listen_task, self._beat_task, *self._tasks):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._redis is not None:
            await self._scripts.drain()
            with contextlib.suppress(RedisError, OSError):
                members = list(self._members.values())
                await asyncio.gather(*(self.unregister(member, []) for member in members))
                await self._redis.zrem(f"{self.ns}:nodes", self.node_id)
                await self._redis.delete(f"{self.ns}:conns:{self.node_id}")
            # Offline decisions still pending here are made by the other nodes' sweep (`SWEEP_LEAVING`).
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._redis.aclose()
        self._connected = False
        self._subscribed_ok = False

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- heartbeat, reaping, resync ----------------------------------------------------

    async def _renew_lease(self) -> None:
        assert self._redis is not None
        await self._redis.zadd(f"{self.ns}:nodes", {self.node_id: int((time.time() + self.lease) * 1000)})

    async def _beat_forever(self) -> None:
        # Not `while True`: on Python 3.11 redis-py's asyncio.wait_for can swallow stop()'s cancel.
        while not self._stopping:
            await asyncio.sleep(self.heartbeat)
            try:
                await self._renew_lease()
                self._connected = True
                if self._needs_resync:
                    await self._recover()
                await self._flush_dropped()
                await self._check_deaf()
                await self._reap()
                await self._sweep_leaving()
            except (RedisError, OSError) as exc:
                if self._connected:
                    logger.warning("Redis unreachable (%s); serving local clients only", exc)
                self._connected = False
                self._needs_resync = True
                self._ping_sent = None

    async def _recover(self) -> None:
        """After an outage: renew the lease and rewrite this node's state, once."""
        async with self._recovering:
            if not self._needs_resync:
                return
            try:
                await self._renew_lease()
                await self._resync()
            except (RedisError, OSError) as exc:
                logger.warning("could not rewrite node %s state yet: %s", self.node_id, exc)
                return
            self._connected = True
            self._needs_resync = False

    async def _resync(self) -> None:
        """Rewrite this node's connections and memberships (a reaper may have removed them), and take
        out the connections and memberships that ended while Redis was unreachable (it may have kept them)."""
        assert self._redis is not None
        for member in list(self._members.values()):
            online = await self._redis.eval(lua.REGISTER, 0, *self._register_args(member, None, None))
            if online == 1 and self._listener is not None and member.user_id is not None:
                self._listener.user_online(member.user_id)
            for room in self._member_rooms.get(member.client_id, ()):
                await self._redis.eval(lua.JOIN, 0, self.ns, room, member.client_id, _member_blob(member))
            for raw in await self._redis.smembers(f"{self.ns}:crooms:{member.client_id}"):
                if _text(raw) not in self._member_rooms.get(member.client_id, ()):  # left while Redis was away
                    await self._redis.eval(lua.LEAVE, 0, self.ns, _text(raw), member.client_id)
        for client_id, orphan in list(self._orphans.items()):  # Redis may have kept them (persistence, failover)
            gone = await self._redis.eval(
                lua.UNREGISTER, 0, self.ns, client_id, self.node_id, orphan.user_id or "", 0, "", _now_ms()
            )
            del self._orphans[client_id]
            if gone == 2 and self._listener is not None and orphan.user_id is not None:
                self._listener.user_offline(orphan.user_id)
        logger.info("Redis state of node %s rewritten (%d connections)", self.node_id, len(self._members))

    async def _flush_dropped(self) -> None:
        if self._listener is None:
            return
        count = self._listener.drain_dropped()
        if count:
            assert self._redis is not None
            await self._redis.incrby(f"{self.ns}:dropped", count)

    async def _check_deaf(self) -> None:
        """Publish a ping to our own channel; if the last one never came back, rebuild the subscription."""
        assert self._redis is not None
        now = time.monotonic()
        if self._ping_sent is not None and now - self._ping_sent_at > self.heartbeat * 2:
            logger.warning("subscription of node %s is deaf; resubscribing", self.node_id)
            self._ping_sent = None
            if self._listen_task is not None:
                self._listen_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._listen_task
            self._listen_task = asyncio.create_task(self._listen_forever(), name="hubbub-redis-listen")
            return
        if self._ping_sent is None:
            token = uuid.uuid4().hex
            self._ping_sent = token
            self._ping_sent_at = now
            await self._redis.publish(self._node_channel, b"ping:" + token.encode())

    async def _reap(self) -> None:
        assert self._redis is not None
        now = _now_ms()
        for raw in await self._redis.zrangebyscore(f"{self.ns}:nodes", "-inf", now - 1):
            dead = _text(raw)
            if dead == self.node_id:
                continue
            out = await self._redis.eval(lua.REAP_NODE, 0, self.ns, dead, now)
            if out:
                logger.info("reaped node %s", dead)
            for i in range(0, len(out), 3):
                kind, key, blob = _text(out[i]), _text(out[i + 1]), out[i + 2]
                if kind == "leave":
                    member = _member_from_blob(blob)
                    await self._publish_now(self._room_channel(key), _presence_leave(key, member, "reaper"))
                elif kind == "offline" and self._listener is not None:
                    self._listener.user_offline(key)

    async def _sweep_leaving(self) -> None:
        """Offline decisions that are due but were not made (their node stopped or died within the grace)."""
        assert self._redis is not None
        for raw in await self._redis.eval(lua.SWEEP_LEAVING, 0, self.ns, _now_ms()):
            if self._listener is not None:
                self._listener.user_offline(_text(raw))

    # ---- subscription ---------------------------------------------------------------

    async def _listen_forever(self) -> None:
        delay = 0.1
        while not self._stopping:
            pubsub = None
            try:
                assert self._redis is not None
                pubsub = self._redis.pubsub()
                rooms = [self._room_channel(room) for room in self._subscribed]
                await pubsub.subscribe(self._all_channel, self._node_channel, *rooms)
                self._pubsub = pubsub
                self._subscribed_ok = True
                self._subscribed_event.set()
                self._ping_sent = None
                if delay > 0.1:
                    self.reconnects += 1
                    self._needs_resync = True
                    logger.info("node %s resubscribed to Redis", self.node_id)
                    self._spawn(self._recover())
                delay = 0.1
                while not self._stopping:  # as in _beat_forever: a swallowed cancel must not keep us here
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    kind = _text(message["type"])
                    if kind == "message":
                        self._received(message["channel"], message["data"])
                    elif kind in ("subscribe", "unsubscribe"):
                        self._confirmed(kind, _text(message["channel"]))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self._subscribed_ok:
                    logger.warning("subscription of node %s lost: %s", self.node_id, exc)
                self._subscribed_ok = False
                self._pubsub = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.reconnect_max)
            finally:
                self._pubsub = None
                for waiter in self._confirmations.values():
                    if not waiter.done():
                        waiter.set_result(None)  # nobody will confirm now; the resubscription covers it
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _confirmed(self, kind: str, channel: str) -> None:
        waiter = self._confirmations.pop((kind, channel), None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _received(self, channel: bytes, data: bytes) -> None:
        if _text(channel) == self._node_channel:
            if data.startswith(b"ping:") and self._ping_sent == _text(data[5:]):
                self._ping_sent = None
            return
        offset = None
        if data[:1] == b"#":  # "#<offset>:<publication>", published by the history append script
            head, _, data = data.partition(b":")
            offset = int(head[1:]) if head[1:].isdigit() else None
        try:
            publication = unpack(data)
            if offset is not None:
                publication.offset = offset
        except Exception:
            logger.warning("ignored a malformed publication on %s", channel)
            return
        if publication.origin != self.node_id and self._listener is not None:
            self._listener.deliver(publication)

    async def _subscribe(self, room: str) -> None:
        self._subscribed.add(room)
        await self._change_subscription("subscribe", self._room_channel(room))

    async def _unsubscribe(self, room: str) -> None:
        self._subscribed.discard(room)
        await self._change_subscription("unsubscribe", self._room_channel(room))

    async def _change_subscription(self, kind: str, channel: str) -> None:
        """(Un)subscribe and wait until Redis confirms it, so that a publication made after
        `join` returns reaches the new member (and one made after `leave` does not reach us)."""
        pubsub = self._pubsub
        if pubsub is None:
            return  # not listening now: the next subscription (after recovery) includes the room
        confirmed = asyncio.get_running_loop().create_future()
        self._confirmations[(kind, channel)] = confirmed
        try:
            if kind == "subscribe":
                await pubsub.subscribe(channel)
            else:
                await pubsub.unsubscribe(channel)
            await asyncio.wait_for(asyncio.shield(confirmed), self.heartbeat * 2)
        except (RedisError, OSError, TimeoutError):
            logger.warning("Redis did not confirm %s of %s on node %s", kind, channel, self.node_id)
        finally:
            if self._confirmations.get((kind, channel)) is confirmed:
                del self._confirmations[(kind, channel)]

    # ---- publishing ---------------------------------------------------------------------

    async def publish(self, publication: Publication) -> None:
        publication.origin = publication.origin or self.node_id
        self._outgoing.append((self._channels.of(publication), pack(publication)))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._start_flush)

    def _start_flush(self) -> None:
        self._flush_scheduled = False
        if self._flushes:
            return  # the sender in flight takes this batch next: publications stay in order
        task = asyncio.create_task(self._send_outgoing())
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _send_outgoing(self) -> None:
        """Send queued publications one pipelined batch at a time, in the order they were made."""
        while self._outgoing:
            batch, self._outgoing = self._outgoing, []
            await self._flush(batch)

    async def _flush(self, batch: list[tuple[str, bytes]]) -> None:
        if not self._connected or self._redis is None:
            self.lost_publications += len(batch)
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for channel, payload in batch:
                    pipe.publish(channel, payload)
                await pipe.execute()
        except (RedisError, OSError):
            self.lost_publications += len(batch)

    async def _publish_now(self, channel: str, publication: Publication) -> None:
        assert self._redis is not None
        await self._redis.publish(channel, pack(publication))

    # ---- connections --------------------------------------------------------------------

    async def register(
        self, member: Member, *, max_connections: int | None = None, max_per_user: int | None = None
    ) -> Registration:
        if not self._connected or self._redis is None:
            return self._admit_offline(member)
        try:
            result = await self._scripts.call(lua.REGISTER, *self._register_args(member, max_connections, max_per_user))
        except (RedisError, OSError):
            return self._admit_offline(member)
        if result == -1:
            return Registration.OVER_CAPACITY
        if result == -2:
            return Registration.TOO_MANY_FOR_USER
        self._members[member.client_id] = member
        if result == 1 and self._listener is not None and member.user_id is not None:
            self._listener.user_online(member.user_id)
        return Registration.OK

    def _register_args(self, member: Member, max_connections: int | None, max_per_user: int | None) -> list[Any]:
        """The arguments of the REGISTER script (0: no limit)."""
        return [
            self.ns,
            _now_ms(),
            member.client_id,
            self.node_id,
            _member_blob(member),
            member.user_id or "",
            max_connections or 0,
            max_per_user or 0,
        ]

    def _admit_offline(self, member: Member) -> Registration:
        """Redis is unreachable: serve the connection here and write it to Redis on recovery.
        Cluster-wide limits cannot be checked meanwhile; this node's own limits still apply."""
        if self._connected:
            logger.warning("Redis unreachable while admitting a connection; it is recorded on recovery")
        self._connected = False
        self._needs_resync = True
        self._members[member.client_id] = member
        return Registration.OK

    @_in_task
    async def unregister(self, member: Member, rooms: list[str]) -> None:
        self._members.pop(member.client_id, None)
        for room in self._member_rooms.pop(member.client_id, set()):
            await self._forget_local(room, member.client_id)
        if self._redis is None:
            return
        token = uuid.uuid4().hex
        grace_ms = int(self.presence_grace * 1000)
        try:
            result = await self._scripts.call(
                lua.UNREGISTER,
                self.ns,
                member.client_id,
                self.node_id,
                member.user_id or "",
                grace_ms,
                token,
                _now_ms(),
            )
        except (RedisError, OSError):
            self._orphans[member.client_id] = member
            self._needs_resync = True
            return
        if result == 2 and self._listener is not None and member.user_id is not None:
            self._listener.user_offline(member.user_id)
        elif result == 1 and member.user_id is not None:
            self._spawn(self._decide_offline(member.user_id, token))

    async def _decide_offline(self, user_id: str, token: str) -> None:
        await asyncio.sleep(self.presence_grace)
        assert self._redis is not None
        for _ in range(3):
            try:
                gone = await self._redis.eval(lua.OFFLINE_CHECK, 0, self.ns, user_id, token)
            except (RedisError, OSError):
                await asyncio.sleep(self.heartbeat)
                continue
            if gone == 1 and self._listener is not None:
                self._listener.user_offline(user_id)
            return

    @_in_task
    async def join(self, room: str, member: Member) -> None:
        self._member_rooms.setdefault(member.client_id, set()).add(room)
        local = self._local_rooms.setdefault(room, set())
        first = not local
        local.add(member.client_id)
        if first:
            await self._subscribe(room)
        with contextlib.suppress(RedisError, OSError):
            await self._scripts.call(lua.JOIN, self.ns, room, member.client_id, _member_blob(member))

    @_in_task
    async def leave(self, room: str, member: Member) -> None:
        rooms = self._member_rooms.get(member.client_id)
        if rooms is not None:
            rooms.discard(room)
        await self._forget_local(room, member.client_id)
        with contextlib.suppress(RedisError, OSError):
            await self._scripts.call(lua.LEAVE, self.ns, room, member.client_id)

    async def _forget_local(self, room: str, client_id: str) -> None:
        local = self._local_rooms.get(room)
        if local is None:
            return
        local.discard(client_id)
        if not local:
            del self._local_rooms[room]
            await self._unsubscribe(room)

    # ---- queries -------------------------------------------------------------------------

    def _client(self) -> aioredis.Redis:
        if self._redis is None or not self._connected:
            raise BrokerUnavailable("Redis is unreachable")
        return self._redis

    async def _live_nodes(self) -> list[str]:
        return [_text(raw) for raw in await self._client().zrangebyscore(f"{self.ns}:nodes", _now_ms(), "+inf")]

    @_in_task
    async def clients(self) -> list[str]:
        redis = self._client()
        out: list[str] = []
        for node in await self._live_nodes():
            out.extend(_text(key) for key in await redis.hkeys(f"{self.ns}:conns:{node}"))
        return out

    @_in_task
    async def connection_count(self) -> int:
        redis = self._client()
        nodes = await self._live_nodes()
        async with redis.pipeline(transaction=False) as pipe:
            for node in nodes:
                pipe.hlen(f"{self.ns}:conns:{node}")
            counts = await pipe.execute()
        return int(sum(counts))

    @_in_task
    async def locate(self, client_id: str) -> Member | None:
        local = self._members.get(client_id)
        if local is not None:
            return local
        redis = self._client()
        for node in await self._live_nodes():
            blob = await redis.hget(f"{self.ns}:conns:{node}", client_id)
            if blob is not None:
                return _member_from_blob(blob)
        return None

    @_in_task
    async def room_members(self, room: str) -> list[Member]:
        values = await self._client().hvals(f"{self.ns}:room:{room}")
        return [_member_from_blob(blob) for blob in values]

    @_in_task
    async def room_count(self, room: str) -> int:
        return int(await self._client().hlen(f"{self.ns}:room:{room}"))

    @_in_task
    async def rooms(self) -> list[str]:
        return [_text(raw) for raw in await self._client().smembers(f"{self.ns}:rooms")]

    @_in_task
    async def user_clients(self, user_id: str) -> list[str]:
        return [_text(raw) for raw in await self._client().hkeys(f"{self.ns}:user:{user_id}")]

    @_in_task
    async def is_online(self, user_id: str) -> bool:
        return bool(await self._client().sismember(f"{self.ns}:online", user_id))

    @_in_task
    async def online_users(self) -> list[str]:
        return [_text(raw) for raw in await self._client().smembers(f"{self.ns}:online")]

    @_in_task
    async def add_dropped(self, count: int) -> None:
        if count:
            await self._client().incrby(f"{self.ns}:dropped", count)

    @_in_task
    async def dropped_count(self) -> int:
        return int(await self._client().get(f"{self.ns}:dropped") or 0)


_OWN_OPTIONS = ("namespace", "node_timeout")


def _split_options(url: str) -> tuple[str, dict[str, str]]:
    """Take hubbub's own query parameters (namespace, node_timeout) out of a Redis URL."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    own = {key: value for key, value in query if key in _OWN_OPTIONS and value}
    rest = urlencode([(key, value) for key, value in query if key not in _OWN_OPTIONS])
    return urlunsplit(parts._replace(query=rest)), own


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _presence_leave(room: str, member: Member, origin: str) -> Publication:
    from hubbub.protocol import envelope as env

    return Publication(
        kind="room",
        target=room,
        envelope={"type": env.PRESENCE, "data": {"room": room, "action": "leave", **member.who()}},
        channel_only=True,
        origin=origin,
    )
