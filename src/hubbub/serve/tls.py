"""TLS for the listening socket: https:// and wss:// from a certificate and its key."""

from __future__ import annotations

import ssl
from pathlib import Path

from hubbub.errors import ConfigurationError


def server_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2 or later, the ssl module's secure defaults) for a PEM
    certificate chain and its private key; a missing or unusable file is a ConfigurationError."""
    for what, path in (("certfile", certfile), ("keyfile", keyfile)):
        if not Path(path).is_file():
            raise ConfigurationError(f"{what}: no such file: {path}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(certfile, keyfile)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigurationError(f"cannot load the certificate {certfile} with the key {keyfile}: {exc}") from None
    return context
