"""The Broker: what crosses processes. One interface, two engines (memory, redis).

A node (one server process) keeps its own connections and delivers to them; the
broker knows every node's connections, rooms and users, carries publications
between nodes, and decides presence (online/offline) once for the whole cluster.
Both engines pass the same conformance suite (tests/broker/).
"""

from __future__ import annotations

import enum
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

TargetKind = Literal["room", "client", "user", "users", "all"]
Command = Literal["send", "close", "join", "leave"]


@dataclass(slots=True, frozen=True)
class Member:
    """A connection as the cluster knows it."""

    client_id: str
    node_id: str
    user_id: str | None = None
    info: Mapping[str, Any] = field(default_factory=dict)

    def who(self) -> dict[str, Any]:
        """What room members learn about each other."""
        return {"client_id": self.client_id, "user": self.user_id, "info": dict(self.info)}


@dataclass(slots=True)
class Publication:
    """Something for connections on other nodes.

    `data` is a raw payload (str or bytes) or, with `envelope` set, an envelope's
    wire map, encoded by each receiving node for each connection's codec.
    """

    kind: TargetKind
    target: str | list[str] | None = None
    data: str | bytes | None = None
    envelope: dict[str, Any] | None = None
    exclude: str | None = None
    channel_only: bool = False
    command: Command = "send"
    code: int = 1000
    reason: str = ""
    origin: str = ""
    sent_at: int = 0
    """When it was published (ms, the cluster's clock; 0: unknown). A node does not deliver it much later."""
    offset: int | None = None
    """A room publication's offset in the room's history (None: the room keeps none)."""

    @classmethod
    def carrying(
        cls, kind: TargetKind, target: str | list[str] | None, data: Any, exclude: str | None = None
    ) -> Publication:
        """A publication of a raw payload (str or bytes) or of an object with `to_dict()` (an Envelope)."""
        if isinstance(data, str | bytes):
            return cls(kind=kind, target=target, data=data, exclude=exclude)
        return cls(kind=kind, target=target, envelope=data.to_dict(), exclude=exclude)

    def to_wire(self) -> dict[str, Any]:
        """A plain map for engines that serialise publications."""
        return {
            "k": self.kind,
            "t": self.target,
            "d": self.data,
            "e": self.envelope,
            "x": self.exclude,
            "c": self.channel_only,
            "m": self.command,
            "cc": self.code,
            "cr": self.reason,
            "o": self.origin,
            "s": self.sent_at,
            "n": self.offset,
        }

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> Publication:
        """The inverse of `to_wire`."""
        return cls(
            kind=raw["k"],
            target=raw.get("t"),
            data=raw.get("d"),
            envelope=raw.get("e"),
            exclude=raw.get("x"),
            channel_only=bool(raw.get("c")),
            command=raw.get("m", "send"),
            code=int(raw.get("cc", 1000)),
            reason=str(raw.get("cr", "")),
            origin=str(raw.get("o", "")),
            sent_at=int(raw.get("s") or 0),
            offset=raw.get("n"),
        )


class ClusterListener(Protocol):
    """The node's side (the Hub): what the broker calls back."""

    def deliver(self, publication: Publication) -> None:
        """A publication from another node (or an emitter) for local connections."""

    def user_online(self, user_id: str) -> None:
        """A user's first connection in the cluster opened."""

    def user_offline(self, user_id: str) -> None:
        """A user's last connection in the cluster closed (after the grace period)."""

    def drain_dropped(self) -> int:
        """Messages dropped locally since the last call (the broker adds them to the cluster's count)."""


class Registration(enum.Enum):
    """The answer to registering a new connection."""

    OK = "ok"
    OVER_CAPACITY = "over_capacity"
    TOO_MANY_FOR_USER = "too_many_for_user"


def new_node_id() -> str:
    """A fresh node id."""
    return uuid.uuid4().hex[:12]


class Broker(ABC):
    """The engine behind every cluster-wide Hub operation."""

    node_id: str
    is_cluster: bool = False
    """Whether other processes can share this broker (decides if publications are sent)."""
    lost_publications: int = 0
    """This node's publications that the engine did not carry in time: no other node delivered them."""
    stale_publications: int = 0
    """Publications that reached this node too late (a stalled engine, this node paused): not delivered."""

    @property
    def ready(self) -> bool:
        """Whether the engine is reachable now (a health endpoint reports it)."""
        return True

    async def probe(self) -> None:  # noqa: B027 - engines without a remote part have nothing to check
        """Check that the engine can be reached now; raise BrokerUnavailable if not."""

    @abstractmethod
    async def start(self, listener: ClusterListener) -> None:
        """Connect and start receiving publications and presence changes."""

    @abstractmethod
    async def stop(self) -> None:
        """Leave the cluster: forget this node's connections, release resources."""

    # ---- connections -------------------------------------------------------------

    @abstractmethod
    async def register(
        self, member: Member, *, max_connections: int | None = None, max_per_user: int | None = None
    ) -> Registration:
        """Count a new connection in, unless a cluster-wide limit says no (atomically)."""

    @abstractmethod
    async def unregister(self, member: Member, rooms: list[str]) -> None:
        """A connection closed: forget it and take it out of `rooms`."""

    @abstractmethod
    async def join(self, room: str, member: Member) -> None:
        """Record a room membership."""

    @abstractmethod
    async def leave(self, room: str, member: Member) -> None:
        """Forget a room membership."""

    @abstractmethod
    async def publish(self, publication: Publication) -> None:
        """Carry a publication to the other nodes."""

    # ---- queries -----------------------------------------------------------------

    @abstractmethod
    async def clients(self) -> list[str]:
        """Every connection id in the cluster."""

    @abstractmethod
    async def connection_count(self) -> int:
        """How many connections the cluster has."""

    @abstractmethod
    async def locate(self, client_id: str) -> Member | None:
        """The member with this id, wherever it is."""

    @abstractmethod
    async def room_members(self, room: str) -> list[Member]:
        """Every member of a room, on every node."""

    async def in_room(self, room: str, client_id: str) -> bool:
        """Whether the cluster has the connection `client_id` in `room` (engines may answer it cheaper)."""
        return any(member.client_id == client_id for member in await self.room_members(room))

    @abstractmethod
    async def room_count(self, room: str) -> int:
        """How many members a room has."""

    @abstractmethod
    async def rooms(self) -> list[str]:
        """Rooms that have members."""

    @abstractmethod
    async def user_clients(self, user_id: str) -> list[str]:
        """Connection ids of a user, on every node."""

    @abstractmethod
    async def is_online(self, user_id: str) -> bool:
        """Connected somewhere, or within the grace period after the last connection closed."""

    @abstractmethod
    async def online_users(self) -> list[str]:
        """Users that are online."""

    @abstractmethod
    async def add_dropped(self, count: int) -> None:
        """Add to the cluster's dropped-message count."""

    @abstractmethod
    async def dropped_count(self) -> int:
        """Messages dropped by backpressure on any node."""
