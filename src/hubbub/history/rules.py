"""Which rooms keep history: policies set per room name or by pattern (`chat:*`)."""

from __future__ import annotations

from fnmatch import fnmatchcase

from hubbub.history.base import HistoryPolicy

_CACHE_LIMIT = 10_000


class HistoryRules:
    """Room-name patterns (shell style: `*`, `?`, `[...]`) and their policies; the last rule set for a
    pattern replaces the earlier one, and the first pattern (in the order set) matching a room applies."""

    def __init__(self) -> None:
        self._rules: dict[str, HistoryPolicy | None] = {}
        self._cache: dict[str, HistoryPolicy | None] = {}

    def __bool__(self) -> bool:
        return any(policy is not None for policy in self._rules.values())

    def set(self, pattern: str, policy: HistoryPolicy | None) -> None:
        """Keep history in the rooms matching `pattern` (None: keep none there)."""
        self._rules[pattern] = policy
        self._cache.clear()

    def policy(self, room: str) -> HistoryPolicy | None:
        """The policy of a room, or None when it keeps no history."""
        try:
            return self._cache[room]
        except KeyError:
            pass
        found = None
        for pattern, policy in self._rules.items():
            if pattern == room or fnmatchcase(room, pattern):
                found = policy
                break
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[room] = found
        return found
