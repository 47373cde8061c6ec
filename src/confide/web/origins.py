"""Origins, compared in one place: scheme, host and port, nothing else.

An origin is ``scheme://host[:port]`` (RFC 6454). ``http://x`` and ``https://x`` are different
origins, as are ``https://x`` and ``https://x:8443``; the default port (80 for http, 443 for
https) is the same origin as no port. Hosts compare case-insensitively. Anything else (a path,
user info, a query, ``null``, another scheme, garbage) is not an origin and matches nothing.

Used by the visitor socket (the site's allowlist), the operator socket (our own origin), the
widget's HTTP calls and their CORS headers.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
_WS_SCHEMES = {"ws": "http", "wss": "https"}
MAX_ORIGIN = 300


def normalize_origin(value: str | None) -> str | None:
    """``scheme://host[:port]`` in canonical form (lower case, no default port), or None."""
    if not value or len(value) > MAX_ORIGIN:
        return None
    value = value.strip()
    if value.endswith("/"):
        value = value[:-1]
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or parts.path or parts.query or parts.fragment:
        return None
    if parts.username is not None or parts.password is not None or any(c in host for c in " \t\r\n"):
        return None
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def same_origin(a: str | None, b: str | None) -> bool:
    """True when both are origins and the same one (scheme, host and port)."""
    left = normalize_origin(a)
    return left is not None and left == normalize_origin(b)


def origin_allowed(origin: str | None, allowed: Iterable[str]) -> bool:
    """True when ``origin`` is one of ``allowed`` (a site's allowlist)."""
    mine = normalize_origin(origin)
    return mine is not None and any(mine == normalize_origin(entry) for entry in allowed)


def origin_of_url(url: str | None) -> str | None:
    """The origin of a full URL (a ``Referer``), or None."""
    if not url or len(url) > 4096:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return normalize_origin(f"{parts.scheme}://{parts.netloc}") if parts.scheme and parts.netloc else None


def server_origin(scheme: str, host: str | None, public_url: str = "") -> str | None:
    """Our own origin as a browser sees it: ``public_url``'s when it is set (behind a TLS proxy the
    request's scheme is not the browser's), else the request's scheme (http/https/ws/wss) and Host."""
    if public_url:
        return origin_of_url(public_url)
    if not host:
        return None
    scheme = _WS_SCHEMES.get(scheme, scheme)
    return normalize_origin(f"{scheme}://{host}")
