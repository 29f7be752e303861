"""Settings shared by the modules of the handler-folder example (any module in the folder may import it).

Run: hubbub run examples/handlers --port 8003

- POST /login {"name": "ada"} -> {"token": "..."} (a JWT signed with HANDLERS_SECRET)
- ws://127.0.0.1:8003/?token=... : JSON messages echoed back with the sender's name
- ws://127.0.0.1:8003/upper?token=... : text in, upper-case text out (config type "string")
- ws://127.0.0.1:8003/rooms/{room}?token=... : {"text": ...} goes to everyone in the room
- GET /online/{user_id} -> {"online": true|false}
"""

import os

SECRET = os.environ.get("HANDLERS_SECRET", "dev-only-secret-change-me-0123456789")
"""Signs the login tokens; set HANDLERS_SECRET (32 bytes or more) in real use."""
TOKEN_SECONDS = 3600
