"""Lease, heartbeat, reaping and recovery of a Redis node.

Each heartbeat (every `node_timeout / 4` seconds) a node renews its lease and checks that
Redis still holds its registration (its epoch) and all of its connections; if not (it was
reaped while paused or cut off, or Redis lost data) it takes a new epoch and rewrites its
connections, rooms and users. Leases count on Redis's clock from when Redis ran the renewal,
so commands held up in a stalled Redis renew on time when it resumes. A node that stops
renewing (killed) is reaped by the others: its connections leave their rooms and users who
had no other connection go offline. A node that finds its heartbeat ran late (it was paused)
or that Redis did not answer reaps nobody for a lease's length, giving the others the same
chance to renew that it had. An offline decision still waiting out its grace on a node that
stops or dies is made by the others' heartbeat. A subscription that goes silent while
commands still work (a "deaf" node) is detected by a ping through its own channel and rebuilt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

from hubbub.broker import redis_scripts as lua
from hubbub.broker import redis_sharded_scripts as sharded_lua
from hubbub.broker.base import Member, Publication
from hubbub.broker.redis_lease import LeaseKeeper
from hubbub.broker.redis_link import RedisClusterException, RedisError, member_blob, member_from_blob, text
from hubbub.broker.redis_pubsub import RedisPubSub
from hubbub.broker.redis_sharded import ShardedLedger

logger = logging.getLogger("hubbub.broker.redis")

LOOP_GRACE_LEASES = 6
"""The lease keeper covers for a loop that has not run its heartbeat for up to this many `node_timeout`s; a
loop silent for longer looks stuck, and the node is left to be reaped."""


class RedisHealth(RedisPubSub):
    """The node's lease and the cluster's housekeeping, run by the heartbeat."""

    async def _claim(self) -> tuple[bool, list[str]]:
        """Take a new epoch (every write made with an older one is refused from now on) and renew the lease;
        returns whether the node had been reaped and the client ids Redis holds for it. Runs after every
        call queued before it."""
        sent = time.time()
        if self._sharded is not None:  # epochs grow: a room's or a user's slot refuses a node's older ones
            self._epoch = str(int(self._epoch or "0") + 1)
            redis_now, reaped, held = await self._sharded.claim(self._epoch, self._lease_ms)
            self._set_clock(redis_now, sent)
            return reaped, held
        epoch = uuid.uuid4().hex[:16]
        self._epoch = epoch
        out = await self._scripts.call(lua.CLAIM, self.prefix, self.node_id, epoch, self._lease_ms)
        self._set_clock(int(out[0]), sent)
        return int(out[1]) == 1, [text(raw) for raw in out[2:]]

    def _set_clock(self, redis_now: int, sent: float) -> None:
        self._clock_offset = redis_now - int((sent + time.time()) * 500)

    async def _beat_forever(self) -> None:
        self._last_beat = (time.monotonic(), time.time())
        # Not `while True`: on Python 3.11 redis-py's asyncio.wait_for can swallow stop()'s cancel.
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.heartbeat):  # not wait_for: on 3.11 it can swallow a cancel
                    await self._wake.wait()
            self._wake.clear()
            if self._keeper is not None:
                self._keeper.loop_ran()
            self._notice_pause()
            try:
                await self._beat()
            except (RedisError, RedisClusterException, OSError, TimeoutError) as exc:
                self._unreachable(str(exc) or "no answer in time")
            except Exception:  # the heartbeat must outlive any failure, or the others reap this node
                logger.exception("heartbeat of node %s failed", self.node_id)
                self._unreachable("the heartbeat failed")
            self._last_beat = (time.monotonic(), time.time())

    def _start_lease_keeper(self) -> None:
        """Renew the lease from a thread while this loop runs late (`redis_lease`)."""
        self._keeper = LeaseKeeper(
            lambda: self.target.sync_client(socket_timeout=self.heartbeat),
            self._renew_from_thread,
            every=self.heartbeat,
            loop_grace=LOOP_GRACE_LEASES * self.node_timeout,
            name=f"hubbub-lease-{self.node_id}",
        )
        self._keeper.start()

    def _renew_from_thread(self, client: Any) -> object:
        """`RENEW` on a synchronous client (the keeper's thread); fenced like the loop's."""
        script = sharded_lua.RENEW if self._sharded is not None else lua.RENEW
        args = (self.prefix, self.node_id, self._epoch, self._lease_ms)
        keys = (1, args[0]) if self.target.cluster else (0,)
        return client.eval(script, *keys, *args)

    def _notice_pause(self) -> None:
        """A heartbeat that comes much later than due means this node did not run meanwhile (a long GC,
        a blocked event loop, SIGSTOP, a VM pause): others may have found its lease expired, and it may
        find theirs expired only because they were paused too. It reaps nobody for a lease's length."""
        mono, wall = time.monotonic(), time.time()
        gap = max(mono - self._last_beat[0], wall - self._last_beat[1])
        if gap > 2 * self.heartbeat:
            logger.warning(
                "node %s did not run for %.1f s (paused?); it checks its registration and reaps no node for %.1f s",
                self.node_id,
                gap,
                self.lease,
            )
            self._hold_reaping()
            self._ping_sent = None

    def _hold_reaping(self) -> None:
        self._reap_after = time.monotonic() + self.lease

    async def _beat(self) -> None:
        assert self._redis is not None
        asked = time.monotonic()
        try:
            async with asyncio.timeout(self.check_timeout):
                sent = time.time()
                redis_now, held = await self._renew()
        except TimeoutError:
            if time.monotonic() - asked > 1.5 * self.check_timeout:
                self._wake.set()  # this node's own loop ran late (the answer may be unread): ask again now
                return
            raise
        if time.time() - sent <= self.check_timeout:  # a renewal that waited through an outage tells no time
            self._set_clock(int(redis_now), sent)
        if not self._connected:
            logger.info("node %s reaches Redis again", self.node_id)
            self._connected = True
            self._hold_reaping()
        if int(held) < 0:
            logger.warning(
                "node %s lost its registration in Redis (reaped while paused or cut off, or Redis lost data); "
                "rewriting its state",
                self.node_id,
            )
            self._needs_resync = True
        else:
            self._compare_count(int(held))
        await self._notice_failover()
        if self._needs_resync:
            await self._recover()
        elif self._subscription_stale:
            await self._rebuild_subscription()
        async with asyncio.timeout(self.heartbeat):
            await self._flush_dropped()
            await self._check_deaf()
            if time.monotonic() >= self._reap_after:
                await self._reap()
            await self._sweep_leaving()

    async def _notice_failover(self) -> None:
        """On a Redis Cluster, a failover anywhere (the cluster's epoch grew) may have lost writes of this node
        that the dead master had not replicated, in any slot: the node rewrites its state."""
        if self._sharded is None:
            return
        epoch = await self._sharded.cluster_epoch()
        if epoch is None:
            return
        if self._cluster_epoch is not None and epoch > self._cluster_epoch:
            logger.warning("Redis Cluster failed over (epoch %d); node %s rewrites its state", epoch, self.node_id)
            self._needs_resync = True
        self._cluster_epoch = epoch

    async def _renew(self) -> Any:
        """Run `RENEW`. On a cluster the call is never cancelled: redis-py rereads the slot map inside a
        command after a master's death, which can take longer than a heartbeat's wait; cancelled every time,
        it would never finish, and the node never find the promoted replica. A heartbeat that gives up
        waiting leaves the call running, and the next one waits for the same call."""
        if self._sharded is None:
            return await self._eval(lua.RENEW, self.prefix, self.node_id, self._epoch, self._lease_ms)
        if self._renewal is None or self._renewal.done():
            self._renewal = asyncio.ensure_future(self._sharded.renew(self._epoch, self._lease_ms))
            self._renewal.add_done_callback(_retrieved)
        renewal = self._renewal
        try:
            return await asyncio.shield(renewal)
        finally:
            if renewal.done():
                self._renewal = None

    def _compare_count(self, held: int) -> None:
        """Redis should hold every connection of this node once no write is in flight; the same
        difference two heartbeats in a row (Redis lost some: a failover) gets the state rewritten."""
        if held == len(self._members) or not self._scripts.idle:
            self._count_mismatch = None
            return
        if self._count_mismatch != held:
            self._count_mismatch = held
            return
        logger.warning(
            "Redis holds %d connections of node %s, which has %d; rewriting its state",
            held,
            self.node_id,
            len(self._members),
        )
        self._count_mismatch = None
        self._needs_resync = True

    def _unreachable(self, reason: str) -> None:
        """Redis did not answer: serve local clients only, and stop every wait on Redis now. Every write
        skipped or failed from now on asks for the state to be rewritten once Redis answers again."""
        if self._connected:
            logger.warning("Redis unreachable (%s); serving local clients only", reason)
        self._connected = False
        self._ping_sent = None
        self._hold_reaping()
        self._scripts.abandon(ConnectionError("Redis is unreachable"))
        self._release_confirmations()

    async def _recover(self) -> None:
        """Rewrite this node's state (raises like any Redis call; the next heartbeat tries again)."""
        self._needs_resync = False  # a write refused from now on asks for another rewrite
        try:
            count = await self._rewrite()
        except BaseException:
            self._needs_resync = True
            raise
        if self._subscription_stale:
            await self._rebuild_subscription()
        logger.info("Redis state of node %s rewritten (%d connections)", self.node_id, count)

    async def _rewrite(self) -> int:
        if self._sharded is not None:
            return await self._rewrite_sharded(self._sharded)
        return await self._rewrite_one_slot()

    async def _rewrite_sharded(self, ledger: ShardedLedger) -> int:
        """`_rewrite` on a Redis Cluster: the same, one slot at a time (`ShardedLedger.restore`)."""
        reaped, held = await self._claim()
        epoch = self._epoch
        rooms = {client_id: self._member_rooms.get(client_id, set()) for client_id in self._members}
        finished = await ledger.finish_unfinished(epoch, rooms)
        stale = await asyncio.gather(
            *(ledger.drop_stale(client_id, epoch) for client_id in held if client_id not in self._members)
        )
        for result, user_id in [*finished, *stale]:
            if result == lua.FENCED:
                self._needs_resync = True
            elif result == 2 and self._listener is not None:
                self._listener.user_offline(user_id)
        members = list(self._members.values())
        restored = await asyncio.gather(
            *(ledger.restore(member, sorted(rooms[member.client_id]), epoch) for member in members)
        )
        await self._written_back(members, restored, reaped)
        return len(members)

    async def _rewrite_one_slot(self) -> int:
        """Take a new epoch, take out what Redis holds for this node but it no longer has (connections that
        closed, rooms left while Redis was unreachable), and write each connection with exactly its rooms.
        Every call is queued at once after the claim, so no change made meanwhile is overwritten."""
        reaped, held = await self._claim()
        epoch = self._epoch
        stale = [  # they closed a while ago: no grace left
            self._scripts.submit(lua.UNREGISTER, self.prefix, client_id, self.node_id, epoch, 0, "")
            for client_id in held
            if client_id not in self._members
        ]
        members = list(self._members.values())
        restored = [
            self._scripts.submit(
                lua.RESTORE,
                self.prefix,
                member.client_id,
                self.node_id,
                epoch,
                member_blob(member),
                member.user_id or "",
                *sorted(self._member_rooms.get(member.client_id, ())),
            )
            for member in members
        ]
        results: list[Any] = await asyncio.gather(*stale, *restored)
        for result in results[: len(stale)]:
            if result == lua.FENCED:
                self._needs_resync = True
            elif int(result[0]) == 2 and self._listener is not None:
                self._listener.user_offline(text(result[1]))
        await self._written_back(members, results[len(stale) :], reaped)
        return len(members)

    async def _written_back(self, members: list[Member], results: list[Any], reaped: bool) -> None:
        """After a rewrite: users who came online with it, and, if the node had been reaped, the rooms told
        that its members are back. A refused write asks for another rewrite."""
        for member, result in zip(members, results, strict=True):
            if result == lua.FENCED:
                self._needs_resync = True
                continue
            if result == 1 and self._listener is not None and member.user_id is not None:
                self._listener.user_online(member.user_id)
            if reaped:
                await self._announce_return(member)

    async def _announce_return(self, member: Member) -> None:
        """The reaper told every room this member left: tell them it is back (here and on other nodes)."""
        for room in sorted(self._member_rooms.get(member.client_id, ())):
            publication = _presence(room, member, "join", self.node_id)
            publication.exclude = member.client_id
            if self._listener is not None:
                self._listener.deliver(publication)
            await self.publish(publication)

    async def _flush_dropped(self) -> None:
        if self._listener is None:
            return
        count = self._listener.drain_dropped()
        if count:
            assert self._redis is not None
            await self._redis.incrby(f"{self.prefix}:dropped", count)

    async def _check_deaf(self) -> None:
        """Publish a ping to our own channel; if the last one never came back, rebuild the subscription."""
        assert self._redis is not None
        now = time.monotonic()
        if self._ping_sent is not None and now - self._ping_sent_at > self.heartbeat * 2:
            logger.warning("subscription of node %s is deaf; resubscribing", self.node_id)
            self._ping_sent = None
            await self._rebuild_subscription()
            return
        if self._ping_sent is None:
            token = uuid.uuid4().hex
            self._ping_sent = token
            self._ping_sent_at = now
            if not await self._publish_raw(self._node_channel, b"ping:" + token.encode()):
                self._ping_sent = None  # its shard is down: the subscription fails and is rebuilt on its own

    async def _reap(self) -> None:
        assert self._redis is not None
        if self._sharded is not None:
            for node in await self._sharded.reap(self._epoch):
                logger.info("reaped node %s", node)
            return
        out = await self._eval(lua.REAP, self.prefix, self.node_id, self._epoch)
        for i in range(0, len(out), 3):
            kind, key, blob = text(out[i]), text(out[i + 1]), out[i + 2]
            if kind == "node":
                logger.info("reaped node %s", key)
            elif kind == "leave":
                member = member_from_blob(blob)
                await self._publish_now(self._room_channel(key), _presence(key, member, "leave", "reaper"))
            elif kind == "offline" and self._listener is not None:
                self._listener.user_offline(key)

    async def _sweep_leaving(self) -> None:
        """Offline decisions that are due but were not made (their node stopped or died within the grace)."""
        assert self._redis is not None
        if self._sharded is not None:
            if self._cleaning is None or self._cleaning.done():  # a big orphan may take longer than a heartbeat
                self._cleaning = self._spawn(self._clean_orphans(self._sharded))
            for user_id in await self._sharded.due_offline():
                if self._listener is not None:
                    self._listener.user_offline(user_id)
            return
        for raw in await self._eval(lua.SWEEP_LEAVING, self.prefix):
            if self._listener is not None:
                self._listener.user_offline(text(raw))

    async def _clean_orphans(self, ledger: ShardedLedger) -> None:
        """On a Redis Cluster, clean up after reaped and stopped nodes, and announce what that changed (a
        failure is tried again at the next heartbeat: each step can run twice)."""
        try:
            events = await ledger.clean_orphans(self._epoch)
        except (RedisError, RedisClusterException, OSError) as exc:
            logger.warning("cleaning up after stopped or dead nodes failed (%s); trying again", exc)
            return
        for node in events.nodes:
            logger.info("cleaned up after node %s", node)
        for room, member in events.left:
            await self._publish_now(self._room_channel(room), _presence(room, member, "leave", "reaper"))
        for user_id in events.offline:
            if self._listener is not None:
                self._listener.user_offline(user_id)


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Mark a renewal's failure as seen: a heartbeat that stopped waiting for it reports the outage itself."""
    if not future.cancelled():
        future.exception()


def _presence(room: str, member: Member, action: str, origin: str) -> Publication:
    from hubbub.protocol import envelope as env

    return Publication(
        kind="room",
        target=room,
        envelope={"type": env.PRESENCE, "data": {"room": room, "action": action, **member.who()}},
        channel_only=True,
        origin=origin,
    )
