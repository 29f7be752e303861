"""The hub: this node's connections by id, by user and by room, and every cluster-wide
operation on top of the broker.

The hub delivers to local connections itself and hands the rest to the broker,
which carries publications to the other nodes; with the memory broker there are
no other nodes and nothing is published. Anything that sends accepts text (str),
binary (bytes) or an `Envelope` (see `hubbub.runtime.delivery`); rooms that keep
history are served by `hubbub.runtime.kept_rooms`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Hashable, Iterable
from typing import TYPE_CHECKING, Any, Literal

from hubbub.broker.base import Broker, Member, Publication, Registration
from hubbub.broker.memory import MemoryBroker
from hubbub.history.base import HistoryPage
from hubbub.history.recovery import Published, Recovery
from hubbub.history.rules import HistoryRules
from hubbub.history.store import Store, default_store
from hubbub.inbox.inbox import Inbox
from hubbub.inbox.wire import InboxEnvelope
from hubbub.protocol import envelope as env
from hubbub.protocol.envelope import Envelope
from hubbub.runtime.admission import Admissions
from hubbub.runtime.delivery import Sendable, carried, deliver, durable_envelope, member_of
from hubbub.runtime.gauges import Gauges
from hubbub.runtime.kept_rooms import KeptRooms
from hubbub.runtime.latency import HandlerLatency
from hubbub.runtime.local_connections import LocalConnections
from hubbub.runtime.ordered_writes import OrderedWrites
from hubbub.runtime.presence import PresenceHooks
from hubbub.transport.message import BackpressurePolicy
from hubbub.transport.websocket import TransportStats

if TYPE_CHECKING:
    from hubbub.runtime.connection import Connection

REMOTE_JOIN_TIMEOUT = 2.0
"""Seconds `Hub.join` and `Hub.leave` wait for another node to put its client in a room or take it out."""


class Hub:
    """Connections by id, user and room; usable from handlers, HTTP routes and tasks."""

    def __init__(
        self,
        broker: Broker | None = None,
        *,
        presence_grace: float = 2.0,
        room_presence_events: bool = True,
        store: Store | None = None,
        inbox: Inbox | None = None,
    ) -> None:
        self.broker: Broker = broker if broker is not None else MemoryBroker(presence_grace=presence_grace)
        self.store = store
        """Where history lives (None until start: then the broker's default, memory or Redis)."""
        self.history_rules = HistoryRules()
        self.inbox = inbox if inbox is not None else Inbox()
        """The offline inbox behind `send_to_user(..., durable=True)`."""
        self.presence = PresenceHooks()
        self.room_presence_events = room_presence_events
        self.stats = TransportStats()
        self.handler_latency = HandlerLatency()
        """How long handlers run (sampled; see `hubbub.runtime.latency`)."""
        self.gauges = Gauges()
        """Sizes read at scrape time (connections, rooms, users here; stores add theirs)."""
        self._local = LocalConnections()
        local = self._local
        self.gauges.add("hubbub_connections", "Open WebSocket connections of this process.", lambda: len(local.by_id))
        self.gauges.add("hubbub_rooms", "Rooms with members on this process.", lambda: len(local.rooms))
        self.gauges.add("hubbub_users", "Users with a connection on this process.", lambda: len(local.users))
        self._dropped_reported = 0
        self._members: dict[str, Member] = {}
        self._writes = OrderedWrites()
        self._background: set[asyncio.Future[Any]] = set()
        self._admissions = Admissions(self.presence)
        self._kept = KeptRooms(self)

    @property
    def node_id(self) -> str:
        """This node's id in the cluster."""
        return self.broker.node_id

    @property
    def ready(self) -> bool:
        """Whether the broker's engine is reachable."""
        return self.broker.ready

    async def start(self) -> None:
        """Connect the broker and open the store (the server does this before accepting connections)."""
        if self.store is None:
            self.store = default_store(self.broker)
        await self.broker.start(self)
        try:
            await self.store.open(self.broker)
        except BaseException:
            await self.broker.stop()
            raise
        try:
            await self.inbox.start(self)
        except BaseException:
            try:
                await self.store.close()
            finally:
                await self.broker.stop()
            raise
        self._add_store_gauges()

    def _add_store_gauges(self) -> None:
        """Report the history's and the inbox's sizes where this process holds them."""
        assert self.store is not None
        self.gauges.add_sizes("hubbub_history_size", "Room histories kept by this process.", self.store.history)
        if self.inbox.store is not None:
            self.gauges.add_sizes("hubbub_inbox_size", "Offline inboxes kept by this process.", self.inbox.store)

    async def stop(self) -> None:
        """Close the inbox and the store and disconnect the broker (after every connection closed;
        each is closed even if closing the one before failed)."""
        try:
            try:
                await self.inbox.stop()
            finally:
                if self.store is not None:
                    await self.store.close()
        finally:
            await self.broker.stop()

    # ---- admission and the local registry (called by the app and connections) -------------

    async def admit(self, conn: Connection, *, max_connections: int | None, max_per_user: int | None) -> Registration:
        """Count a connection in, cluster-wide, before its handshake completes."""
        member = member_of(conn, self.node_id)
        with self._admissions.admitting(member.user_id):
            result = await self.broker.register(member, max_connections=max_connections, max_per_user=max_per_user)
        if result is Registration.OK:
            self._members[conn.id] = member
        return result

    def abandon(self, conn: Connection) -> None:
        """An admitted connection never opened (its handshake was dropped)."""
        self._admissions.opened(conn.user_id)
        member = self._members.pop(conn.id, None)
        if member is not None:
            self._after(conn.id, self.broker.unregister(member, []))

    def add(self, conn: Connection) -> None:
        """Register an open connection locally."""
        self._local.add(conn)
        if conn.user_id is not None:
            self.inbox.attach(conn)
        self._admissions.opened(conn.user_id)

    def remove(self, conn: Connection) -> set[str]:
        """Unregister a closed connection and take it out of every room; return those rooms."""
        if not self._local.discard(conn):
            return set()
        rooms = set(conn.rooms)
        for room in rooms:
            if self._drop_local(room, conn.id):
                self._announce(room, conn, "leave")
        conn.rooms.clear()
        if conn.user_id is not None:
            self.inbox.detach(conn)
        member = self._members.pop(conn.id, None)
        if member is not None:
            self._after(conn.id, self.broker.unregister(member, sorted(rooms)))
        return rooms

    def get(self, client_id: str) -> Connection | None:
        """The local connection with this id, if any."""
        return self._local.by_id.get(client_id)

    def _after(self, client_id: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any] | None:
        return self._writes.after(client_id, coro)

    async def settled(self, client_id: str) -> None:
        """Wait until the broker has seen every change made for this client so far."""
        await self._writes.settled(client_id)

    def _drop_local(self, room: str, client_id: str) -> bool:
        if not self._local.leave(room, client_id):
            return False
        self._kept.forget(room, client_id)
        return True

    # ---- the broker's callbacks (ClusterListener) --------------------------------------

    def deliver(self, publication: Publication) -> None:
        """Deliver a publication from another node to the local connections it targets."""
        kind = publication.kind
        target = publication.target
        conns: list[Connection]
        kept_wire = publication.envelope
        if publication.offset is not None and kept_wire is not None:
            kept = Envelope(kept_wire.get("type"), kept_wire.get("data"), room=str(target), offset=publication.offset)
            self._kept.deliver(str(target), kept, publication.exclude)
            return
        if kind == "room":
            conns = self._local.members(str(target))
        elif kind == "client":
            conn = self._local.by_id.get(str(target))
            if conn is None:
                return
            if publication.command != "send":
                self._command(conn, publication)
                return
            conns = [conn]
        elif kind == "user":
            conns = self._local.devices([str(target)])
            if publication.envelope is not None and "inbox" in publication.envelope:
                self.inbox.deliver(conns, InboxEnvelope.from_wire(publication.envelope))
                return
        elif kind == "users":
            conns = self._local.devices(target or ())
        else:
            conns = self._local.everyone()
        if publication.channel_only:
            conns = [c for c in conns if c.codec is not None and c.codec.whole_envelopes]
        self._deliver(carried(publication), conns, publication.exclude, str(target) if kind == "room" else None)

    def _command(self, conn: Connection, publication: Publication) -> None:
        if publication.command == "close":
            self._spawn(conn.close(publication.code, publication.reason))
        elif publication.command == "join":
            self._spawn(self.join(publication.reason, conn.id))
        elif publication.command == "leave":
            self._spawn(self.leave(publication.reason, conn.id))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def user_online(self, user_id: str) -> None:
        """The broker decided a user came online. When that happened while admitting one of
        this node's handshakes, the hooks wait until the connection is open."""
        self._admissions.online(user_id)

    def user_offline(self, user_id: str) -> None:
        """The broker decided a user went offline."""
        self.presence.fire_offline(user_id)

    def drain_dropped(self) -> int:
        """Messages dropped locally since the last call."""
        delta = self.stats.dropped_messages - self._dropped_reported
        self._dropped_reported = self.stats.dropped_messages
        return delta

    async def _publish(self, publication: Publication) -> None:
        if self.broker.is_cluster:
            await self.broker.publish(publication)

    # ---- clients ----------------------------------------------------------------------

    async def send(self, client_id: str, data: Sendable) -> bool:
        """Send to one client, wherever it is; False if unknown (or, locally, closed or dropped)."""
        conn = self._local.by_id.get(client_id)
        if conn is not None:
            return conn.send_nowait(data)
        if not self.broker.is_cluster or await self.broker.locate(client_id) is None:
            return False
        await self._publish(Publication.carrying("client", client_id, data))
        return True

    async def close(self, client_id: str, code: int = 1000, reason: str = "") -> bool:
        """Close one client, wherever it is, with a code and reason; False if unknown."""
        conn = self._local.by_id.get(client_id)
        if conn is not None:
            await conn.close(code, reason)
            return True
        if not self.broker.is_cluster or await self.broker.locate(client_id) is None:
            return False
        await self._publish(Publication(kind="client", target=client_id, command="close", code=code, reason=reason))
        return True

    async def clients(self) -> list[str]:
        """Ids of every connected client in the cluster."""
        return await self.broker.clients()

    async def connection_count(self) -> int:
        """How many clients the cluster has."""
        return await self.broker.connection_count()

    async def dropped_count(self) -> int:
        """Messages dropped so far, on any node, because a client's outgoing buffer was full."""
        await self.broker.add_dropped(self.drain_dropped())
        return await self.broker.dropped_count()

    async def broadcast(self, data: Sendable, *, exclude: str | None = None) -> int:
        """Send to every client (but `exclude`); return how many local clients it was queued for."""
        await self._publish(Publication.carrying("all", None, data, exclude))
        return self._deliver(data, self._local.everyone(), exclude)

    # ---- users ----------------------------------------------------------------------

    async def send_to_user(self, user_id: str, data: Sendable, *, durable: bool = False) -> int:
        """Send to every device (connection) of a user in the cluster; return how many it has.

        With `durable=True` (an Envelope only) the message is first stored in the user's inbox and
        also reaches, once each, the user's devices that connect later (see `hubbub.inbox`)."""
        if durable:
            return await self.inbox.send(user_id, durable_envelope(data))
        await self._publish(Publication.carrying("user", user_id, data))
        local = self._deliver(data, self._local.devices([user_id]), None)
        return len(await self.broker.user_clients(user_id)) if self.broker.is_cluster else local

    async def send_to_users(self, user_ids: Iterable[str], data: Sendable, *, durable: bool = False) -> int:
        """Send to every device of each of these users (encoded once); return how many local devices got it.
        With `durable=True`, as `send_to_user(..., durable=True)` for each user (return: the sum)."""
        if durable:
            return await self.inbox.send_many(user_ids, durable_envelope(data))
        wanted = sorted(set(user_ids))
        await self._publish(Publication.carrying("users", wanted, data))
        conns = self._local.devices(wanted)
        return self._deliver(data, conns, None)

    def local_devices(self, user_id: str) -> list[Connection]:
        """This node's open connections of a user."""
        return self._local.devices([user_id])

    async def user_clients(self, user_id: str) -> list[str]:
        """Ids of a user's connections, on every node."""
        return await self.broker.user_clients(user_id)

    async def is_online(self, user_id: str) -> bool:
        """Whether a user is connected anywhere (or left less than `presence_grace` seconds ago)."""
        return await self.broker.is_online(user_id)

    async def online_users(self) -> list[str]:
        """Ids of the users that are online."""
        return await self.broker.online_users()

    # ---- rooms ------------------------------------------------------------------------

    async def join(self, room: str, client_id: str) -> bool:
        """Put a client, wherever it is, in a room; False if the client is unknown.

        Returns once the client is in: a publication to the room made afterwards reaches it. For a
        client on another node that is once its node has subscribed the room and recorded it (waited
        for up to `REMOTE_JOIN_TIMEOUT` seconds; then True if the client is still connected)."""
        conn = self._local.by_id.get(client_id)
        if conn is None:
            if self.broker.is_cluster and await self.broker.locate(client_id) is not None:
                return await self._elsewhere(room, client_id, "join")
            return False
        if conn.closed:
            return False
        if not self._local.enter(room, conn):
            return True
        conn.rooms.add(room)
        member = self._members.get(client_id)
        if member is not None:
            pending = self._after(client_id, self.broker.join(room, member))
            if pending is not None:
                await pending
        self._announce(room, conn, "join")
        return True

    async def _elsewhere(self, room: str, client_id: str, command: Literal["join", "leave"]) -> bool:
        """Have another node's client join or leave `room`; wait until the cluster shows it done (its node
        has subscribed the room first, or stopped delivering the room to it). False if the client left."""
        await self._publish(Publication(kind="client", target=client_id, command=command, reason=room))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REMOTE_JOIN_TIMEOUT
        pause = 0.002
        while await self.broker.in_room(room, client_id) != (command == "join"):
            if loop.time() >= deadline:
                return await self.broker.locate(client_id) is not None
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)
        return True

    async def leave(self, room: str, client_id: str) -> bool:
        """Take a client out of a room; empty rooms disappear. False if it was not in it.

        Returns once the client is out: a publication to the room made afterwards does not reach it
        (for a client on another node, waited for as in `join`)."""
        conn = self._local.by_id.get(client_id)
        if conn is None:
            if self.broker.is_cluster and await self.broker.locate(client_id) is not None:
                return await self._elsewhere(room, client_id, "leave")
            return False
        conn.rooms.discard(room)
        if not self._drop_local(room, client_id):
            return False
        member = self._members.get(client_id)
        if member is not None:
            pending = self._after(client_id, self.broker.leave(room, member))
            if pending is not None:
                await pending
        self._announce(room, conn, "leave")
        return True

    async def room_broadcast(
        self,
        room: str,
        data: Sendable,
        *,
        exclude: str | None = None,
        key: Hashable | None = None,
        policy: BackpressurePolicy | None = None,
        idempotency_key: str | None = None,
        keep: bool = True,
    ) -> int:
        """Send to every member of a room on every node (but `exclude`); the message crosses
        the broker once and each node builds the frame once. Returns the local deliveries.

        For members already over their backpressure limit: `key` is what the message updates
        under the "conflate" policy (default: the room name, so a lagging member gets the
        room's newest message); `policy` overrides the members' own policy for this message
        on this node (other nodes apply their members' policy, with the room name as key).

        In a room that keeps history (`App.history`), an envelope is kept and gets an offset first
        (see `publish`); `keep=False` sends it without keeping it (and without an offset)."""
        if keep and isinstance(data, Envelope):
            kept_policy = self._kept.policy(room)
            if kept_policy is not None:
                return (await self._kept.publish(room, data, exclude, idempotency_key, kept_policy)).delivered
        await self._publish(Publication.carrying("room", room, data, exclude))
        members = self._local.members(room)
        if not members:
            return 0
        return self._deliver(data, members, exclude, room if key is None else key, policy)

    async def publish(
        self, room: str, data: Envelope, *, exclude: str | None = None, idempotency_key: str | None = None
    ) -> Published:
        """Publish an envelope to a room like `room_broadcast`, and say where it went in the room's
        history. With `idempotency_key`, a retry of a publication already made (while its key is
        remembered: as long as the publication is kept) publishes nothing and answers the first one's
        offset. Returns once the publication is as durable as the store makes it."""
        policy = self._kept.policy(room)
        if policy is None:
            return Published(0, "", await self.room_broadcast(room, data, exclude=exclude))
        return await self._kept.publish(room, data, exclude, idempotency_key, policy)

    async def join_with_history(
        self, room: str, client_id: str, *, since: int | None = None, epoch: str | None = None, last: int | None = None
    ) -> Recovery:
        """Join a local client to a room and read the room's position, and with `since` (offset, and
        the epoch it belongs to) or `last`, the publications it missed or the latest ones. Live
        publications are held for the client until `Recovery.release()`, called once the answer
        went out: then it gets those after the answer's position, so none is missed or doubled."""
        return await self._kept.join(room, client_id, since=since, epoch=epoch, last=last)

    async def room_history(
        self,
        room: str,
        *,
        since: int | None = None,
        epoch: str | None = None,
        limit: int | None = None,
        last: int | None = None,
    ) -> HistoryPage:
        """Read a room's history: with `since`, the publications after that offset (at most `limit`;
        `complete` is False when the history no longer covers them or `epoch` is not the room's);
        with `last`, the latest `last`; with neither, the room's position only. A room that keeps no
        history answers offset 0, epoch "" and no publications."""
        return await self._kept.read(room, since=since, epoch=epoch, limit=limit, last=last)

    async def room_members(self, room: str) -> list[str]:
        """Ids of the clients in a room, on every node."""
        return [member.client_id for member in await self.broker.room_members(room)]

    async def room_count(self, room: str) -> int:
        """How many clients are in a room, on every node."""
        return await self.broker.room_count(room)

    async def room_presence(self, room: str) -> list[dict[str, Any]]:
        """Who is in a room: client id, user id and public user info of each member."""
        return [member.who() for member in await self.broker.room_members(room)]

    async def rooms(self) -> list[str]:
        """Names of the rooms that have members, on any node."""
        return await self.broker.rooms()

    # ---- delivery ----------------------------------------------------------------------

    def _announce(self, room: str, conn: Connection, action: str) -> None:
        if not self.room_presence_events:
            return
        member = self._members.get(conn.id) or member_of(conn, self.node_id)
        envelope = Envelope(env.PRESENCE, {"room": room, "action": action, **member.who()})
        listeners = [m for m in self._local.listeners(room) if m is not conn]
        if listeners:
            self._deliver(envelope, listeners, None)
        if self.broker.is_cluster:
            publication = Publication.carrying("room", room, envelope, conn.id)
            publication.channel_only = True
            self._spawn(self.broker.publish(publication))

    def _deliver(
        self,
        data: Sendable,
        conns: list[Connection],
        exclude: str | None,
        key: Hashable | None = None,
        policy: BackpressurePolicy | None = None,
    ) -> int:
        sent = deliver(data, conns, exclude, key, policy)
        self.stats.messages_sent += sent
        return sent
