"""How the Redis engine writes a member into Redis, and reads Redis's answers back."""

from __future__ import annotations

import json
from typing import Any

from hubbub.broker.base import Member


def member_blob(member: Member, epoch: int | None = None) -> str:
    """A member as the JSON Redis keeps; with `epoch` (a Redis Cluster's room members), the writer's epoch
    rides along as "e", so that a reaper removes only what the dead node wrote."""
    raw: dict[str, Any] = {"c": member.client_id, "n": member.node_id, "u": member.user_id, "i": dict(member.info)}
    if epoch is not None:
        raw["e"] = epoch
    return json.dumps(raw, separators=(",", ":"))


def member_from_blob(blob: bytes | str) -> Member:
    """The inverse of `member_blob`."""
    raw = json.loads(blob)
    return Member(raw["c"], raw["n"], raw.get("u"), raw.get("i") or {})


def text(value: Any) -> str:
    """A Redis reply (bytes or str) as str."""
    return value.decode() if isinstance(value, bytes) else str(value)
