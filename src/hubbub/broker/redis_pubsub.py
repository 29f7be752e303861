"""Publishing and the subscription of a Redis node.

Publications go through Redis pub/sub: one channel per room (a node subscribes to the
rooms it has members in), one for everything else. A broadcast crosses Redis once and
each node fans it out locally. Publishes are pipelined: all those made in one event-loop
iteration leave in one round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from hubbub.broker.base import Publication
from hubbub.broker.redis_link import RedisError, RedisLink, pack, text, unpack

logger = logging.getLogger("hubbub.broker.redis")


class RedisPubSub(RedisLink):
    """Publications out (batched per loop iteration) and in (one subscription per node)."""

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
        if text(channel) == self._node_channel:
            if data.startswith(b"ping:") and self._ping_sent == text(data[5:]):
                self._ping_sent = None
            return
        try:
            publication = unpack(data)
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
