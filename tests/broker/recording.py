"""A recording ClusterListener: every callback of every node of a cluster, in order, in one journal.

Tests wait on the journal (it wakes waiters on each new entry) with a timeout, never with a fixed sleep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from hubbub.broker.base import Publication

Kind = Literal["deliver", "online", "offline"]


@dataclass(frozen=True, slots=True)
class Call:
    """One listener callback: which node got it, what it was, and when (loop time)."""

    node: int
    kind: Kind
    publication: Publication | None
    user_id: str | None
    at: float


class Journal:
    """The callbacks of every node of one cluster."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._changed = asyncio.Event()

    def record(
        self, node: int, kind: Kind, *, publication: Publication | None = None, user_id: str | None = None
    ) -> None:
        """Append a call and wake the waiters."""
        at = asyncio.get_running_loop().time()
        self.calls.append(Call(node, kind, publication, user_id, at))
        self._changed.set()

    def presence(self, kind: Literal["online", "offline"], user_id: str) -> list[Call]:
        """The online or offline calls about one user, on any node."""
        return [call for call in self.calls if call.kind == kind and call.user_id == user_id]

    def delivered(self, node: int) -> list[Publication]:
        """What one node's listener was given, in order."""
        return [c.publication for c in self.calls if c.kind == "deliver" and c.node == node and c.publication]

    async def until(self, condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
        """Wait until `condition()` holds, re-checking it after every callback."""
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; calls: {self.calls}") from None


class RecordingListener:
    """A node's side of the broker (what the Hub is in production), recording into a journal."""

    def __init__(self, journal: Journal, node: int) -> None:
        self.journal = journal
        self.node = node
        self.dropped_to_report = 0
        """Returned (once) by the next drain_dropped call, as a Hub returns its new local drops."""
        self.drain_calls = 0

    def deliver(self, publication: Publication) -> None:
        """Record a publication from another node."""
        self.journal.record(self.node, "deliver", publication=publication)

    def user_online(self, user_id: str) -> None:
        """Record that the cluster decided a user came online."""
        self.journal.record(self.node, "online", user_id=user_id)

    def user_offline(self, user_id: str) -> None:
        """Record that the cluster decided a user went offline."""
        self.journal.record(self.node, "offline", user_id=user_id)

    def drain_dropped(self) -> int:
        """Hand over the drops set in `dropped_to_report`."""
        self.drain_calls += 1
        count, self.dropped_to_report = self.dropped_to_report, 0
        return count
