"""Device connections for the inbox tests: open one, read its durable messages, acknowledge them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tests.integration.example_support import EnvelopeClient, Library, open_client


def is_durable(envelope: dict[str, Any]) -> bool:
    """Whether an envelope is a message from the inbox (it carries its offset)."""
    return "inbox" in envelope and "type" in envelope


@asynccontextmanager
async def device(
    base_url: str, user: str, name: str | None, library: Library = "websockets"
) -> AsyncIterator[EnvelopeClient]:
    """A connection of `user` on device `name` (no device parameter when None)."""
    query = f"user={user}" + (f"&device={name}" if name is not None else "")
    async with open_client(f"{base_url}/inbox?{query}", library) as client:
        yield client


async def notice(client: EnvelopeClient) -> dict[str, Any]:
    """The hubbub.inbox notice that opens a device's replay."""
    return await client.next_of("hubbub.inbox")


async def durable(client: EnvelopeClient, count: int) -> list[dict[str, Any]]:
    """The next `count` durable messages, in the order they arrived."""
    return [await client.next(is_durable) for _ in range(count)]


def offsets(envelopes: list[dict[str, Any]]) -> list[int]:
    """The inbox offsets of these envelopes."""
    return [envelope["inbox"] for envelope in envelopes]
