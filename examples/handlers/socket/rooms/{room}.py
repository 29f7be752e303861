"""/rooms/{room} : join the room on connect; {"text": ...} goes to everyone in it."""

from hubbub import Envelope, Event

config = {"timeout": 5}


async def on_connect(event: Event) -> None:
    await event.hub.join(event.params["room"], event.client_id)


async def on_message(event: Event) -> None:
    text = event.data.get("text") if isinstance(event.data, dict) else None
    if not isinstance(text, str) or not text:
        raise ValueError('send {"text": "..."}')
    message = {"room": event.params["room"], "from": event.user_id, "text": text}
    await event.hub.room_broadcast(event.params["room"], Envelope("said", message))


async def on_disconnect(event: Event) -> None:
    print(f"{event.user_id} left {', '.join(sorted(event.rooms))}")
