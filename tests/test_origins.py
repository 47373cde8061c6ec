"""Origins compare by scheme, host and port, in one place (web/origins.py)."""

from __future__ import annotations

import pytest

from confide.web.origins import normalize_origin, origin_allowed, origin_of_url, same_origin, server_origin


@pytest.mark.parametrize(("value", "expected"), [
    ("https://shop.example", "https://shop.example"),
    ("HTTPS://Shop.Example/", "https://shop.example"),
    ("https://shop.example:443", "https://shop.example"),
    ("http://shop.example:80", "http://shop.example"),
    ("http://shop.example:443", "http://shop.example:443"),
    ("https://shop.example:8443", "https://shop.example:8443"),
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ("https://[::1]:8000", "https://[::1]:8000"),
    (" https://shop.example ", "https://shop.example"),
])
def test_normal_form(value: str, expected: str) -> None:
    assert normalize_origin(value) == expected


@pytest.mark.parametrize("value", [None, "", "null", "shop.example", "//shop.example", "ftp://shop.example",
                                   "ws://shop.example", "https://shop.example/path", "https://shop.example?q=1",
                                   "https://shop.example#x", "https://user@shop.example",
                                   "https://user:pw@shop.example", "https://shop.example:99999",
                                   "https://shop.example:abc", "https://", "https://" + "a" * 400 + ".example",
                                   "javascript:alert(1)", "https://shop example"])
def test_not_an_origin(value: str | None) -> None:
    assert normalize_origin(value) is None
    assert not same_origin(value, value)
    assert not origin_allowed(value, [value] if value else [])


@pytest.mark.parametrize(("a", "b", "same"), [
    ("https://x.example", "https://x.example", True),
    ("https://x.example", "HTTPS://X.EXAMPLE:443/", True),
    ("http://x.example", "https://x.example", False),  # the scheme counts
    ("https://x.example", "https://x.example:8443", False),  # so does the port
    ("https://x.example", "https://y.x.example", False),
    ("https://x.example", "https://x.example.evil.example", False),
    ("http://x.example:443", "https://x.example", False),
])
def test_same_origin(a: str, b: str, same: bool) -> None:
    assert same_origin(a, b) is same
    assert same_origin(b, a) is same
    assert origin_allowed(a, ["https://other.example", b]) is same


def test_origin_of_a_referer_and_our_own_origin() -> None:
    assert origin_of_url("https://x.example:443/console?chat=1#m") == "https://x.example"
    assert origin_of_url("/relative/path") is None
    assert server_origin("ws", "127.0.0.1:8000") == "http://127.0.0.1:8000"
    assert server_origin("wss", "chat.example") == "https://chat.example"
    assert server_origin("http", None) is None
    # Behind a TLS proxy the request says http://, the browser says https://: public_url decides.
    assert server_origin("ws", "internal:8000", "https://chat.example/") == "https://chat.example"
