"""TrustedProxies: whose forwarding headers count, and how the chain is read."""

from __future__ import annotations

import pytest

from hubbub.errors import ConfigurationError
from hubbub.options import ServerOptions
from hubbub.transport.proxies import MAX_HOPS, TrustedProxies

PROXY = ("10.0.0.5", 40000)


def test_an_untrusted_peer_cannot_set_the_client_address() -> None:
    proxies = TrustedProxies(["10.0.0.1"])
    assert proxies.client(PROXY, [("x-forwarded-for", "203.0.113.9")]) == PROXY


def test_a_trusted_peer_names_the_client() -> None:
    proxies = TrustedProxies(["10.0.0.0/24"])
    assert proxies.client(PROXY, [("x-forwarded-for", "203.0.113.9")]) == ("203.0.113.9", 0)


def test_the_chain_is_read_from_the_right_skipping_trusted_hops() -> None:
    proxies = TrustedProxies(["10.0.0.0/24"])
    # The client forged the first entry; the trusted proxies appended the rest.
    header = "1.1.1.1, 198.51.100.7, 10.0.0.9"
    assert proxies.client(PROXY, [("x-forwarded-for", header)]) == ("198.51.100.7", 0)


def test_star_trusts_every_hop_and_takes_the_left_most() -> None:
    proxies = TrustedProxies("*")
    assert proxies.client(PROXY, [("x-forwarded-for", "198.51.100.7, 10.0.0.9")]) == ("198.51.100.7", 0)


def test_forwarded_wins_over_x_forwarded_for_and_keeps_ports() -> None:
    proxies = TrustedProxies(["10.0.0.5"])
    headers = [("x-forwarded-for", "192.0.2.1"), ("forwarded", 'for="[2001:db8::7]:4711";proto=https;by=10.0.0.5')]
    assert proxies.client(PROXY, headers) == ("2001:db8::7", 4711)
    assert proxies.client(PROXY, [("forwarded", "for=192.0.2.60:8080, for=10.0.0.5")]) == ("192.0.2.60", 8080)


def test_repeated_headers_are_joined() -> None:
    proxies = TrustedProxies(["10.0.0.5"])
    headers = [("x-forwarded-for", "192.0.2.1"), ("x-forwarded-for", "192.0.2.2")]
    assert proxies.client(PROXY, headers) == ("192.0.2.2", 0)


@pytest.mark.parametrize("value", ["unknown", "_hidden", "not an address", "", "for=", "999.1.1.1"])
def test_an_unusable_address_keeps_the_peer(value: str) -> None:
    proxies = TrustedProxies(["10.0.0.5"])
    assert proxies.client(PROXY, [("x-forwarded-for", value)]) == PROXY
    assert proxies.client(PROXY, [("forwarded", f"for={value}")]) == PROXY


def test_no_forwarding_header_keeps_the_peer() -> None:
    assert TrustedProxies("*").client(PROXY, [("host", "example.org")]) == PROXY


def test_only_the_last_hops_are_read() -> None:
    proxies = TrustedProxies("*")
    chain = ", ".join(f"192.0.2.{i}" for i in range(1, 101))
    assert proxies.client(PROXY, [("x-forwarded-for", chain)]) == (f"192.0.2.{101 - MAX_HOPS}", 0)


def test_a_malformed_entry_is_refused_by_name() -> None:
    with pytest.raises(ConfigurationError, match=r"forwarded_allow_ips: 'proxy\.local'"):
        ServerOptions(forwarded_allow_ips=["10.0.0.1", "proxy.local"])
    assert ServerOptions(forwarded_allow_ips=["10.0.0.1", "fd00::/8", "*"]).forwarded_allow_ips
