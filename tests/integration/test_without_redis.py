"""The embedded default needs no redis-py: `pip install .` does not install it (README's Quick start)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio
    import sys

    sys.modules["redis"] = None  # as if redis-py were not installed: importing it raises
    from hubbub import App, Envelope
    from hubbub.client import connect
    from hubbub.testing import serve_app

    async def main() -> None:
        app = App()
        app.history("chat:*", size=10, ttl=60)
        app.channel("/chat")
        async with serve_app(app) as server:
            ws = await connect(server.url("/chat"))
            await ws.recv()  # welcome
            await app.hub.room_broadcast("chat:a", Envelope("said", "hi"))
            await app.hub.send_to_user("away", Envelope("note", "hi"), durable=True)
            assert (await server.request("GET", "/healthz")).status == 200
            await ws.close()
        print("served")

    asyncio.run(main())
    """
)


def test_an_app_on_the_embedded_default_runs_without_redis_py() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "served"
