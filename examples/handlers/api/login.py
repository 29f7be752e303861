"""POST /login {"name": "ada"} -> {"token": "..."}: a development login that trusts the name it is given."""

import time

import jwt

from hubbub import HTTPError, Request
from settings import SECRET, TOKEN_SECONDS


def post(request: Request) -> dict[str, str]:
    body = request.json()  # bad JSON is answered 400 by itself
    name = body.get("name") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise HTTPError(400, 'send {"name": "..."}')
    claims = {"sub": name.strip(), "name": name.strip(), "exp": int(time.time()) + TOKEN_SECONDS}
    return {"token": jwt.encode(claims, SECRET, algorithm="HS256")}
