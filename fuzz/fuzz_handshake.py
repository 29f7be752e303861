"""Fuzz the HTTP side of the handshake: request parsing (the server's own HttpProtocol over
httptools), the upgrade checks, subprotocol and permessage-deflate negotiation, origin
checks and token extraction and verification.

Whatever the bytes, the parser answers with a response or queues requests; every check
returns its documented value (a key, a Response, a list, None); JWT verification refuses
with AuthError only. Any other exception is a bug.
"""

from __future__ import annotations

from typing import Any

from fuzz.runner import fuzz, instrumented

with instrumented():
    from hubbub.auth.jwt_auth import JWTAuth
    from hubbub.auth.user import AuthError, token_from_request
    from hubbub.options import ServerOptions
    from hubbub.transport import handshake
    from hubbub.transport.http_protocol import HttpProtocol
    from hubbub.web.response import Response

OPTIONS = ServerOptions(max_request_head=4096, max_request_body=4096)
AUTH = JWTAuth(secret="fuzz-secret-0123456789abcdef0123", audience="fuzz")


class _Pending:
    """Stands for the serving task: requests stay queued for the harness to check."""

    def done(self) -> bool:
        return False


class _Loop:
    def create_task(self, coro: Any) -> _Pending:
        coro.close()
        return _Pending()

    def call_later(self, *args: Any) -> None:
        return None


class _Server:
    opts = OPTIONS
    loop = _Loop()
    fd_ceiling = 1 << 30

    def __init__(self) -> None:
        self.http_connections: set[Any] = set()


class _Transport:
    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass


def test_one_input(data: bytes) -> None:
    protocol = HttpProtocol(_Server())  # type: ignore[arg-type]
    transport = _Transport()
    protocol.transport = transport  # type: ignore[assignment]
    if not data:
        return
    stream = data[1:]
    split = data[0] % (len(stream) + 1)
    for part in (stream[:split], stream[split:]):
        if part and not transport.closed:
            protocol.data_received(part)
    if transport.out and not transport.out[0].startswith(b"HTTP/1.1 4"):
        raise AssertionError(f"parser answered with {transport.out[0][:40]!r}")
    for request, _ in protocol._queue:
        checked = handshake.check_upgrade(request)
        if isinstance(checked, str):
            handshake.switching_protocols(checked, None, None)
        elif not isinstance(checked, Response):
            raise AssertionError(f"check_upgrade returned {checked!r}")
        offered = handshake.offered_subprotocols(request)
        handshake.choose_subprotocol(offered, ["hubbub.v1.json", "hubbub.v1.msgpack"])
        handshake.origin_allowed(request, ["https://a.test"])
        for mode in ("shared", "dedicated"):
            params = handshake.negotiate_deflate(request, mode)
            if params is not None:
                params.response_header().encode("latin-1")
        token = token_from_request(request)
        if token is not None:
            try:
                AUTH.verify_token(token)
            except AuthError as refused:
                if not refused.reason.startswith(("invalid token", "token expired")):
                    raise AssertionError(f"undocumented reason {refused.reason!r}") from None
        dict(request.query)
        request.headers.compact()
        dict(request.headers)


if __name__ == "__main__":
    fuzz(test_one_input)
