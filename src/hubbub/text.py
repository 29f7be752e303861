"""Bounding client-chosen strings before they are echoed in errors or written to logs."""

from __future__ import annotations

from typing import Final

ECHO_LIMIT: Final = 64
"""Characters of a client-chosen string (event type, room, path...) kept in an error or a log line."""


def clip(value: object, limit: int = ECHO_LIMIT) -> str:
    """`value` as text, cut to `limit` characters with a note of how long it was.

    >>> clip("a" * 100, 8)
    'aaaaaaaa...(100 chars)'
    """
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...({len(text)} chars)"
