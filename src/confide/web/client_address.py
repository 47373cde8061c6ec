"""The client's address, in one place: the socket's peer, unless that peer is a trusted proxy.

Behind a reverse proxy every connection comes from the proxy; the client's address is in the
header the proxy adds (``X-Forwarded-For``, or RFC 7239 ``Forwarded`` when
``CONFIDE_PROXY_HEADER=forwarded``). A client can write that header too, so it is believed only
when the peer is one of ``CONFIDE_TRUSTED_PROXIES`` (empty by default: nobody), and read from the
right: each trusted proxy appends the address it saw, so the right-most hop that is *not* a trusted
proxy is the client, and anything to its left is whatever the client chose to send. An entry that
is not an address (or a header that is too long) makes the whole header be ignored: the peer's
address is used, as without a proxy.

uvicorn's own proxy-header handling is off (``cli.main.server_options``: ``proxy_headers=False``),
so ``scope["client"]`` is always the real peer and this module is the only one that reads the
header. Addresses are used as keys (limits, login limits) and never logged (``web/access_log.py``
writes a truncated or keyed form only when asked to).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.requests import HTTPConnection
from starlette.types import Scope

from confide.config import IPNetwork, Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_HEADER = 4096  # longer forwarding headers are ignored
MAX_HOPS = 32


def parse_address(value: str) -> Address | None:
    """An IP address as a header or a peer gives it: ``1.2.3.4``, ``1.2.3.4:5678``, ``::1``,
    ``[::1]``, ``[::1]:5678``, quoted or not. None when it is anything else (``unknown``,
    an obfuscated ``_node`` id, garbage)."""
    text = value.strip().strip('"').strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (end + 1 < len(text) and not text[end + 1 :].startswith(":")):
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:1.2.3.4 is 1.2.3.4 (dual-stack sockets)
    return address


def is_trusted(address: Address, trusted: Sequence[IPNetwork]) -> bool:
    return any(address in network for network in trusted)


def _x_forwarded_for(values: Iterable[str]) -> list[str] | None:
    hops = [hop for value in values for hop in value.split(",")]
    return hops if hops else None


def _forwarded(values: Iterable[str]) -> list[str] | None:
    """The ``for=`` of each element of RFC 7239 ``Forwarded`` (an element without one is malformed)."""
    hops: list[str] = []
    for value in values:
        for element in value.split(","):
            found = None
            for pair in element.split(";"):
                name, _, val = pair.partition("=")
                if name.strip().lower() == "for":
                    found = val
            if found is None:
                return []  # an element without for=: malformed
            hops.append(found)
    return hops if hops else None


def resolve(peer: str | None, headers: Iterable[tuple[str, str]], settings: Settings) -> str | None:
    """The client's address (normalised text) from the socket's peer and the request headers
    (lower-case names). None when there is no peer (an in-process call without one)."""
    if peer is None:
        return None
    address = parse_address(peer)
    if address is None:
        return peer  # not an IP (a Unix socket, a test client): as given
    trusted = settings.trusted_proxy_networks
    if not trusted or not is_trusted(address, trusted):
        return str(address)
    name = settings.proxy_header
    values = [v for k, v in headers if k == name]
    if not values or sum(len(v) for v in values) > MAX_HEADER:
        return str(address)
    hops = _x_forwarded_for(values) if name == "x-forwarded-for" else _forwarded(values)
    if not hops or len(hops) > MAX_HOPS:
        return str(address)
    parsed = [parse_address(hop) for hop in hops]
    client: Address | None = None
    for hop in reversed(parsed):
        if hop is None:
            return str(address)  # malformed where a trusted proxy wrote: ignore the header
        client = hop
        if not is_trusted(hop, trusted):
            break
    # Every hop trusted: the left-most is the furthest we can see.
    return str(client) if client is not None else str(address)


def _headers_of_scope(scope: Scope) -> list[tuple[str, str]]:
    return [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope.get("headers", ())]


def from_scope(scope: Scope, settings: Settings) -> str | None:
    client = scope.get("client")
    peer = client[0] if client else None
    return resolve(peer, _headers_of_scope(scope), settings)


def of_app_scope(scope: Scope) -> str | None:
    """``from_scope`` with the serving app's settings (``scope["app"]``, set by Starlette before any
    middleware runs); the bare peer before the app has started."""
    state = getattr(getattr(scope.get("app"), "state", None), "confide", None)
    if state is None:
        client = scope.get("client")
        return str(client[0]) if client else None
    settings: Settings = state.rt.settings
    return from_scope(scope, settings)


def client_address(conn: HTTPConnection) -> str | None:
    """The client address of a request or a WebSocket (the app's settings say whom to trust)."""
    return of_app_scope(conn.scope)
