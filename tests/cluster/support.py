"""Helpers of the cluster tests: start nodes of an app on a private Redis, talk to them over
HTTP and WebSocket (three client libraries), read the presence events the nodes record."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Literal

import aiohttp
import jwt
from websockets.asyncio.client import connect as websockets_connect

from hubbub.client import connect as hubbub_connect
from hubbub.testing import Cluster, Node, wait_for

ROOT = Path(__file__).resolve().parents[2]
APP = "tests/cluster/apps/cluster_app.py:app"
ECHO_APP = "examples/echo.py:app"
SECRET = "cluster-tests-secret-of-at-least-32-bytes"
TIMEOUT = 10.0
"""Generous bound for anything that should happen promptly."""

Library = Literal["websockets", "aiohttp", "hubbub"]


def namespaced(redis_url: str, **options: object) -> str:
    """The Redis URL with a fresh namespace (and other hubbub options such as node_timeout)."""
    query = "&".join(f"{key}={value}" for key, value in {"namespace": uuid.uuid4().hex[:8], **options}.items())
    return f"{redis_url}?{query}"


@contextmanager
def running_cluster(
    redis_url: str,
    nodes: int = 2,
    *,
    target: str = APP,
    env: Mapping[str, str] | None = None,
) -> Iterator[Cluster]:
    """N nodes of `target`, started and stopped in parallel (each stop is a graceful SIGTERM)."""
    cluster = Cluster(target, redis_url, nodes, env={"CLUSTER_JWT_SECRET": SECRET, **(env or {})}, cwd=ROOT)
    try:
        _each(cluster.nodes, Node.start)
        yield cluster
    finally:
        _each(cluster.nodes, Node.stop)


def _each(nodes: list[Node], action: Callable[[Node], object]) -> None:
    with ThreadPoolExecutor(len(nodes)) as pool:
        for result in [pool.submit(action, node) for node in nodes]:
            result.result()


def fresh(prefix: str) -> str:
    """A name (room, user) no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def token(user_id: str, name: str | None = None) -> str:
    """A JWT the cluster app accepts for `user_id`."""
    claims = {"sub": user_id, "name": name or user_id, "exp": time.time() + 3600}
    return jwt.encode(claims, SECRET, algorithm="HS256")


async def http(node: Node, method: str, path: str, body: str = "") -> tuple[int, Any]:
    """One HTTP request to a node; returns the status and the parsed JSON body (None if not JSON)."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session,
        session.request(method, node.http_url(path), data=body.encode()) as response,
    ):
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, None


async def get(node: Node, path: str) -> Any:
    """GET a node's JSON route (must answer 200)."""
    status, body = await http(node, "GET", path)
    assert status == 200, (path, status, body)
    return body


async def post(node: Node, path: str, body: str = "") -> Any:
    """POST to a node's JSON route (must answer 200)."""
    status, answer = await http(node, "POST", path, body)
    assert status == 200, (path, status, answer)
    return answer


async def eventually(condition: Callable[[], Awaitable[object] | object], timeout: float = TIMEOUT) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds."""
    await wait_for(condition, timeout=timeout, interval=0.05)


def read_events(path: Path) -> list[dict[str, Any]]:
    """The presence events the nodes recorded so far, in file order."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def count_events(path: Path, event: str, user_id: str) -> int:
    """How many times `event` ("online" / "offline") was recorded for a user, on any node."""
    return sum(1 for entry in read_events(path) if entry["event"] == event and entry["user"] == user_id)


class Peer:
    """A text WebSocket connection through one of three client libraries, one shape for all."""

    def __init__(
        self,
        send: Callable[[str], Awaitable[None]],
        recv: Callable[[float], Awaitable[str | None]],
        closed: Callable[[float], Awaitable[tuple[int | None, str]]],
        close: Callable[[], Awaitable[Any]],
    ) -> None:
        self.send = send
        self._recv = recv
        self.wait_closed = closed
        """Wait until the server closed the connection; return its close code and reason."""
        self.close = close

    async def recv(self, timeout: float = TIMEOUT) -> str:
        """The next text message (TimeoutError if none comes; AssertionError if the connection closed)."""
        message = await self._recv(timeout)
        assert message is not None, "the connection closed"
        return message

    async def recv_json(self, timeout: float = TIMEOUT) -> Any:
        """The next message, parsed as JSON."""
        return json.loads(await self.recv(timeout))

    async def recv_until(self, wanted: Callable[[str], bool], timeout: float = TIMEOUT) -> list[str]:
        """Messages up to and including the first that `wanted` accepts."""
        seen: list[str] = []
        async with asyncio.timeout(timeout):
            while not seen or not wanted(seen[-1]):
                seen.append(await self.recv(timeout))
        return seen


def _quietly(close: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[None]]:
    async def closing() -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(close(), 3.0)

    return closing


async def _text_or_none(receiving: Awaitable[str | bytes]) -> str | None:
    """The awaited message as text; None if the connection closed instead (a timeout still raises)."""
    try:
        message = await receiving
    except TimeoutError:
        raise
    except Exception:  # closed
        return None
    return message if isinstance(message, str) else message.decode()


async def _websockets_peer(stack: AsyncExitStack, url: str, headers: Mapping[str, str]) -> Peer:
    ws = await websockets_connect(url, additional_headers=dict(headers), open_timeout=TIMEOUT, max_queue=None)
    stack.push_async_callback(_quietly(ws.close))

    async def recv(timeout: float) -> str | None:
        return await _text_or_none(asyncio.wait_for(ws.recv(), timeout))

    async def closed(timeout: float) -> tuple[int | None, str]:
        await asyncio.wait_for(ws.wait_closed(), timeout)
        return ws.close_code, ws.close_reason or ""

    return Peer(ws.send, recv, closed, ws.close)


async def _aiohttp_peer(stack: AsyncExitStack, url: str, headers: Mapping[str, str]) -> Peer:
    session = aiohttp.ClientSession()
    stack.push_async_callback(_quietly(session.close))
    ws = await session.ws_connect(url, headers=dict(headers), timeout=aiohttp.ClientWSTimeout(ws_close=3.0))
    stack.push_async_callback(_quietly(ws.close))
    ended: list[tuple[int | None, str]] = []

    async def recv(timeout: float) -> str | None:
        if ended:
            return None
        message = await ws.receive(timeout)
        if message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            return message.data if isinstance(message.data, str) else message.data.decode()
        if message.type is aiohttp.WSMsgType.CLOSE:  # the server's close frame: its code and reason
            ended.append((int(message.data), str(message.extra or "")))
        else:  # closed without a close frame (or after ours)
            ended.append((ws.close_code, ""))
        return None

    async def closed(timeout: float) -> tuple[int | None, str]:
        async with asyncio.timeout(timeout):
            while await recv(timeout) is not None:
                pass
        return ended[0]

    return Peer(ws.send_str, recv, closed, ws.close)


async def _hubbub_peer(stack: AsyncExitStack, url: str, headers: Mapping[str, str]) -> Peer:
    ws = await hubbub_connect(url, headers=dict(headers), timeout=TIMEOUT)
    stack.push_async_callback(_quietly(ws.close))

    async def recv(timeout: float) -> str | None:
        return await _text_or_none(ws.recv(timeout))

    async def closed(timeout: float) -> tuple[int | None, str]:
        code = await ws.wait_closed(timeout)
        return code, ws.close_reason

    return Peer(ws.send, recv, closed, ws.close)


_OPENERS = {"websockets": _websockets_peer, "aiohttp": _aiohttp_peer, "hubbub": _hubbub_peer}
LIBRARIES: tuple[Library, ...] = ("websockets", "aiohttp", "hubbub")
_libraries: Iterator[Library] = itertools.cycle(LIBRARIES)


class Clients:
    """Every client a test opens, closed (or dropped) when the test ends."""

    def __init__(self, stack: AsyncExitStack) -> None:
        self._stack = stack

    async def raw(self, url: str, library: Library | None = None, headers: Mapping[str, str] | None = None) -> Peer:
        """A text connection (each call without `library` takes the next of the three libraries)."""
        chosen = library if library is not None else next(_libraries)
        return await _OPENERS[chosen](self._stack, url, headers or {})

    async def room(self, node: Node, room: str, library: Library | None = None) -> tuple[Peer, dict[str, Any]]:
        """A client of the app's /room/{room} route and its greeting (client_id, pid, node)."""
        peer = await self.raw(node.url(f"/room/{room}"), library)
        return peer, await peer.recv_json()

    async def chat(self, node: Node, user_id: str, library: Library | None = None) -> ChatPeer:
        """A JWT-authenticated client of /chat; its welcome has been read."""
        peer = await self.raw(node.url("/chat"), library, {"Authorization": f"Bearer {token(user_id)}"})
        chat = ChatPeer(peer)
        welcome = await chat.next(lambda envelope: envelope.get("type") == "hubbub.welcome")
        chat.client_id = welcome["data"]["client_id"]
        return chat


class ChatPeer:
    """A /chat client speaking JSON envelopes; frames that are not envelopes are kept as {"raw": text}."""

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.client_id = ""
        self.inbox: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    async def next(self, wanted: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT) -> dict[str, Any]:
        """Take the first received envelope that `wanted` accepts (waiting for more if needed)."""
        async with asyncio.timeout(timeout):
            while True:
                for index, envelope in enumerate(self.inbox):
                    if wanted(envelope):
                        return self.inbox.pop(index)
                text = await self.peer.recv(timeout)
                try:
                    decoded = json.loads(text)
                except ValueError:
                    decoded = None
                self.inbox.append(decoded if isinstance(decoded, dict) else {"raw": text})

    async def request(self, kind: str, data: Any) -> Any:
        """Send a request envelope and return its reply's data (fails on an error reply)."""
        request_id = next(self._ids)
        await self.peer.send(json.dumps({"type": kind, "data": data, "id": request_id}))
        reply = await self.next(lambda envelope: envelope.get("id") == request_id and "type" not in envelope)
        assert "error" not in reply, reply
        return reply["data"]


@asynccontextmanager
async def opened_clients() -> AsyncIterator[Clients]:
    """Clients that are all closed on exit, so nodes never wait on a silent peer at shutdown."""
    async with AsyncExitStack() as stack:
        yield Clients(stack)


def not_probe(message: str) -> bool:
    """Whether a message is a test's own, not a connectivity probe."""
    return not message.startswith("probe-")


async def probe_until_heard(sender: Peer, receiver: Peer, timeout: float = TIMEOUT) -> list[str]:
    """Send numbered probes from `sender` until `receiver` hears one: the route between them works.
    Returns what `receiver` got meanwhile; later reads should skip leftover probes (`Peer.recv_until`)."""
    heard: list[str] = []
    async with asyncio.timeout(timeout):
        for number in itertools.count():
            await sender.send(f"probe-{number}")
            try:
                while not heard or not heard[-1].startswith("probe-"):
                    heard.append(await receiver.recv(0.25))
            except TimeoutError:
                continue
            return heard
    raise AssertionError("unreachable")
