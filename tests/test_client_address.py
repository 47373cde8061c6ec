"""The client address after trusted proxies (web/client_address.py), without a database."""

from __future__ import annotations

import pytest

from confide.cli.main import server_options
from confide.config import Settings
from confide.web.client_address import parse_address, resolve


def settings(proxies: str = "", header: str = "x-forwarded-for") -> Settings:
    return Settings(trusted_proxies=proxies, proxy_header=header)  # type: ignore[arg-type]


def xff(value: str) -> list[tuple[str, str]]:
    return [("x-forwarded-for", value)]


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    plain = settings()
    assert plain.trusted_proxies == []
    assert resolve("203.0.113.7", xff("192.0.2.10"), plain) == "203.0.113.7"
    assert resolve("10.0.0.5", xff("192.0.2.10"), plain) == "10.0.0.5"  # loopback or LAN: still not trusted
    assert resolve(None, xff("192.0.2.10"), plain) is None
    assert resolve("::ffff:203.0.113.7", [], plain) == "203.0.113.7"


def test_a_spoofed_header_from_an_untrusted_peer_is_ignored() -> None:
    cfg = settings("10.0.0.0/8, fd00::/8")
    assert resolve("203.0.113.7", xff("192.0.2.10"), cfg) == "203.0.113.7"
    assert resolve("203.0.113.7", [("forwarded", "for=192.0.2.10")], settings("10.0.0.0/8", "forwarded")) \
        == "203.0.113.7"


def test_the_right_most_untrusted_hop_is_the_client() -> None:
    cfg = settings("10.0.0.0/8, fd00::/8")
    assert resolve("10.0.0.5", xff("192.0.2.10"), cfg) == "192.0.2.10"
    # The client wrote the left part itself; the proxies appended what they saw.
    assert resolve("10.0.0.5", xff("198.51.100.1, 192.0.2.10"), cfg) == "192.0.2.10"
    assert resolve("10.0.0.5", xff("198.51.100.1, 192.0.2.10, 10.9.9.9"), cfg) == "192.0.2.10"
    assert resolve("fd00::1", xff("2001:db8::7"), cfg) == "2001:db8::7"
    # Several header lines are one list, in order.
    assert resolve("10.0.0.5", [("x-forwarded-for", "198.51.100.1"), ("x-forwarded-for", "192.0.2.10")], cfg) \
        == "192.0.2.10"
    # Every hop trusted: the furthest one.
    assert resolve("10.0.0.5", xff("10.1.1.1, 10.2.2.2"), cfg) == "10.1.1.1"
    # Garbage to the left of the client is the client's own and does not matter.
    assert resolve("10.0.0.5", xff("<script>, unknown, 192.0.2.10"), cfg) == "192.0.2.10"


def test_malformed_headers_are_ignored() -> None:
    cfg = settings("10.0.0.0/8")
    for bad in ("", " ", "unknown", "192.0.2.10, nonsense", "192.0.2.300", "1" * 5000, ",".join(["10.0.0.1"] * 40)):
        assert resolve("10.0.0.5", xff(bad), cfg) == "10.0.0.5", bad
    assert resolve("10.0.0.5", [], cfg) == "10.0.0.5"


def test_forwarded_header() -> None:
    cfg = settings("10.0.0.0/8", "forwarded")
    assert resolve("10.0.0.5", [("forwarded", 'for=192.0.2.60;proto=https;by=10.0.0.5')], cfg) == "192.0.2.60"
    assert resolve("10.0.0.5", [("forwarded", 'for="[2001:db8:cafe::17]:4711"')], cfg) == "2001:db8:cafe::17"
    assert resolve("10.0.0.5", [("forwarded", "for=198.51.100.1, for=192.0.2.60")], cfg) == "192.0.2.60"
    assert resolve("10.0.0.5", [("forwarded", "proto=https")], cfg) == "10.0.0.5"  # no for=
    assert resolve("10.0.0.5", [("forwarded", "for=_hidden")], cfg) == "10.0.0.5"
    # Only the configured header is read.
    assert resolve("10.0.0.5", xff("192.0.2.10"), cfg) == "10.0.0.5"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("192.0.2.1", "192.0.2.1"), ("192.0.2.1:8080", "192.0.2.1"), ("[2001:db8::1]:443", "2001:db8::1"),
     ("[2001:db8::1]", "2001:db8::1"), ('"192.0.2.1"', "192.0.2.1"), ("2001:DB8::1", "2001:db8::1"),
     ("[2001:db8::1", None), ("[::1]x", None), ("unknown", None), ("", None), ("1.2.3", None)],
)
def test_parse_address(text: str, expected: str | None) -> None:
    parsed = parse_address(text)
    assert (str(parsed) if parsed is not None else None) == expected


def test_bad_trusted_proxies_are_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="not an IP address or CIDR range"):
        settings("10.0.0.0/8, proxy.internal")


def test_uvicorn_never_rewrites_the_peer() -> None:
    """``confide serve`` leaves forwarding headers to web/client_address.py alone."""
    options = server_options(Settings())
    assert options["proxy_headers"] is False
    assert "forwarded_allow_ips" not in options
