"""Push notifications to a user's devices from any backend, over HTTP.

Run: hubbub run examples/notifications.py:app --port 8001, then open http://127.0.0.1:8001/

HTTP
  POST /api/notify/{user_id}   header "x-api-key: <NOTIFY_API_KEY>", any JSON body -> a durable
                               {"type": "notification", "inbox": <offset>, "data": <body>} for every device of
                               that user: live to those connected, kept for the others until each device
                               acknowledges it; answers {"delivered": N} (N: the user's open connections)
                               (401: no or wrong key; 400: the body is not JSON)
  POST /api/login              {"user_id": "alice"} -> {"token", "user_id", "expires_at"} (a development
                               login: anyone may be anyone; switch it off with NOTIFY_DEV_LOGIN=0)
  GET /                        the page (notifications_static/); GET /hubbub/hubbub.js the browser client

Channel /notifications (JSON envelopes), authenticated with a JWT as ?token= (or a Bearer header, or the
"bearer.<token>" subprotocol); add &device=<id> (one stable id per browser or app install) to get the
notifications sent while that device was away, after a {"type": "hubbub.inbox", "data": {"device",
"pending", "missed"}} notice, and acknowledge them with {"type": "hubbub.ack", "data": {"inbox": N}}
(hubbub.js does it). Every NOTIFY_INTERVAL seconds everyone connected gets
{"type": "notice", "data": {"seq", "text", "ts"}} (not kept for anyone away).

Environment: NOTIFY_API_KEY (default "dev-notify-key"), NOTIFY_JWT_SECRET (default: random per process),
NOTIFY_TOKEN_TTL (seconds, default 3600), NOTIFY_INTERVAL (seconds, default 30), NOTIFY_DEV_LOGIN (default 1),
NOTIFY_STORE (where notifications wait: unset for memory, sqlite:///notifications.db to survive restarts),
NOTIFY_KEEP (notifications kept per user, default 100), NOTIFY_KEEP_FOR (seconds, default 604800: a week).
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

import jwt

import hubbub
from hubbub import App, JSONResponse, Request
from hubbub.auth import JWTAuth
from hubbub.inbox import Inbox, InboxLimits
from hubbub.protocol.envelope import Envelope

HERE = Path(__file__).resolve().parent
AUDIENCE = "hubbub-notifications"
USER_ID = re.compile(r"[A-Za-z0-9_.@-]{1,64}")

API_KEY = os.environ.get("NOTIFY_API_KEY", "dev-notify-key")
SECRET = os.environ.get("NOTIFY_JWT_SECRET") or secrets.token_urlsafe(32)
TOKEN_TTL = float(os.environ.get("NOTIFY_TOKEN_TTL", "3600"))
INTERVAL = float(os.environ.get("NOTIFY_INTERVAL", "30"))
DEV_LOGIN = os.environ.get("NOTIFY_DEV_LOGIN", "1") not in ("0", "false", "no", "")
STORE = os.environ.get("NOTIFY_STORE") or None
KEEP = int(os.environ.get("NOTIFY_KEEP", "100"))
KEEP_FOR = float(os.environ.get("NOTIFY_KEEP_FOR", str(7 * 86400)))

app = App(
    max_message_size=4 * 1024,
    message_rate=5,
    message_burst=10,
    inbox=Inbox(STORE, limits=InboxLimits(size=KEEP, ttl=KEEP_FOR)),
)
app.authenticate(JWTAuth(secret=SECRET, audience=AUDIENCE))
app.channel("/notifications")


def has_api_key(request: Request) -> bool:
    """Whether the request carries the right x-api-key (compared in constant time)."""
    given = request.headers.get("x-api-key", "")
    return hmac.compare_digest(given.encode("utf-8"), API_KEY.encode("utf-8"))


@app.post("/api/notify/{user_id}")
async def notify(request: Request) -> JSONResponse:
    """Push the JSON body to every device of a user, now or when each device comes back."""
    if not has_api_key(request):
        return JSONResponse({"error": "missing or invalid x-api-key"}, status=401)
    try:
        data = request.json()
    except ValueError:
        return JSONResponse({"error": "body must be JSON"}, status=400)
    notification = Envelope("notification", data)
    delivered = await app.hub.send_to_user(request.path_params["user_id"], notification, durable=True)
    return JSONResponse({"delivered": delivered})


@app.post("/api/login")
async def login(request: Request) -> JSONResponse:
    """Development login: a token for the user id asked for."""
    if not DEV_LOGIN:
        return JSONResponse({"error": "the development login is switched off"}, status=404)
    try:
        body: Any = request.json()
    except ValueError:
        return JSONResponse({"error": "body must be JSON"}, status=400)
    user_id = body.get("user_id") if isinstance(body, dict) else None
    if not isinstance(user_id, str) or not USER_ID.fullmatch(user_id):
        return JSONResponse({"error": "user_id must be 1-64 characters of A-Z a-z 0-9 _ . @ -"}, status=400)
    now = int(time.time())
    expires_at = now + int(TOKEN_TTL)
    claims = {"sub": user_id, "aud": AUDIENCE, "iat": now, "exp": expires_at}
    return JSONResponse(
        {"token": jwt.encode(claims, SECRET, algorithm="HS256"), "user_id": user_id, "expires_at": expires_at}
    )


@app.background
async def periodic_notice() -> None:
    """Every INTERVAL seconds, a notice to everyone connected."""
    for seq in itertools.count(1):
        await asyncio.sleep(INTERVAL)
        text = f"periodic notice #{seq}: {await app.hub.connection_count()} connected"
        await app.hub.broadcast(Envelope("notice", {"seq": seq, "text": text, "ts": int(time.time() * 1000)}))


app.static("/hubbub", hubbub.STATIC_DIR)
app.static("/", HERE / "notifications_static")
