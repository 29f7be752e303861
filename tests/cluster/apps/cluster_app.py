"""The app the multi-process cluster tests run on every node (`hubbub run ... --broker redis://...`).

Routes:
- /fanout (raw): every client is in room "fanout"; each message goes to all of them (as in examples/echo.py).
- /echo (raw): every message comes back to its sender.
- /room/{room} (raw): greets with JSON {"client_id", "pid", "node"}, joins `room`; messages go to the room.
- /chat (channel, JWT from `CLUSTER_JWT_SECRET`): clients may join, leave and publish to any room.
- HTTP routes that trigger hub operations from outside (see each handler) and /debug (tasks, fds).

Environment: CLUSTER_JWT_SECRET, CLUSTER_EVENTS (file the presence hooks append JSON lines to),
CLUSTER_LOG (file every node's log records go to, too), CLUSTER_MAX_CONNECTIONS, CLUSTER_MAX_PER_USER,
CLUSTER_PRESENCE_GRACE (seconds, default 0.2).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from typing import Any

from hubbub import App, Event, Request
from hubbub.auth.jwt_auth import JWTAuth

BACKPRESSURE_LIMIT = 64 * 1024
"""Bytes a connection may have queued; more is dropped and counted (policy "drop")."""


def _int_env(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None


app = App(
    max_connections=_int_env("CLUSTER_MAX_CONNECTIONS"),
    max_connections_per_user=_int_env("CLUSTER_MAX_PER_USER"),
    presence_grace=float(os.environ.get("CLUSTER_PRESENCE_GRACE", "0.2")),
    backpressure_policy="drop",
    max_backpressure=BACKPRESSURE_LIMIT,
    shutdown_timeout=3.0,
    close_timeout=1.0,
)

if os.environ.get("CLUSTER_LOG"):
    _log_file = logging.FileHandler(os.environ["CLUSTER_LOG"])
    _log_file.setFormatter(logging.Formatter("%(process)d %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(_log_file)

# ---- presence hooks: one JSON line per decision, in a file every node appends to ----------


def _record(event: str, user_id: str) -> None:
    path = os.environ.get("CLUSTER_EVENTS")
    if not path:
        return
    line = json.dumps({"event": event, "user": user_id, "pid": os.getpid(), "t": time.time()}) + "\n"
    with open(path, "a", encoding="utf-8") as log:
        log.write(line)


@app.on_online
def went_online(user_id: str) -> None:
    _record("online", user_id)


@app.on_offline
def went_offline(user_id: str) -> None:
    _record("offline", user_id)


# ---- WebSocket routes ------------------------------------------------------------------------

fanout = app.websocket("/fanout")


@fanout.on_connect
async def join_fanout(event: Event) -> None:
    await event.hub.join("fanout", event.client_id)


@fanout.on_message
async def fan_out(event: Event) -> None:
    await event.hub.room_broadcast("fanout", event.data)


@app.websocket("/echo")
async def echo(event: Event) -> None:
    await event.send(event.data)


room_route = app.websocket("/room/{room}")


@room_route.on_connect
async def join_room(event: Event) -> None:
    await event.send(json.dumps({"client_id": event.client_id, "pid": os.getpid(), "node": event.hub.node_id}))
    await event.hub.join(event.params["room"], event.client_id)


@room_route.on_message
async def to_room(event: Event) -> None:
    await event.hub.room_broadcast(event.params["room"], event.data)


chat = app.channel("/chat", auth=JWTAuth(secret=os.environ.get("CLUSTER_JWT_SECRET", "cluster-secret")))


@chat.authorize
def anyone_anywhere(event: Event, action: str, room: str) -> bool:
    return True


# ---- HTTP: hub operations from outside ---------------------------------------------------------


@app.get("/pid")
def pid(request: Request) -> dict[str, Any]:
    """This process and its node id."""
    return {"pid": os.getpid(), "node": app.hub.node_id}


@app.post("/send/{client_id}")
async def send_to_client(request: Request) -> dict[str, Any]:
    """Send the body (text) to a client, wherever it is."""
    return {"sent": await app.hub.send(request.path_params["client_id"], request.text())}


@app.post("/user/{user_id}")
async def send_to_user(request: Request) -> dict[str, Any]:
    """Send the body (text) to every device of a user."""
    return {"devices": await app.hub.send_to_user(request.path_params["user_id"], request.text())}


@app.post("/close/{client_id}")
async def close_client(request: Request) -> dict[str, Any]:
    """Close a client, wherever it is, with ?code= and ?reason=."""
    code = int(request.query.get("code", "1000"))
    closed = await app.hub.close(request.path_params["client_id"], code, request.query.get("reason", ""))
    return {"closed": closed}


@app.post("/rooms/{room}")
async def broadcast_to_room(request: Request) -> dict[str, Any]:
    """Send the body (text) to every member of a room."""
    return {"local": await app.hub.room_broadcast(request.path_params["room"], request.text())}


@app.get("/rooms/{room}")
async def room(request: Request) -> dict[str, Any]:
    """A room's members and count, cluster-wide."""
    name = request.path_params["room"]
    return {"members": sorted(await app.hub.room_members(name)), "count": await app.hub.room_count(name)}


@app.get("/stats")
async def stats(request: Request) -> dict[str, Any]:
    """Cluster-wide connections, online users and dropped messages."""
    hub = app.hub
    return {
        "connections": await hub.connection_count(),
        "clients": sorted(await hub.clients()),
        "online": sorted(await hub.online_users()),
        "dropped": await hub.dropped_count(),
    }


@app.get("/users/{user_id}")
async def user(request: Request) -> dict[str, Any]:
    """A user's devices and whether they are online, cluster-wide."""
    user_id = request.path_params["user_id"]
    return {"clients": sorted(await app.hub.user_clients(user_id)), "online": await app.hub.is_online(user_id)}


@app.get("/local/{client_id}")
def local(request: Request) -> dict[str, Any]:
    """Whether this node still holds the client (its own registry; works while Redis is down)."""
    return {"here": app.hub.get(request.path_params["client_id"]) is not None}


@app.post("/flood/{client_id}")
async def flood(request: Request) -> dict[str, Any]:
    """Send up to ?count= messages of ?size= bytes to a local client, 16 per loop iteration, until
    one is dropped (the client does not read: its socket fills, then its outbox); how many were dropped."""
    conn = app.hub.get(request.path_params["client_id"])
    if conn is None:
        return {"dropped": None}
    payload = "x" * int(request.query.get("size", "16384"))
    dropped = 0
    for sent in range(int(request.query.get("count", "10"))):
        dropped += not conn.send_nowait(payload)
        if sent % 16 == 15:
            if dropped:
                break
            await asyncio.sleep(0.001)
    return {"dropped": dropped}


@app.get("/debug")
def debug(request: Request) -> dict[str, Any]:
    """Resource use of this process: asyncio tasks and open file descriptors."""
    broker: Any = app.hub.broker
    return {
        "pid": os.getpid(),
        "tasks": len(asyncio.all_tasks()),
        "fds": len(os.listdir("/proc/self/fd")),
        "lost_publications": broker.lost_publications,
        "stale_publications": broker.stale_publications,
        "reconnects": getattr(broker, "reconnects", 0),
    }
