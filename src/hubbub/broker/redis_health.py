"""Lease, heartbeat, reaping and recovery of a Redis node.

Each node holds a lease renewed by a heartbeat; a node that stops renewing it (killed)
is reaped by the others: its connections leave their rooms and users who had no other
connection go offline. An offline decision still waiting out its grace on a node that
stops or dies is made by the others' heartbeat. After an outage the node rewrites its
state. A subscription that goes silent while commands still work (a "deaf" node) is
detected by a ping through its own channel and rebuilt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

from hubbub.broker import redis_scripts as lua
from hubbub.broker.base import Member, Publication
from hubbub.broker.redis_link import RedisError, member_blob, member_from_blob, now_ms, text
from hubbub.broker.redis_pubsub import RedisPubSub

logger = logging.getLogger("hubbub.broker.redis")


class RedisHealth(RedisPubSub):
    """The node's lease and the cluster's housekeeping, run by the heartbeat."""

    async def _renew_lease(self) -> None:
        assert self._redis is not None
        await self._redis.zadd(f"{self.ns}:nodes", {self.node_id: int((time.time() + self.lease) * 1000)})

    async def _beat_forever(self) -> None:
        # Not `while True`: on Python 3.11 redis-py's asyncio.wait_for can swallow stop()'s cancel.
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.heartbeat)
            self._wake.clear()
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
                await self._redis.eval(lua.JOIN, 0, self.ns, room, member.client_id, member_blob(member))
            for raw in await self._redis.smembers(f"{self.ns}:crooms:{member.client_id}"):
                if text(raw) not in self._member_rooms.get(member.client_id, ()):  # left while Redis was away
                    await self._redis.eval(lua.LEAVE, 0, self.ns, text(raw), member.client_id)
        for client_id, orphan in list(self._orphans.items()):  # Redis may have kept them (persistence, failover)
            gone = await self._redis.eval(
                lua.UNREGISTER, 0, self.ns, client_id, self.node_id, orphan.user_id or "", 0, "", now_ms()
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
        now = now_ms()
        for raw in await self._redis.zrangebyscore(f"{self.ns}:nodes", "-inf", now - 1):
            dead = text(raw)
            if dead == self.node_id:
                continue
            out = await self._redis.eval(lua.REAP_NODE, 0, self.ns, dead, now)
            if out:
                logger.info("reaped node %s", dead)
            for i in range(0, len(out), 3):
                kind, key, blob = text(out[i]), text(out[i + 1]), out[i + 2]
                if kind == "leave":
                    member = member_from_blob(blob)
                    await self._publish_now(self._room_channel(key), _presence_leave(key, member, "reaper"))
                elif kind == "offline" and self._listener is not None:
                    self._listener.user_offline(key)

    async def _sweep_leaving(self) -> None:
        """Offline decisions that are due but were not made (their node stopped or died within the grace)."""
        assert self._redis is not None
        for raw in await self._redis.eval(lua.SWEEP_LEAVING, 0, self.ns, now_ms()):
            if self._listener is not None:
                self._listener.user_offline(text(raw))


def _presence_leave(room: str, member: Member, origin: str) -> Publication:
    from hubbub.protocol import envelope as env

    return Publication(
        kind="room",
        target=room,
        envelope={"type": env.PRESENCE, "data": {"room": room, "action": "leave", **member.who()}},
        channel_only=True,
        origin=origin,
    )
