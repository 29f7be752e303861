"""Publishing and the subscription of a Redis node.

Publications go through Redis pub/sub: one channel per room (a node subscribes to the
rooms it has members in), one for everything else. A broadcast crosses Redis once and
each node fans it out locally. All publications made in one event-loop iteration leave
in one script call (`redis_scripts.PUBLISH`), one round trip.

A publication carries when it was made (`sent_at`, on Redis's clock). Redis publishes a
batch only if it runs it within `publish_timeout` of its oldest publication; a batch held
up longer (a stalled Redis, a dropped connection) is counted in `lost_publications` and
never sent, and a node that receives a publication more than `publish_timeout` after it
was made (its subscription stalled, or the node was paused) counts it in
`stale_publications` instead of delivering it. So each publication is delivered in time
or counted lost, never both, and none arrives late.

On a Redis Cluster the channels are shard channels (SSUBSCRIBE/SPUBLISH, `redis_shards`):
a room's channel lives in its hash slot, on one master, so publications spread over the
masters instead of crossing every node of the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from hubbub.broker import redis_scripts as lua
from hubbub.broker.base import Publication
from hubbub.broker.redis_batch import sha1
from hubbub.broker.redis_link import NoScriptError, RedisClusterException, RedisError, RedisLink, pack, text, unpack

logger = logging.getLogger("hubbub.broker.redis")

OUTAGE_WAIT = 0.1
"""Seconds a join or leave waits for Redis to confirm a (un)subscription once Redis is known unreachable."""
REPLY_MARGIN = 0.25
"""Seconds a publisher waits beyond `publish_timeout` for the answer of a batch Redis ran in time."""
_PUBLISH_SHA = sha1(lua.PUBLISH)
_SPUBLISH_SHA = sha1(lua.SPUBLISH)


class RedisPubSub(RedisLink):
    """Publications out (batched per loop iteration) and in (one subscription per node)."""

    # ---- subscription ---------------------------------------------------------------

    async def _listen_forever(self) -> None:
        delay = 0.1
        while not self._stopping:
            pubsub = None
            try:
                pubsub = await self._new_subscription(refresh=delay > 0.1)
                rooms = [self._room_channel(room) for room in self._subscribed]
                await pubsub.subscribe(self._all_channel, self._node_channel, *rooms)
                self._pubsub = pubsub
                self._subscribed_ok = getattr(pubsub, "complete", True)  # a cluster's may wait on a master
                self._subscribed_event.set()
                self._ping_sent = None
                if delay > 0.1:
                    self.reconnects += 1
                    self._needs_resync = True
                    logger.info("node %s resubscribed to Redis", self.node_id)
                    self._wake.set()  # the heartbeat rewrites the state now
                delay = 0.1
                while not self._stopping:  # as in _beat_forever: a swallowed cancel must not keep us here
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    kind = text(message["type"])
                    if kind == "message":
                        self._received(message["channel"], message["data"])
                    elif kind in ("subscribe", "unsubscribe"):
                        self._confirmed(kind, text(message["channel"]))
            except asyncio.CancelledError:
                raise
            except (RedisError, RedisClusterException, OSError) as exc:
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
                        waiter.set_result(None)  # nobody will confirm now; the new subscription covers it
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()

    async def _new_subscription(self, *, refresh: bool) -> Any:
        """A redis-py PubSub, or on a cluster a `ShardedSubscription` (after a failure, on a fresh slot map),
        which keeps the channels of live masters while it resubscribes those of a failed one."""
        assert self._redis is not None
        if not self.target.cluster:
            return self._redis.pubsub()
        from hubbub.broker.redis_shards import ShardedSubscription

        def on_health(complete: bool) -> None:
            if self._pubsub is not subscription or complete == self._subscribed_ok:
                return
            self._subscribed_ok = complete
            if complete:
                self.reconnects += 1
                logger.info("node %s resubscribed to every Redis Cluster shard", self.node_id)
                self._wake.set()

        subscription = ShardedSubscription(self._redis, on_health, max_delay=self.reconnect_max)
        if refresh:
            await subscription.refresh()
        return subscription

    def _release_confirmations(self) -> None:
        """Nobody will confirm the pending (un)subscriptions now: stop waiting; they are redone on recovery."""
        for waiter in self._confirmations.values():
            if not waiter.done():
                self._subscription_stale = True
                waiter.set_result(None)

    async def _rebuild_subscription(self) -> None:
        """Drop the subscription and make a new one (with every room this node needs)."""
        self._subscription_stale = False
        if self._listen_task is not None:
            self._listen_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listen_task
        self._listen_task = asyncio.create_task(self._listen_forever(), name="hubbub-redis-listen")

    def _confirmed(self, kind: str, channel: str) -> None:
        waiter = self._confirmations.pop((kind, channel), None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _received(self, channel: bytes, data: bytes) -> None:
        if text(channel) == self._node_channel:
            if data.startswith(b"ping:") and self._ping_sent == text(data[5:]):
                self._ping_sent = None
                self.publication_lag = time.monotonic() - self._ping_sent_at
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
        if publication.origin == self.node_id or self._listener is None:
            return
        sent_at = publication.sent_at
        if sent_at and self._redis_now() - sent_at > self.publish_timeout * 1000:
            self.stale_publications += 1
            return
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
        reachable = self._connected
        confirmed = asyncio.get_running_loop().create_future()
        self._confirmations[(kind, channel)] = confirmed
        try:
            async with asyncio.timeout(self.heartbeat * 2 if reachable else OUTAGE_WAIT):
                if kind == "subscribe":
                    await pubsub.subscribe(channel)
                else:
                    await pubsub.unsubscribe(channel)
                await asyncio.shield(confirmed)
        except (RedisError, RedisClusterException, OSError, TimeoutError):
            self._subscription_stale = True
            if reachable:
                logger.warning("Redis did not confirm %s of %s on node %s", kind, channel, self.node_id)
        finally:
            if self._confirmations.get((kind, channel)) is confirmed:
                del self._confirmations[(kind, channel)]

    # ---- publishing ---------------------------------------------------------------------

    async def publish(self, publication: Publication) -> None:
        publication.origin = publication.origin or self.node_id
        sent_at = publication.sent_at = self._redis_now()
        self._outgoing.append((self._channels.of(publication), pack(publication), sent_at))
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
        """Send queued publications one batch at a time, in the order they were made."""
        while self._outgoing:
            batch, self._outgoing = self._outgoing, []
            await self._flush(batch)

    async def _flush(self, batch: list[tuple[str, bytes, int]]) -> None:
        """Publish a batch if Redis runs it within `publish_timeout` of its oldest publication; count
        what is older already, or what Redis refuses or does not answer for in time, as lost."""
        timeout_ms = int(self.publish_timeout * 1000)
        now = self._redis_now()
        fresh = 0
        while fresh < len(batch) and now - batch[fresh][2] > timeout_ms:
            fresh += 1
        self.lost_publications += fresh
        redis = self._redis
        if fresh == len(batch):
            return
        if not self._connected or redis is None:
            self.lost_publications += len(batch) - fresh
            return
        deadline = batch[fresh][2] + timeout_ms
        args: list[str | bytes | int] = [deadline]
        for channel, payload, _ in batch[fresh:]:
            args.append(channel)
            args.append(payload)
        sent = 0
        try:
            # Redis refuses the batch after the deadline, so waiting longer than that (and the answer's
            # way back) tells nothing more: the batch is lost, and stays lost when Redis gets to it.
            async with asyncio.timeout(max(0.0, (deadline - now) / 1000) + REPLY_MARGIN):
                if self.target.cluster:
                    from hubbub.broker.redis_shards import publish_sharded

                    entries = [(channel, payload) for channel, payload, _ in batch[fresh:]]
                    sent = await publish_sharded(redis, lua.SPUBLISH, _SPUBLISH_SHA, deadline, entries)  # type: ignore[arg-type]
                else:
                    try:
                        done = await redis.evalsha(_PUBLISH_SHA, 0, *args)
                    except NoScriptError:  # Redis restarted and forgot the script
                        await redis.script_load(lua.PUBLISH)
                        done = await redis.evalsha(_PUBLISH_SHA, 0, *args)
                    sent = len(batch) - fresh if done else 0
        except (RedisError, RedisClusterException, OSError, TimeoutError):
            self._wake.set()  # a heartbeat now tells whether Redis is still there
        if sent < len(batch) - fresh:
            self.lost_publications += len(batch) - fresh - sent

    async def _publish_now(self, channel: str, publication: Publication) -> None:
        publication.sent_at = self._redis_now()
        if not await self._publish_raw(channel, pack(publication)):
            self.lost_publications += 1
