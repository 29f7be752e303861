"""Connections, rooms and users of a Redis node, written by Lua scripts (`redis_scripts`),
so limits and online/offline decisions are cluster-wide and happen once."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from hubbub.broker import redis_scripts as lua
from hubbub.broker.base import Member, Registration
from hubbub.broker.redis_health import RedisHealth
from hubbub.broker.redis_link import RedisError, member_blob, now_ms

logger = logging.getLogger("hubbub.broker.redis")

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


class RedisMembership(RedisHealth):
    """Registering, unregistering, joining and leaving."""

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
                now_ms(),
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
            await self._scripts.call(lua.JOIN, self.ns, room, member.client_id, member_blob(member))

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
