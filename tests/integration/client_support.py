"""The app and helpers of the `hubbub.client.Client` tests: a channel route anyone may use
(/rooms), one that needs a JWT (/secure), served on the memory engine or on a private
redis-server, and a recorder of what a client's listeners saw."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import jwt

from hubbub import App, Event
from hubbub.auth.jwt_auth import JWTAuth
from hubbub.broker.redis import RedisBroker
from hubbub.client import Backoff, Client
from hubbub.protocol.envelope import Envelope, EnvelopeError
from hubbub.testing import TestServer, serve_app

SECRET = "hubbub-client-tests-hmac-secret-of-32-bytes"
AUDIENCE = "hubbub-client-tests"
WAIT = 10.0
FAST = Backoff(initial=0.02, maximum=0.1)
"""Reconnect delays short enough for tests (full jitter, at most 100 ms)."""


def token(sub: str = "alice", *, ttl: float = 600) -> str:
    """A JWT the /secure route accepts."""
    return jwt.encode({"sub": sub, "aud": AUDIENCE, "exp": int(time.time() + ttl)}, SECRET, algorithm="HS256")


def build(redis_url: str | None = None, **options: Any) -> App:
    """The test app: /rooms (no auth, everything allowed), /secure (JWT); every room keeps its
    last 5,000 publications, except rooms named short:* (the last 10)."""
    broker = RedisBroker(redis_url, namespace=uuid.uuid4().hex[:8]) if redis_url else None
    app = App(broker=broker, presence_grace=0.05, **options)
    app.history("short:*", size=10, ttl=600)
    app.history("*", size=5000, ttl=600)
    rooms = app.channel("/rooms", auth=False)
    secure = app.channel("/secure", auth=JWTAuth(secret=SECRET, audience=AUDIENCE))
    for channel in (rooms, secure):

        @channel.authorize
        async def allow(event: Event, action: str, room: str) -> bool:
            return not room.startswith("private")

    @rooms.on("add")
    async def add(event: Event) -> int:
        return int(event.data["a"]) + int(event.data["b"])

    @rooms.on("fail")
    async def fail(event: Event) -> None:
        raise EnvelopeError("nope", "not today", hint="tomorrow")

    @rooms.on("ask")
    async def ask(event: Event) -> Any:
        return await event.connection.call("confirm", event.data, timeout=5)

    @rooms.on("note")
    async def note(event: Event) -> None:
        await event.connection.send(Envelope("noted", event.data))

    @secure.on("whoami")
    async def whoami(event: Event) -> str | None:
        return event.user.id if event.user is not None else None

    return app


@asynccontextmanager
async def served(redis_url: str | None = None, **options: Any) -> AsyncIterator[TestServer]:
    """The test app on a free port (on Redis when `redis_url` is given)."""
    async with serve_app(build(redis_url, **options)) as server:
        yield server


class Recorder:
    """Everything a client's listeners received, by type, with a way to wait for more."""

    def __init__(self, client: Client, *types: str) -> None:
        self.seen: dict[str, list[Any]] = {}
        self._changed = asyncio.Event()
        for type in types:
            client.on(type, self._listener(type))

    def _listener(self, type: str) -> Any:
        def record(data: Any) -> None:
            self.seen.setdefault(type, []).append(data)
            self._changed.set()

        return record

    def of(self, type: str) -> list[Any]:
        return self.seen.get(type, [])

    async def wait(self, type: str, count: int = 1, timeout: float = WAIT) -> list[Any]:
        """Wait until `count` events of `type` arrived; return them all."""
        async with asyncio.timeout(timeout):
            while len(self.of(type)) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.of(type)
