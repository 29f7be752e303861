"""GET /online/{user_id} -> {"online": true|false}, for logged-in callers (config auth: the JWT of /login)."""

from hubbub import Request

config = {"auth": True}


async def get(request: Request) -> dict[str, bool]:
    return {"online": await request.app.hub.is_online(request.path_params["user_id"])}
