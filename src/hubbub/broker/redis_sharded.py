"""The membership of a node on a Redis Cluster, sharded over hash slots (`redis_sharded_scripts`).

A connection's keys live in its node's slot and its user's slot, a room's members in the
room's slot (beside its channel and history), and only the nodes' leases in the slot of `{ns}`:
connects, joins and leaves spread over the masters like the publications do. Each change is a
few steps, one per slot, ordered so that a node's own slot always names everything it wrote
elsewhere; a node that dies or stops becomes an orphan whose keys any other node cleans up.
The broker (`redis_members`, `redis_health`, `redis.py`) calls this instead of the one-server
scripts when its URL names a cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hubbub.broker import redis_sharded_scripts as lua
from hubbub.broker.base import Member
from hubbub.broker.redis_scripts import FENCED
from hubbub.broker.redis_target import Keys
from hubbub.broker.redis_values import member_blob, member_from_blob, text

if TYPE_CHECKING:
    from hubbub.broker.redis_batch import ScriptBatch

OVER_CAPACITY = -1
TOO_MANY_FOR_USER = -2


@dataclass
class OrphanEvents:
    """What cleaning up after dead or stopped nodes changed, for the cleaner to announce."""

    nodes: list[str] = field(default_factory=list)
    left: list[tuple[str, Member]] = field(default_factory=list)
    """(room, member) for each membership taken out."""
    offline: list[str] = field(default_factory=list)
    """Users whose last connection was on a dead node."""


class OwnWrites:
    """This node's changes to its own slot made in one loop iteration, sent as one `OWN_APPLY` call, in order.

    A node's own slot takes every change of its connections (its slot is on one master), so a burst of
    connects or joins costs Redis one script call per loop iteration there instead of one per change."""

    def __init__(self, scripts: ScriptBatch, own: str) -> None:
        self._scripts = scripts
        self._own = own
        self._epoch = ""
        self._changes: list[Any] = []
        self._futures: list[asyncio.Future[Any]] = []

    def write(self, epoch: str, change: str, *args: Any) -> asyncio.Future[Any]:
        """Queue a change (`OWN_APPLY` names them); its future gets its result, or FENCED."""
        if self._futures and epoch != self._epoch:
            self._send()  # one call carries one epoch
        if not self._futures:
            asyncio.get_running_loop().call_soon(self._send)
        self._epoch = epoch
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._changes.extend((change, len(args), *args))
        self._futures.append(future)
        return future

    def _send(self) -> None:
        if not self._futures:
            return
        futures, changes = self._futures, self._changes
        self._futures, self._changes = [], []
        call = self._scripts.submit(lua.OWN_APPLY, self._own, self._epoch, *changes)
        call.add_done_callback(lambda done: _settle(done, futures))


def _settle(call: asyncio.Future[Any], futures: list[asyncio.Future[Any]]) -> None:
    """Hand each change the result of the call that carried it."""
    exception = None if call.cancelled() else call.exception()
    results = [] if call.cancelled() or exception is not None else call.result()
    for index, future in enumerate(futures):
        if future.done():
            continue
        if call.cancelled():
            future.cancel()
        elif exception is not None:
            future.set_exception(exception)
        elif results == FENCED:
            future.set_result(FENCED)
        else:
            future.set_result(int(results[index]))


class ShardedLedger:
    """One node's view of the sharded membership: its writes, its cleanups and the cluster-wide queries."""

    def __init__(
        self,
        keys: Keys,
        node_id: str,
        scripts: ScriptBatch,
        redis: Callable[[], Any],
        live_nodes: Callable[[], Awaitable[list[str]]],
    ) -> None:
        self.keys = keys
        self.node_id = node_id
        self._scripts = scripts
        self._client = redis
        self._live_nodes = live_nodes
        self.nodes = keys.members
        """The prefix of the nodes' slot."""
        self.own = keys.node_slot(node_id)
        """The prefix of this node's own slot."""
        self._own_writes = OwnWrites(scripts, self.own)
        self.counted: set[str] = set()
        """This node's connections admitted under a cluster-wide limit (each is one in the nodes' slot count)."""
        self._unfinished: dict[str, tuple[Member, set[str]]] = {}
        """Connections whose closing did not reach every slot: the next rewrite finishes it."""
        self._unfinished_leaves: set[tuple[str, str]] = set()
        """(client id, room) whose leave did not reach the room's slot."""

    def _call(self, script: str, *args: Any) -> asyncio.Future[Any]:
        return self._scripts.submit(script, *args)

    async def _eval(self, script: str, *args: Any) -> Any:
        return await self._client().eval(script, 1, args[0], *args)

    # ---- the node's registration ------------------------------------------------------------------------

    async def claim(self, epoch: str, lease_ms: int) -> tuple[int, bool, list[str]]:
        """Take `epoch` in the nodes' slot and in this node's own; returns Redis's time (ms), whether the node
        had been reaped, and the client ids its own slot holds."""
        out, held = await asyncio.gather(
            self._call(lua.CLAIM, self.nodes, self.node_id, epoch, lease_ms, len(self.counted)),
            self._call(lua.OWN_CLAIM, self.own, epoch),
        )
        return int(out[0]), int(out[1]) == 1, [text(raw) for raw in held]

    async def renew(self, epoch: str, lease_ms: int) -> tuple[int, int]:
        """Renew the lease; returns Redis's time (ms) and the connections this node's slot holds, or -1 when the
        node's registration or its own slot's epoch is gone."""
        now, ok = await self._eval(lua.RENEW, self.nodes, self.node_id, epoch, lease_ms)
        held = await self._eval(lua.OWN_HELD, self.own, epoch)
        return int(now), -1 if int(ok) < 0 else int(held)

    async def cluster_epoch(self) -> int | None:
        """Redis Cluster's current epoch, which grows with every failover (None if no node answered)."""
        try:
            info = await self._client().cluster_info()
        except Exception:  # any failure only postpones the check to the next heartbeat
            return None
        value = info.get("cluster_current_epoch") if isinstance(info, dict) else None
        return int(value) if value is not None else None

    async def stop(self, epoch: str) -> None:
        """Leave the cluster; the other nodes clean up what this node leaves (pending offline decisions)."""
        await self._eval(lua.STOP, self.nodes, self.node_id, epoch)

    # ---- connections and rooms --------------------------------------------------------------------------

    async def register(self, member: Member, epoch: str, max_connections: int, max_per_user: int) -> int:
        """Record a new connection: 1 when its user came online, 0, OVER_CAPACITY, TOO_MANY_FOR_USER or FENCED.
        Raises like any Redis call (the broker then admits it offline and rewrites its state)."""
        client_id = member.client_id
        if max_connections:
            self.counted.add(client_id)  # also when admitted offline: the next claim sets the count
            admitted = await self._call(lua.ADMIT, self.nodes, self.node_id, epoch, max_connections)
            if admitted == OVER_CAPACITY:
                self.counted.discard(client_id)
            if admitted != 0:
                return int(admitted)
        user = member.user_id or ""
        if await self._own_writes.write(epoch, "register", client_id, member_blob(member), user) == FENCED:
            return FENCED
        if not user:
            return 0
        result = int(
            await self._call(lua.USER_REGISTER, self.keys.user_slot(user), self.node_id, epoch, client_id, max_per_user)
        )
        if result == TOO_MANY_FOR_USER:
            await self._own_writes.write(epoch, "unregister", client_id, "")
            await self._uncount(client_id, epoch)
        return result

    async def _uncount(self, client_id: str, epoch: str) -> None:
        if client_id in self.counted:
            self.counted.discard(client_id)
            await self._call(lua.UNCOUNT, self.nodes, self.node_id, epoch)

    def note_closing(self, member: Member, rooms: set[str]) -> None:
        """A connection closed: until `unregister` has reached every slot, the next rewrite finishes it."""
        self._unfinished[member.client_id] = (member, rooms)

    def note_leaving(self, client_id: str, room: str) -> None:
        """A connection left a room: until `leave` has reached the room's slot, the next rewrite finishes it."""
        self._unfinished_leaves.add((client_id, room))

    async def unregister(self, member: Member, rooms: set[str], epoch: str, grace_ms: int, token: str) -> int:
        """Forget a closed connection (rooms and user slots first, its own slot last): 2 when its user went
        offline now, 1 when an offline decision (`token`) is pending, 0 otherwise, FENCED."""
        result = await self._unregister(member, rooms, epoch, grace_ms, token)
        if result != FENCED:
            self._unfinished.pop(member.client_id, None)
        return result

    async def _unregister(self, member: Member, rooms: Iterable[str], epoch: str, grace_ms: int, token: str) -> int:
        client_id, user = member.client_id, member.user_id
        left = await asyncio.gather(
            *(self._call(lua.ROOM_LEAVE, self.keys.room_slot(room), self.node_id, epoch, client_id) for room in rooms)
        )
        if FENCED in left:
            return FENCED
        pending = f"{token}:{user}" if user is not None and grace_ms > 0 else ""
        if pending and await self._own_writes.write(epoch, "leaving", pending, grace_ms, 0) == FENCED:
            return FENCED
        gone = 0
        if user is not None:
            slot = self.keys.user_slot(user)
            gone = int(await self._call(lua.USER_UNREGISTER, slot, self.node_id, epoch, client_id, grace_ms, token))
            if gone == FENCED:
                return FENCED
        kept = "" if gone == 1 else pending
        if await self._own_writes.write(epoch, "unregister", client_id, kept) == FENCED:
            return FENCED
        await self._uncount(client_id, epoch)
        return gone

    async def decide_offline(self, user: str, token: str) -> bool:
        """Make a pending offline decision; True when the user is now offline (exactly once in the cluster)."""
        gone = await self._eval(lua.USER_OFFLINE, self.keys.user_slot(user), token)
        await self._client().zrem(f"{self.own}:leaving", f"{token}:{user}")
        return int(gone) == 1

    async def join(self, room: str, member: Member, epoch: str) -> int:
        """Record a membership (own slot, then the room's): 1, or FENCED."""
        client_id = member.client_id
        self._unfinished_leaves.discard((client_id, room))
        if await self._own_writes.write(epoch, "join", client_id, room) == FENCED:
            return FENCED
        blob = member_blob(member, int(epoch))
        return int(await self._call(lua.ROOM_JOIN, self.keys.room_slot(room), self.node_id, epoch, client_id, blob))

    async def leave(self, room: str, member: Member, epoch: str) -> int:
        """Forget a membership (the room's slot, then its own): 1, or FENCED."""
        client_id = member.client_id
        slot = self.keys.room_slot(room)
        if await self._call(lua.ROOM_LEAVE, slot, self.node_id, epoch, client_id) == FENCED:
            return FENCED
        if await self._own_writes.write(epoch, "leave", client_id, room) == FENCED:
            return FENCED
        self._unfinished_leaves.discard((client_id, room))
        return 1

    # ---- rewriting the node's state ---------------------------------------------------------------------

    async def finish_unfinished(self, epoch: str, current: dict[str, set[str]]) -> list[tuple[int, str]]:
        """Finish the closings and leaves that did not reach every slot; `current` is each live connection's
        rooms. Returns (what `unregister` returned, user) for each closing finished."""
        for client_id, room in list(self._unfinished_leaves):
            if room in current.get(client_id, ()):
                self._unfinished_leaves.discard((client_id, room))
                continue
            slot = self.keys.room_slot(room)
            if await self._call(lua.ROOM_LEAVE, slot, self.node_id, epoch, client_id) != FENCED:
                self._unfinished_leaves.discard((client_id, room))
        out = []
        for client_id, (member, rooms) in list(self._unfinished.items()):
            if client_id in current:
                del self._unfinished[client_id]
                continue
            out.append((await self.unregister(member, rooms, epoch, 0, ""), member.user_id or ""))
        return out

    async def drop_stale(self, client_id: str, epoch: str) -> tuple[int, str]:
        """Forget a connection that this node's slot holds but the node no longer has: (2 if its user went
        offline, else 0 or FENCED; the user)."""
        held = await self._call(lua.OWN_PEEK, self.own, client_id)
        if not held:
            return 0, ""
        member = member_from_blob(held[0])
        rooms = {text(raw) for raw in held[1:]}
        return await self._unregister(member, rooms, epoch, 0, ""), member.user_id or ""

    async def restore(self, member: Member, rooms: list[str], epoch: str) -> int:
        """Write a live connection as the node knows it, in exactly `rooms`: 1 when its user came online,
        0, or FENCED."""
        client_id, user = member.client_id, member.user_id or ""
        removed = await self._call(lua.OWN_RESTORE, self.own, epoch, client_id, member_blob(member), user, *rooms)
        if removed == FENCED:
            return FENCED
        blob = member_blob(member, int(epoch))
        writes = [
            *(self._call(lua.ROOM_JOIN, self.keys.room_slot(r), self.node_id, epoch, client_id, blob) for r in rooms),
            *(
                self._call(lua.ROOM_LEAVE, self.keys.room_slot(text(r)), self.node_id, epoch, client_id)
                for r in removed
            ),
        ]
        if FENCED in await asyncio.gather(*writes):
            return FENCED
        if not user:
            return 0
        return int(await self._call(lua.USER_REGISTER, self.keys.user_slot(user), self.node_id, epoch, client_id, 0))

    # ---- other nodes ------------------------------------------------------------------------------------

    async def reap(self, epoch: str) -> list[str]:
        """Make orphans of the other nodes whose lease expired; returns their ids."""
        return [text(raw) for raw in await self._eval(lua.REAP, self.nodes, self.node_id, epoch)]

    async def clean_orphans(self, epoch: str) -> OrphanEvents:
        """Clean up after every orphan: its members leave their rooms, users whose last connection it held go
        offline, its pending offline decisions become this node's, and its slot is deleted."""
        events = OrphanEvents()
        orphans = await self._client().hgetall(f"{self.nodes}:orphans")
        for raw_node, raw_epoch in orphans.items():
            node, dead = text(raw_node), text(raw_epoch)
            slot = self.keys.node_slot(node)
            conns, leaving = await self._eval(lua.ORPHAN_TAKE, slot, dead)
            await self._evict(node, dead, conns, events)
            adopted = [
                self._own_writes.write(epoch, "leaving", text(leaving[i]), 0, int(float(leaving[i + 1])))
                for i in range(0, len(leaving), 2)
            ]
            await asyncio.gather(*adopted)
            await self._eval(lua.ORPHAN_DROP, slot)
            await self._eval(lua.ORPHAN_DONE, self.nodes, node, dead)
            events.nodes.append(node)
        return events

    async def _evict(self, node: str, dead: str, conns: list[list[Any]], events: OrphanEvents) -> None:
        room_calls: list[tuple[str, Member, asyncio.Future[Any]]] = []
        user_calls: list[tuple[str, asyncio.Future[Any]]] = []
        for entry in conns:
            member = member_from_blob(entry[0])
            for raw_room in entry[1:]:
                room = text(raw_room)
                slot = self.keys.room_slot(room)
                room_calls.append((room, member, self._call(lua.ROOM_EVICT, slot, node, dead, member.client_id)))
            if member.user_id is not None:
                slot = self.keys.user_slot(member.user_id)
                user_calls.append((member.user_id, self._call(lua.USER_EVICT, slot, node, dead, member.client_id)))
        for room, member, call in room_calls:
            if await call == 1:
                events.left.append((room, member))
        for user, call in user_calls:
            if await call == 1:
                events.offline.append(user)

    async def due_offline(self) -> list[str]:
        """Make this node's pending offline decisions that are due (adopted from orphans, or whose timer did
        not run); returns the users now offline."""
        gone = []
        for raw in await self._eval(lua.OWN_DUE, self.own, 0):
            token, _, user = text(raw).partition(":")
            if await self.decide_offline(user, token):
                gone.append(user)
        return gone

    # ---- queries ----------------------------------------------------------------------------------------

    async def _per_node(self, command: str, suffix: str) -> list[Any]:
        nodes = await self._live_nodes()
        async with self._client().pipeline(transaction=False) as pipe:
            for node in nodes:
                pipe.execute_command(command, f"{self.keys.node_slot(node)}:{suffix}")
            return list(await pipe.execute())

    async def clients(self) -> list[str]:
        return [text(key) for keys in await self._per_node("HKEYS", "conns") for key in keys]

    async def connection_count(self) -> int:
        return sum(int(count) for count in await self._per_node("HLEN", "conns"))

    async def locate(self, client_id: str) -> Member | None:
        client = self._client()
        for node in await self._live_nodes():
            blob = await client.hget(f"{self.keys.node_slot(node)}:conns", client_id)
            if blob is not None:
                return member_from_blob(blob)
        return None

    async def room_members(self, room: str) -> list[Member]:
        return [member_from_blob(blob) for blob in await self._client().hvals(f"{self.keys.room_slot(room)}:members")]

    async def in_room(self, room: str, client_id: str) -> bool:
        return bool(await self._client().hexists(f"{self.keys.room_slot(room)}:members", client_id))

    async def room_count(self, room: str) -> int:
        return int(await self._client().hlen(f"{self.keys.room_slot(room)}:members"))

    async def rooms(self) -> list[str]:
        return sorted({text(room) for rooms in await self._per_node("HKEYS", "rooms") for room in rooms})

    async def user_clients(self, user: str) -> list[str]:
        return [text(raw) for raw in await self._client().hkeys(f"{self.keys.user_slot(user)}:conns")]

    async def is_online(self, user: str) -> bool:
        slot = self.keys.user_slot(user)
        client = self._client()
        return bool(await client.hlen(f"{slot}:conns")) or bool(await client.exists(f"{slot}:gone"))

    async def online_users(self) -> list[str]:
        """Users with a connection on a live node, and those whose offline decision is still pending."""
        connected = {text(user) for users in await self._per_node("HKEYS", "users") for user in users}
        orphans = [text(node) for node in await self._client().hkeys(f"{self.nodes}:orphans")]
        pending: set[str] = set()
        for node in {*await self._live_nodes(), *orphans}:
            for raw in await self._client().zrange(f"{self.keys.node_slot(node)}:leaving", 0, -1):
                pending.add(text(raw).partition(":")[2])
        waiting = [user for user in sorted(pending - connected) if await self.is_online(user)]
        return sorted(connected | set(waiting))
