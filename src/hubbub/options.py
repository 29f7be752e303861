"""Server options: limits, timeouts, compression and backpressure, with their defaults."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

from hubbub.errors import ConfigurationError
from hubbub.transport.deflate import CompressionMode
from hubbub.transport.message import BackpressurePolicy
from hubbub.transport.proxies import TrustedProxies

BACKPRESSURE_POLICIES = ("close", "drop", "conflate")
OverCapacity = Literal["reject", "close"]
AuthFailure = Literal["close", "http"]


@dataclass(slots=True)
class ServerOptions:
    """Everything the server enforces per connection and for the whole process.

    Times are in seconds; 0 or None switches a timer off. Sizes are in bytes.
    """

    compression: CompressionMode = "disabled"
    """permessage-deflate: "disabled", "shared" (one compressed frame per broadcast,
    no server context takeover) or "dedicated" (a zlib context per connection)."""
    compression_threshold: int = 128
    """Messages shorter than this are sent uncompressed even when compression is on."""
    max_message_size: int = 1024 * 1024
    """A bigger incoming message closes the connection with 1009."""
    max_backpressure: int = 256 * 1024
    """Bytes the peer has failed to take (still buffered after a write was tried, plus what
    waits behind them) before `backpressure_policy` applies to a new message."""
    backpressure_policy: BackpressurePolicy = "close"
    """"close": a reader over the limit is closed (1008); "drop": the new message is dropped
    and counted; "conflate": a message with a key replaces the pending one with the same key
    (others are dropped). Routes may choose their own (see `App.websocket`)."""
    ping_interval: float | None = 20.0
    """Ping a connection that has been silent this long."""
    ping_timeout: float | None = 20.0
    """Close (1011) a connection whose ping gets no answer in this time."""
    idle_timeout: float | None = None
    """Close (1001) a connection that sent no message for this long."""
    max_lifetime: float | None = None
    """Close (1001) any connection older than this."""
    handshake_timeout: float = 10.0
    """Time allowed for the HTTP request (and the upgrade) to arrive; then 408."""
    close_timeout: float = 5.0
    """Time allowed for the peer to answer a close frame before the socket is dropped."""
    allowed_origins: list[str] | None = None
    """Browser origins allowed to connect (others get 403); None allows any."""
    max_connections: int | None = None
    """Global WebSocket connection limit for this server."""
    over_capacity: OverCapacity = "reject"
    """"reject": refuse the handshake with 503; "close": accept, then close with 1013."""
    max_pending_messages: int = 64
    """Incoming messages queued behind a busy handler before reading pauses."""
    max_request_head: int = 16 * 1024
    """Largest HTTP request line + headers; bigger gets 431."""
    max_request_body: int = 1024 * 1024
    """Largest HTTP request body; bigger gets 413."""
    shutdown_timeout: float = 10.0
    """On SIGTERM/SIGINT: how long running handlers get to finish."""
    shutdown_message: str | bytes | None = None
    """Sent to every client before the 1001 close on shutdown."""
    auth_failure: AuthFailure = "close"
    """How a refused authentication is answered: "close" accepts the handshake and closes
    with 4001 (no token) / 4002 (bad token) / 4003 (too many connections), which browsers
    can read; "http" refuses the handshake with 401 / 401 / 429 and a JSON body."""
    max_connections_per_user: int | None = None
    """Connections one user may hold at once (over it: 4003)."""
    presence_grace: float = 2.0
    """Seconds after a user's last connection closes before on_offline fires."""
    room_presence_events: bool = True
    """Tell channel-route members of a room when someone joins or leaves it."""
    message_rate: float | None = None
    """Messages per second one connection may send (token bucket; None: no limit)."""
    message_burst: int = 20
    """Messages a connection may send in a burst above `message_rate`."""
    rate_limit_strikes: int | None = 10
    """Close (1008) a connection after this many rate-limited messages (None: never)."""
    handshakes_per_ip: int | None = None
    """Handshakes one client address may make per `handshake_window` (over it: 429)."""
    handshake_window: float = 60.0
    """The window of `handshakes_per_ip`, in seconds."""
    tick: float = field(default=1.0)
    """How often timers (heartbeat, idle, lifetime) are checked."""
    gc_freeze_batch: int | None = 1000
    """Move live objects out of CPython's full collections (`gc.freeze`) each time this many
    connections have opened since the last time; None leaves the collector alone."""
    certfile: str | None = None
    """PEM certificate chain: with `keyfile`, the server speaks TLS (https:// and wss://)."""
    keyfile: str | None = None
    """PEM private key of `certfile`."""
    forwarded_allow_ips: list[str] | None = None
    """Proxy addresses (IPs or CIDR networks, "*" for any) whose X-Forwarded-For / Forwarded
    headers name the client address; None trusts no proxy."""
    metrics: bool = True
    """Serve Prometheus metrics at /metrics."""
    internal_port: int | None = None
    """Serve /metrics and the dashboard on this port (same host) instead of the main one."""
    dashboard_key: str | None = None
    """Serve the dashboard at /_hubbub to requests carrying this key (`?key=` or a Bearer token)."""
    dashboard_auth: bool = False
    """Serve the dashboard at /_hubbub to requests the app's authenticator accepts."""

    def __post_init__(self) -> None:
        if self.compression not in ("disabled", "shared", "dedicated"):
            raise ConfigurationError(f"compression must be disabled, shared or dedicated, not {self.compression!r}")
        check_backpressure_policy(self.backpressure_policy)
        if self.over_capacity not in ("reject", "close"):
            raise ConfigurationError(f"over_capacity must be reject or close, not {self.over_capacity!r}")
        if self.auth_failure not in ("close", "http"):
            raise ConfigurationError(f"auth_failure must be close or http, not {self.auth_failure!r}")
        for name in ("max_message_size", "max_backpressure", "max_request_head", "max_request_body"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name} must be positive")
        if self.gc_freeze_batch is not None and self.gc_freeze_batch < 1:
            raise ConfigurationError(f"gc_freeze_batch must be a positive count or None, not {self.gc_freeze_batch}")
        if (self.certfile is None) != (self.keyfile is None):
            raise ConfigurationError("certfile and keyfile go together: give both or neither")
        if self.forwarded_allow_ips is not None:
            TrustedProxies(self.forwarded_allow_ips)  # refuses a malformed entry now, not at the first request
        if self.internal_port is not None and not 0 <= self.internal_port <= 65535:
            raise ConfigurationError(f"internal_port must be a port number, not {self.internal_port}")

    def replace(self, **changes: Any) -> ServerOptions:
        """A copy with some options changed (unknown names raise ConfigurationError)."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ConfigurationError(f"unknown server option(s): {', '.join(sorted(unknown))}")
        values = {name: getattr(self, name) for name in known}
        values.update(changes)
        return ServerOptions(**values)


def check_backpressure_policy(policy: str) -> None:
    """Raise ConfigurationError unless `policy` is close, drop or conflate."""
    if policy not in BACKPRESSURE_POLICIES:
        raise ConfigurationError(f"backpressure_policy must be close, drop or conflate, not {policy!r}")
