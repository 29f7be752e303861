"""The hub's offline inbox: durable sends to users, replay to devices, acknowledgements.

    await hub.send_to_user("alice", Envelope("notification", {...}), durable=True)

The message is stored in alice's inbox (it gets the next offset), delivered live to
her open connections, and replayed to each of her devices that connects later
until that device acknowledges it (see docs/protocol.md, "Offline inbox").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from hubbub.broker.base import Publication
from hubbub.errors import ConfigurationError
from hubbub.inbox.base import InboxLimits, InboxStore
from hubbub.inbox.session import DeviceSession
from hubbub.inbox.wire import DEVICE_PARAM, NOTICE, InboxEnvelope, decode_body, encode_body, valid_device
from hubbub.protocol import envelope as env
from hubbub.protocol.envelope import Envelope, EnvelopeError, error_body

if TYPE_CHECKING:
    from hubbub.runtime.connection import Connection
    from hubbub.runtime.hub import Hub

logger = logging.getLogger("hubbub.inbox")

INBOX_UNAVAILABLE = "inbox_unavailable"
"""Error code sent to a device whose backlog could not be read (the store failed)."""


class Inbox:
    """Durable per-user messages with a cursor per device, on top of an `InboxStore`.

    `store` is an engine instance, or a store URL for `open_inbox` (`sqlite:///inbox.db`,
    `redis://...`, `memory://`), or None: Redis when the hub runs on the Redis broker,
    memory otherwise. `limits` applies to engines opened from a URL or None."""

    def __init__(self, store: InboxStore | str | None = None, *, limits: InboxLimits | None = None) -> None:
        if isinstance(store, InboxStore) and limits is not None:
            raise ConfigurationError("give the limits to the engine itself, e.g. MemoryInboxStore(InboxLimits(...))")
        self._spec = store
        self._limits = limits
        self.store: InboxStore | None = store if isinstance(store, InboxStore) else None
        self._hub: Hub | None = None
        self._sessions: dict[str, DeviceSession] = {}
        self._replays: set[asyncio.Task[None]] = set()
        self._owned: Any = None

    # ---- lifecycle ------------------------------------------------------------------

    async def start(self, hub: Hub) -> None:
        """Open the store (the hub does this when it starts)."""
        self._hub = hub
        if self.store is None:
            from hubbub.inbox.factory import open_inbox, redis_of

            spec = self._spec if isinstance(self._spec, str) else None
            client, namespace = (None, "hubbub") if spec is not None else redis_of(hub.broker)
            self._owned = client
            self.store = open_inbox(spec, client, limits=self._limits, namespace=namespace)
        await self.store.start()

    async def stop(self) -> None:
        """Finish pending writes and close the store."""
        for task in list(self._replays):
            task.cancel()
        await asyncio.gather(*self._replays, return_exceptions=True)
        if self.store is not None:
            await self.store.close()
            if not isinstance(self._spec, InboxStore):
                self.store = None
        if self._owned is not None:
            await self._owned.aclose()
            self._owned = None

    def _store(self) -> InboxStore:
        store = self.store
        if store is None:
            raise RuntimeError("the inbox is not open: durable sends work while the server runs")
        return store

    # ---- sending --------------------------------------------------------------------

    async def send(self, user_id: str, data: Envelope) -> int:
        """Store a message in a user's inbox and deliver it to the user's open connections; return
        how many connections the user has (in the cluster) once it is stored."""
        body = encode_body(data)
        offset = await self._store().append(user_id, body)
        message = InboxEnvelope(data.type, data.data, inbox=offset)
        hub = self._hub
        assert hub is not None
        cluster = hub.broker.is_cluster
        if cluster:
            await hub.broker.publish(Publication.carrying("user", user_id, message))
        local = self.deliver(hub.local_devices(user_id), message)
        return len(await hub.broker.user_clients(user_id)) if cluster else local

    async def send_many(self, user_ids: Iterable[str], data: Envelope) -> int:
        """`send` to each user (one offset in each user's inbox); the sum of their connections."""
        return sum([await self.send(user_id, data) for user_id in sorted(set(user_ids))])

    def deliver(self, conns: Iterable[Connection], message: InboxEnvelope) -> int:
        """Deliver a stored message to local connections of its user; how many it was queued for."""
        sent = 0
        sessions = self._sessions
        for conn in conns:
            session = sessions.get(conn.id)
            if session.offer(message) if session is not None else conn.send_nowait(message):
                sent += 1
        return sent

    # ---- devices --------------------------------------------------------------------

    def attach(self, conn: Connection) -> None:
        """A connection opened: if it is an authenticated envelope connection with a `device`,
        replay that device's backlog to it (after the welcome)."""
        if conn.user_id is None or conn.codec is None or not conn.codec.whole_envelopes:
            return
        device = conn.query.get(DEVICE_PARAM)
        if not device or not valid_device(device):
            return
        session = DeviceSession(conn, device)
        self._sessions[conn.id] = session
        task = asyncio.ensure_future(self._replay(session))
        self._replays.add(task)
        task.add_done_callback(self._replays.discard)

    def detach(self, conn: Connection) -> None:
        """A connection closed."""
        self._sessions.pop(conn.id, None)

    def device_of(self, conn: Connection) -> str | None:
        """The device a connection speaks for, if it named one the inbox accepted."""
        session = self._sessions.get(conn.id)
        return session.device if session is not None else None

    async def _replay(self, session: DeviceSession) -> None:
        conn = session.conn
        user_id = conn.user_id
        assert user_id is not None
        try:
            backlog = await self._store().backlog(user_id, session.device)
        except Exception:
            logger.exception("cannot read the inbox of %s for device %s", user_id, session.device)
            conn.send_nowait(
                Envelope(env.ERROR, error=error_body(INBOX_UNAVAILABLE, "the inbox could not be read; reconnect later"))
            )
            session.fail()
            return
        if conn.closed:
            return
        messages = [decode_body(stored.body, stored.offset) for stored in backlog.messages]
        notice = {"device": session.device, "pending": len(messages), "missed": backlog.missed}
        conn.send_nowait(Envelope(NOTICE, notice))
        session.replay(messages[0].inbox if messages else backlog.last + 1, messages)

    async def ack(self, conn: Connection, data: Any) -> dict[str, Any]:
        """Handle a client's `hubbub.ack`: move its device's cursor."""
        session = self._sessions.get(conn.id)
        if session is None:
            raise EnvelopeError(env.BAD_REQUEST, "this connection has no inbox: connect with ?device=<id>")
        offset = data.get("inbox") if isinstance(data, dict) else None
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 1:
            raise EnvelopeError(env.BAD_REQUEST, "'inbox' must be a positive integer")
        limit = -1 if session.loading else session.acked_limit
        if offset > limit:
            raise EnvelopeError(
                env.BAD_REQUEST,
                f"ack of inbox offset {offset} beyond what this connection was sent",
                sent=max(0, limit),
            )
        user_id = conn.user_id
        assert user_id is not None
        return {"inbox": await self._store().ack(user_id, session.device, offset)}
