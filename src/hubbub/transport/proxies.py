"""The client's address behind trusted reverse proxies (X-Forwarded-For, Forwarded).

Only a peer listed in `forwarded_allow_ips` may say who the client is; anyone
else's forwarding headers are ignored, or a client could claim any address
(and dodge per-address limits). Each proxy appends the address it received the
request from, so the chain is read from the right: hops that are trusted
proxies are skipped, and the first one that is not is the client. With "*"
every hop is trusted and the left-most address is the client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from hubbub.errors import ConfigurationError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_HOPS = 32
"""Addresses read from one request's forwarding headers (the rest are ignored)."""


class TrustedProxies:
    """Which peers may set the client address, and the reading of their headers."""

    __slots__ = ("_any", "_networks")

    def __init__(self, allowed: Iterable[str] | str) -> None:
        if isinstance(allowed, str):
            allowed = allowed.split(",")
        self._any = False
        self._networks: list[IPNetwork] = []
        for entry in allowed:
            entry = entry.strip()
            if entry == "*":
                self._any = True
                continue
            try:
                self._networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ConfigurationError(
                    f"forwarded_allow_ips: {entry!r} is not an IP address, a network (CIDR) or *"
                ) from None

    def trusts(self, host: str) -> bool:
        """Whether `host` (an address) is a trusted proxy."""
        if self._any:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def client(self, peer: tuple[str, int], headers: Iterable[tuple[str, str]]) -> tuple[str, int]:
        """The client's (address, port): from the forwarding headers when `peer` is trusted, else `peer`.
        `headers` are (lower-case name, value) pairs; Forwarded wins over X-Forwarded-For."""
        if not self.trusts(peer[0]):
            return peer
        forwarded: list[str] = []
        x_forwarded_for: list[str] = []
        for name, value in headers:
            if name == "forwarded":
                forwarded.append(value)
            elif name == "x-forwarded-for":
                x_forwarded_for.append(value)
        if forwarded:
            hops = _forwarded_for(",".join(forwarded))
        elif x_forwarded_for:
            hops = [_split_host_port(item) for item in ",".join(x_forwarded_for).split(",")]
        else:
            return peer
        hops = hops[-MAX_HOPS:]
        chosen: tuple[str, int] | None = None
        for hop in reversed(hops):
            chosen = hop
            if not self.trusts(hop[0]):
                break
        if chosen is None or not _is_ip(chosen[0]):
            return peer  # "unknown", an obfuscated name, or garbage: keep what we know
        return chosen


def _forwarded_for(value: str) -> list[tuple[str, int]]:
    """The for= addresses of a Forwarded header (RFC 7239), in order."""
    hops: list[tuple[str, int]] = []
    for element in value.split(","):
        for pair in element.split(";"):
            key, _, raw = pair.strip().partition("=")
            if key.strip().lower() == "for":
                hops.append(_split_host_port(raw.strip().strip('"')))
    return hops


def _split_host_port(item: str) -> tuple[str, int]:
    item = item.strip()
    if item.startswith("["):  # [v6]:port or [v6]
        host, _, rest = item[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif item.count(":") == 1:  # v4:port
        host, _, port = item.partition(":")
    else:  # v4, bare v6, or a name
        host, port = item, ""
    return host, int(port) if port.isdigit() and len(port) <= 5 else 0


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
