"""A node's lease, renewed from a thread while its event loop is held up.

The heartbeat renews the lease from the event loop. One loop iteration handles every socket
that is ready before any timer, so a burst (16,000 clients closing at once held a worker's
loop 3-6 s in docs/benchmarks.md) can keep the heartbeat from running for longer than the
lease, and the other nodes would reap a node that is only busy. The keeper is a thread with
a connection of its own: each heartbeat period it looks at when the loop's heartbeat last ran,
and if that is late it renews the lease itself (the same fenced `RENEW`, so a reaped node is
not brought back). It covers a loop that runs late, not one that has stopped: after
`loop_grace` seconds without a heartbeat it stops renewing and the node is reaped as a dead
one would be. A paused process (SIGSTOP, a VM pause) stops the thread too.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("hubbub.broker.redis")


class LeaseKeeper:
    """Renews the lease with `renew(client)` when the loop's heartbeat (`loop_ran`) is late."""

    def __init__(
        self,
        connect: Callable[[], Any],
        renew: Callable[[Any], object],
        *,
        every: float,
        loop_grace: float,
        name: str,
    ) -> None:
        self._connect = connect
        self._renew = renew
        self._every = every
        self._loop_grace = loop_grace
        self._loop_seen = time.monotonic()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.renewals = 0
        """How many times the keeper renewed the lease for a late loop."""

    def start(self) -> None:
        """Start watching."""
        self._loop_seen = time.monotonic()
        self._thread.start()

    def loop_ran(self) -> None:
        """The loop's heartbeat ran now (called from the loop)."""
        self._loop_seen = time.monotonic()

    def stop(self) -> None:
        """Stop renewing (the node stops, or dies in a test) and wait for the thread."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2 * self._every + 5.0)

    def _run(self) -> None:
        client = None
        try:
            while not self._stopped.wait(self._every):
                late = time.monotonic() - self._loop_seen
                if late < 1.5 * self._every or late > self._loop_grace:
                    continue  # the loop renews on its own, or it looks stopped rather than busy
                try:
                    if client is None:
                        client = self._connect()
                    self._renew(client)
                    self.renewals += 1
                except Exception as exc:  # Redis unreachable: the loop's heartbeat reports it when it runs
                    logger.debug("lease keeper could not renew: %s", exc)
                    _close(client)
                    client = None
        finally:
            _close(client)


def _close(client: Any) -> None:
    if client is not None:
        with contextlib.suppress(Exception):  # closing a broken connection may fail too; nothing to do
            client.close()
