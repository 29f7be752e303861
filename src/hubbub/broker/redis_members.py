"""Connections, rooms and users of a Redis node, written by Lua scripts (`redis_scripts`),
so limits and online/offline decisions are cluster-wide and happen once."""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from hubbub.broker import redis_scripts as lua
from hubbub.broker.base import Member, Registration
from hubbub.broker.redis_health import RedisHealth
from hubbub.broker.redis_link import RedisClusterException, RedisError, member_blob, text

logger = logging.getLogger("hubbub.broker.redis")

P = ParamSpec("P")
R = TypeVar("R")


def _in_task(method: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Run a Redis operation inside an asyncio Task.

    Handlers and the Hub's broker writes start eagerly (`hubbub.runtime.eager`): they run outside
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
        if self._sharded is not None:
            return await self._register_sharded(member, max_connections or 0, max_per_user or 0)
        try:
            result = await self._scripts.call(
                lua.REGISTER,
                self.prefix,
                member.client_id,
                self.node_id,
                self._epoch,
                member_blob(member),
                member.user_id or "",
                max_connections or 0,
                max_per_user or 0,
            )
        except (RedisError, RedisClusterException, OSError):
            return self._admit_offline(member)
        return self._registered(member, int(result))

    async def _register_sharded(self, member: Member, max_connections: int, max_per_user: int) -> Registration:
        assert self._sharded is not None
        try:
            result = await self._sharded.register(member, self._epoch, max_connections, max_per_user)
        except (RedisError, RedisClusterException, OSError):
            return self._admit_offline(member)
        return self._registered(member, int(result))

    def _registered(self, member: Member, result: int) -> Registration:
        """What a registration script answered (1 the user came online, 0, -1, -2, or FENCED), for the hub."""
        if result == -1:
            return Registration.OVER_CAPACITY
        if result == -2:
            return Registration.TOO_MANY_FOR_USER
        if result == lua.FENCED:
            return self._admit_offline(member)
        self._members[member.client_id] = member
        if result == 1 and self._listener is not None and member.user_id is not None:
            self._listener.user_online(member.user_id)
        return Registration.OK

    def _admit_offline(self, member: Member) -> Registration:
        """Redis is unreachable (or this node's registration is being rewritten): serve the connection
        here; it is written to Redis with the rest of the node's state. Cluster-wide limits cannot be
        checked meanwhile; this node's own limits still apply."""
        self._members[member.client_id] = member
        self._out_of_sync()
        return Registration.OK

    @_in_task
    async def unregister(self, member: Member, rooms: list[str]) -> None:
        self._members.pop(member.client_id, None)
        joined = self._member_rooms.pop(member.client_id, set())
        for room in joined:
            await self._forget_local(room, member.client_id)
        if self._redis is None:
            return
        if self._sharded is not None:
            self._sharded.note_closing(member, joined)
        if not self._connected:
            self._out_of_sync()  # the rewrite takes it out of Redis
            return
        token = uuid.uuid4().hex
        grace_ms = int(self.presence_grace * 1000)
        result: Any
        try:
            if self._sharded is not None:
                gone = await self._sharded.unregister(member, joined, self._epoch, grace_ms, token)
                result = gone if gone == lua.FENCED else [gone, member.user_id or ""]
            else:
                result = await self._scripts.call(
                    lua.UNREGISTER, self.prefix, member.client_id, self.node_id, self._epoch, grace_ms, token
                )
        except (RedisError, RedisClusterException, OSError):
            self._out_of_sync()
            return
        if result == lua.FENCED:
            self._out_of_sync()
            return
        gone, user_id = int(result[0]), text(result[1])
        if gone == 2 and self._listener is not None:
            self._listener.user_offline(user_id)
        elif gone == 1:
            self._spawn(self._decide_offline(user_id, token))

    async def _decide_offline(self, user_id: str, token: str) -> None:
        await asyncio.sleep(self.presence_grace)
        assert self._redis is not None
        for _ in range(3):
            try:
                if self._sharded is not None:
                    gone = int(await self._sharded.decide_offline(user_id, token))
                else:
                    gone = await self._eval(lua.OFFLINE_CHECK, self.prefix, user_id, token)
            except (RedisError, RedisClusterException, OSError):
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
        ledger, client_id = self._sharded, member.client_id
        if ledger is not None:
            await self._write(lambda epoch: ledger.join(room, member, epoch))
            return
        blob = member_blob(member)
        await self._write(
            lambda epoch: self._scripts.call(lua.JOIN, self.prefix, room, client_id, blob, self.node_id, epoch)
        )

    @_in_task
    async def leave(self, room: str, member: Member) -> None:
        rooms = self._member_rooms.get(member.client_id)
        if rooms is not None:
            rooms.discard(room)
        await self._forget_local(room, member.client_id)
        ledger, client_id = self._sharded, member.client_id
        if ledger is not None:
            ledger.note_leaving(client_id, room)
            await self._write(lambda epoch: ledger.leave(room, member, epoch))
            return
        await self._write(
            lambda epoch: self._scripts.call(lua.LEAVE, self.prefix, room, client_id, self.node_id, epoch)
        )

    async def _write(self, change: Callable[[str], Awaitable[Any]]) -> None:
        """A membership write made with this node's epoch; one refused or skipped gets the state rewritten."""
        if not self._connected:
            self._out_of_sync()
            return
        try:
            result = await change(self._epoch)
        except (RedisError, RedisClusterException, OSError):
            self._out_of_sync()
            return
        if result == lua.FENCED:
            self._out_of_sync()

    async def _forget_local(self, room: str, client_id: str) -> None:
        local = self._local_rooms.get(room)
        if local is None:
            return
        local.discard(client_id)
        if not local:
            del self._local_rooms[room]
            await self._unsubscribe(room)
