"""Who connects (a JWT from POST /login), and presence: the server prints who comes and goes."""

from hubbub import JWTAuth
from settings import SECRET

authenticate = JWTAuth(secret=SECRET)


async def on_online(user_id: str) -> None:
    print(f"{user_id} is online")


async def on_offline(user_id: str) -> None:
    print(f"{user_id} is offline")
