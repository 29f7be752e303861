"""/upper : raw text in, upper-case text out."""

from hubbub import Event

config = {"type": "string", "timeout": 2}


def on_message(event: Event) -> str:
    return event.data.upper()
