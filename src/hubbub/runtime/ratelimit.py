"""Rate limits: a token bucket per connection, and handshakes per client address."""

from __future__ import annotations

from collections import OrderedDict


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; each message takes one."""

    __slots__ = ("rate", "burst", "_tokens", "_at")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = now

    def take(self, now: float) -> bool:
        """Spend a token if there is one."""
        tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True


class HandshakeLimiter:
    """At most `limit` handshakes per client address per `window` seconds (fixed windows),
    remembering at most `max_addresses` addresses (oldest forgotten first)."""

    def __init__(self, limit: int, window: float, max_addresses: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_addresses = max_addresses
        self._windows: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def allow(self, address: str, now: float) -> bool:
        """Count a handshake from `address`; False if it is over the limit."""
        start, count = self._windows.pop(address, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        count += 1
        self._windows[address] = (start, count)
        if len(self._windows) > self.max_addresses:
            self._windows.popitem(last=False)
        return count <= self.limit

    def retry_after(self, address: str, now: float) -> int:
        """Whole seconds until `address` may try again."""
        start, _ = self._windows.get(address, (now, 0))
        return max(1, int(start + self.window - now + 0.999))
