"""TLS: https:// and wss:// on the app's port with a certificate and key, over real sockets."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import aiohttp
import pytest
from websockets.asyncio.client import connect as ws_connect

from hubbub import App, ConfigurationError, Event
from hubbub.testing import serve_app
from tests.support.certs import SelfSigned, self_signed


@pytest.fixture
def cert(tmp_path: Path) -> SelfSigned:
    return self_signed(tmp_path)


def echo_app(cert: SelfSigned, **options: object) -> App:
    app = App(certfile=str(cert.certfile), keyfile=str(cert.keyfile), **options)

    @app.websocket("/echo")
    async def echo(event: Event) -> None:
        await event.send(event.data)

    @app.get("/hello")
    async def hello(request: object) -> dict[str, str]:
        return {"hello": "tls"}

    return app


async def test_wss_and_https_with_a_verified_certificate(cert: SelfSigned) -> None:
    async with serve_app(echo_app(cert)) as server:
        assert server.running.url.startswith("wss://")
        context = cert.client_context()
        async with ws_connect(f"wss://127.0.0.1:{server.port}/echo", ssl=context) as ws:
            for text in ("one", "two" * 10_000):
                await ws.send(text)
                assert await asyncio.wait_for(ws.recv(), 5) == text
            assert isinstance(ws.transport.get_extra_info("ssl_object"), ssl.SSLObject)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"https://127.0.0.1:{server.port}/hello", ssl=context) as response:
                assert response.status == 200
                assert await response.json() == {"hello": "tls"}
            async with session.get(f"https://127.0.0.1:{server.port}/metrics", ssl=context) as response:
                assert response.status == 200
                assert "hubbub_messages_received_total 2.0" in await response.text()


async def test_a_client_that_does_not_trust_the_certificate_is_refused(cert: SelfSigned) -> None:
    async with serve_app(echo_app(cert)) as server:
        with pytest.raises(ssl.SSLCertVerificationError):
            async with ws_connect(f"wss://127.0.0.1:{server.port}/echo", ssl=ssl.create_default_context()):
                pass
        # The server is unharmed by the failed handshake.
        async with ws_connect(f"wss://127.0.0.1:{server.port}/echo", ssl=cert.client_context()) as ws:
            await ws.send("still here")
            assert await asyncio.wait_for(ws.recv(), 5) == "still here"


async def test_plain_http_on_the_tls_port_gets_no_answer(cert: SelfSigned) -> None:
    async with serve_app(echo_app(cert)) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert not data.startswith(b"HTTP/1.1 200")


def test_certfile_and_keyfile_go_together(cert: SelfSigned) -> None:
    with pytest.raises(ConfigurationError, match="certfile and keyfile go together"):
        App(certfile=str(cert.certfile))


async def test_an_unusable_certificate_is_refused_before_listening(tmp_path: Path, cert: SelfSigned) -> None:
    (tmp_path / "bad.pem").write_text("not a certificate")
    for certfile, keyfile, message in [
        (tmp_path / "absent.pem", cert.keyfile, "certfile: no such file"),
        (tmp_path / "bad.pem", cert.keyfile, "cannot load the certificate"),
    ]:
        app = App(certfile=str(certfile), keyfile=str(keyfile))
        with pytest.raises(ConfigurationError, match=message):
            async with serve_app(app):
                pass
