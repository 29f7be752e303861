"""A cluster of broker nodes sharing state, for either engine, with a recording listener each."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any, Literal

from hubbub.broker.base import Broker, Member, Registration
from hubbub.broker.memory import MemoryBroker, MemoryBus
from hubbub.broker.redis import RedisBroker
from tests.broker.recording import Journal, RecordingListener

Engine = Literal["memory", "redis", "redis-cluster"]


class BrokerCluster:
    """n brokers of one engine that share state: one MemoryBus, or one Redis namespace."""

    def __init__(
        self,
        engine: Engine,
        size: int,
        *,
        presence_grace: float,
        node_timeout: float,
        redis_url: str | None = None,
    ) -> None:
        self.engine = engine
        self.presence_grace = presence_grace
        self.node_timeout = node_timeout
        self.journal = Journal()
        self.listeners = [RecordingListener(self.journal, i) for i in range(size)]
        self.nodes: list[Broker]
        if engine == "memory":
            bus = MemoryBus(presence_grace=presence_grace)
            self.nodes = [MemoryBroker(bus) for _ in range(size)]
        else:
            assert redis_url is not None
            namespace = f"conf-{uuid.uuid4().hex[:12]}"
            url = f"{redis_url}?namespace={namespace}&node_timeout={node_timeout}"
            self.nodes = [RedisBroker(url, presence_grace=presence_grace) for _ in range(size)]
        self.stopped: set[int] = set()

    async def start(self) -> None:
        """Start every node with its listener."""
        for node, listener in zip(self.nodes, self.listeners, strict=True):
            await node.start(listener)

    async def stop(self) -> None:
        """Stop every node that is still running (teardown)."""
        for index in reversed(range(len(self.nodes))):
            if index not in self.stopped:
                await self.stop_node(index)

    async def stop_node(self, index: int) -> None:
        """A graceful stop of one node."""
        self.stopped.add(index)
        await self.nodes[index].stop()

    async def kill(self, index: int) -> None:
        """Simulate a node's death (Redis engine): its heartbeat, subscription and pending work (offline
        decisions, publications) stop without unregistering anything, as if its process had been SIGKILLed."""
        node = self.nodes[index]
        assert isinstance(node, RedisBroker), "only a Redis node can die on its own"
        node._stopping = True  # its loops end even if a cancel is swallowed (redis-py's wait_for on 3.11)
        if node._keeper is not None:  # a dead process's threads die with it
            await asyncio.to_thread(node._keeper.stop)
        tasks = [task for task in (node._beat_task, node._listen_task, *node._tasks) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def live(self) -> list[int]:
        """Indexes of the nodes not stopped."""
        return [i for i in range(len(self.nodes)) if i not in self.stopped]

    def member(self, index: int, user: str | None = None, **info: Any) -> Member:
        """A new connection on node `index`."""
        return Member(uuid.uuid4().hex, self.nodes[index].node_id, user, info)

    async def connect(self, index: int, user: str | None = None, **info: Any) -> Member:
        """Register a new connection on node `index` (it must be admitted)."""
        member = self.member(index, user, **info)
        result = await self.nodes[index].register(member)
        assert result is Registration.OK, f"registration on node {index} refused: {result}"
        return member

    async def presence_settled(self) -> None:
        """Return once every presence decision pending on a live node when called has been made.

        A sentinel user per live node connects and leaves after those decisions were scheduled,
        with the same grace; its offline call comes after theirs."""
        sentinels: list[str] = []
        for index in self.live:
            member = await self.connect(index, f"sentinel-{uuid.uuid4().hex[:8]}")
            await self.nodes[index].unregister(member, [])
            sentinels.append(str(member.user_id))
        await self.journal.until(
            lambda: all(self.journal.presence("offline", user) for user in sentinels),
            "the sentinel users to go offline",
            timeout=self.presence_grace + 5.0,
        )
