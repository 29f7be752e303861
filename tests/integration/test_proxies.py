"""--forwarded-allow-ips over real sockets: a listed proxy names the client, anyone else cannot."""

from __future__ import annotations

from typing import Any

import pytest

from hubbub import App, Event, Request
from hubbub.errors import HandshakeError
from hubbub.testing import serve_app

FORWARDED = {"x-forwarded-for": "203.0.113.50, 127.0.0.1"}


def whoami_app(**options: Any) -> App:
    app = App(**options)

    @app.get("/whoami")
    async def whoami(request: Request) -> dict[str, Any]:
        return {"client": list(request.client)}

    @app.websocket("/whoami")
    async def ws_whoami(event: Event) -> None:
        await event.send(event.remote[0])

    return app


@pytest.mark.parametrize("allowed", [["127.0.0.1"], ["127.0.0.0/8"], ["*"]])
async def test_a_listed_proxy_names_the_client(allowed: list[str]) -> None:
    async with serve_app(whoami_app(forwarded_allow_ips=allowed)) as server:
        result = await server.request("GET", "/whoami", headers=FORWARDED)
        expected = "203.0.113.50"
        assert result.json()["client"] == [expected, 0]
        client = await server.connect("/whoami", headers={"forwarded": 'for="198.51.100.4:5000"'})
        await client.send("?")
        assert await client.recv() == "198.51.100.4"
        await client.close()


@pytest.mark.parametrize("options", [{}, {"forwarded_allow_ips": ["10.0.0.1", "192.168.0.0/16"]}])
async def test_an_unlisted_peer_cannot_choose_its_address(options: dict[str, Any]) -> None:
    async with serve_app(whoami_app(**options)) as server:
        result = await server.request("GET", "/whoami", headers=FORWARDED)
        host, port = result.json()["client"]
        assert host == "127.0.0.1"
        assert port > 0
        client = await server.connect("/whoami", headers={"x-forwarded-for": "203.0.113.50"})
        await client.send("?")
        assert await client.recv() == "127.0.0.1"
        await client.close()


async def test_per_address_limits_count_the_forwarded_address() -> None:
    app = whoami_app(forwarded_allow_ips=["127.0.0.1"], handshakes_per_ip=1, handshake_window=60)
    async with serve_app(app) as server:
        first = await server.connect("/whoami", headers={"x-forwarded-for": "203.0.113.1"})
        second = await server.connect("/whoami", headers={"x-forwarded-for": "203.0.113.2"})
        with pytest.raises(HandshakeError) as refused:
            await server.connect("/whoami", headers={"x-forwarded-for": "203.0.113.1"})
        assert refused.value.status == 429
        await first.close()
        await second.close()
