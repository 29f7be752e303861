"""Publish to a hubbub cluster from any Python process (a job worker, a cron task, a web app).

    async with Emitter("redis://127.0.0.1:6379/0") as emitter:   # or redis+cluster://HOST:PORT,HOST:PORT
        await emitter.send_to_user("42", Envelope("notification", {"text": "done"}))

The emitter needs only Redis: it publishes on the channels the nodes listen to,
in the format they expect. Delivery is at most once, to the clients connected
at that moment, except with `durable=True` (users only): then the message is first
stored in each user's inbox in Redis, as the nodes' own durable sends are (give the
emitter the same `inbox_limits` as the nodes).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hubbub.broker.base import Publication
from hubbub.errors import BrokerUnavailable, ConfigurationError
from hubbub.inbox.base import InboxLimits
from hubbub.protocol.envelope import Envelope

Sendable = str | bytes | Envelope


class Emitter:
    """Sends to users, rooms, client ids or everyone, through Redis."""

    def __init__(self, redis_url: str, *, namespace: str = "hubbub", inbox_limits: InboxLimits | None = None) -> None:
        try:
            from hubbub.broker.redis_target import RedisTarget
            from hubbub.broker.redis_wire import Channels
        except ImportError:
            raise ConfigurationError("Emitter needs redis and msgpack: pip install 'hubbub[redis]'") from None
        # The URL the nodes get may carry hubbub's own ?namespace= (and ?node_timeout=): take them out.
        target, options = RedisTarget.parse(redis_url)
        namespace = options.get("namespace", namespace)
        self._redis: Any = target.client(max_connections=8, socket_timeout=5.0)
        self._sharded = target.cluster
        self._channels = Channels(namespace, cluster=target.cluster)
        self._namespace = namespace
        self._inbox_limits = inbox_limits
        self._inbox: Any = None

    async def _publish(self, publication: Publication) -> int:
        from redis.exceptions import RedisClusterException, RedisError

        from hubbub.broker.redis_wire import pack

        publication.origin = "emitter"
        try:
            send = self._redis.spublish if self._sharded else self._redis.publish
            receivers: int = await send(self._channels.of(publication), pack(publication))
        except (RedisError, RedisClusterException, OSError) as exc:
            raise BrokerUnavailable(f"cannot publish through Redis: {exc}") from None
        return receivers

    async def send(self, client_id: str, data: Sendable) -> None:
        """Send to one client id."""
        await self._publish(Publication.carrying("client", client_id, data))

    async def close(self, client_id: str, code: int = 1000, reason: str = "") -> None:
        """Close one client with a code and reason."""
        await self._publish(Publication(kind="client", target=client_id, command="close", code=code, reason=reason))

    async def send_to_user(self, user_id: str, data: Sendable, *, durable: bool = False) -> None:
        """Send to every device of a user; with `durable=True` (an Envelope), also to the devices
        that connect later, once each (see `Hub.send_to_user`)."""
        if durable:
            await self._send_durable(user_id, data)
            return
        await self._publish(Publication.carrying("user", user_id, data))

    async def send_to_users(self, user_ids: Iterable[str], data: Sendable, *, durable: bool = False) -> None:
        """Send to every device of each user (`durable`: as in `send_to_user`)."""
        if durable:
            for user_id in sorted(set(user_ids)):
                await self._send_durable(user_id, data)
            return
        await self._publish(Publication.carrying("users", sorted(set(user_ids)), data))

    async def _send_durable(self, user_id: str, data: Sendable) -> None:
        from redis.exceptions import RedisClusterException, RedisError

        from hubbub.inbox.redis import RedisInboxStore
        from hubbub.inbox.wire import InboxEnvelope, encode_body

        if not isinstance(data, Envelope):
            raise TypeError("a durable message must be an Envelope with a type (text and bytes cannot be acknowledged)")
        body = encode_body(data)
        if self._inbox is None:
            self._inbox = RedisInboxStore(self._redis, self._inbox_limits, namespace=self._namespace)
        try:
            offset = await self._inbox.append(user_id, body)
        except (RedisError, RedisClusterException, OSError) as exc:
            raise BrokerUnavailable(f"cannot store in the inbox through Redis: {exc}") from None
        await self._publish(Publication.carrying("user", user_id, InboxEnvelope(data.type, data.data, inbox=offset)))

    async def room_broadcast(self, room: str, data: Sendable, *, exclude: str | None = None) -> None:
        """Send to every member of a room."""
        await self._publish(Publication.carrying("room", room, data, exclude))

    async def broadcast(self, data: Sendable, *, exclude: str | None = None) -> None:
        """Send to every connected client."""
        await self._publish(Publication.carrying("all", None, data, exclude))

    async def aclose(self) -> None:
        """Release the Redis connection."""
        await self._redis.aclose()

    async def __aenter__(self) -> Emitter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
