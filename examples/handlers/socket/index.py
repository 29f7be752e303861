"""/ : every JSON message comes back with the sender's name (JSON is the default type)."""

from typing import Any

from hubbub import Event


async def on_message(event: Event) -> dict[str, Any]:
    if not isinstance(event.data, dict):
        raise ValueError("send a JSON object")  # answered as {"error": "send a JSON object"}
    return {"from": event.user_id, "echo": event.data}
