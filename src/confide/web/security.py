"""The HTTP edge's security rules, in one place: the session cookie (name and flags), the CSRF
same-origin rule for cookie-authenticated writes, and the security headers (CSP and friends).

Origins themselves (scheme, host and port, canonical form, our own origin behind a proxy) are
compared by ``web/origins.py``, the one place that does; these rules call it.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.datastructures import MutableHeaders
from starlette.responses import Response

from confide.config import Settings
from confide.web import origins

SESSION_COOKIE = "confide_session"  # over plain HTTP (development, tests)
# Over TLS (``cookie_secure``): the ``__Host-`` prefix makes the browser refuse the cookie unless it
# is Secure, for the whole host (Path=/) and without a Domain, so that neither a sibling subdomain
# nor a plain-HTTP answer can plant or overwrite a session cookie (RFC 6265bis, 4.1.3.2).
HOST_SESSION_COOKIE = "__Host-confide_session"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# No 'unsafe-inline' anywhere: scripts are ES modules from /static, styles are /static/confide.css;
# scripts may still set element.style (CSSOM), which style-src does not govern.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)
# Browsers that reached us over https keep to https for a year, subdomains included (RFC 6797).
HSTS = "max-age=31536000; includeSubDomains"
# Paths that are not our HTML pages: no CSP / frame headers (the widget assets are embedded elsewhere).
_NOT_PAGES = ("/api/", "/widget", "/static/", "/healthz", "/openapi.json", "/docs")
_CSP_EXEMPT = frozenset({"/demo"})  # the demo page embeds the widget like a customer's site would


# ---------------------------------------------------------------- the session cookie
def session_cookie_name(*, secure: bool) -> str:
    return HOST_SESSION_COOKIE if secure else SESSION_COOKIE


def session_token(cookies: Mapping[str, str], *, secure: bool) -> str | None:
    """The session token of a request: only the ``__Host-`` cookie counts when served over TLS."""
    return cookies.get(session_cookie_name(secure=secure))


def set_session_cookie(response: Response, token: str, *, ttl_s: int, secure: bool) -> None:
    """HttpOnly (no script reads it), SameSite=Strict (first line against CSRF), whole site; over
    TLS Secure and ``__Host-``-prefixed."""
    response.set_cookie(
        session_cookie_name(secure=secure),
        token,
        max_age=ttl_s,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )


def clear_session_cookie(response: Response, *, secure: bool = False) -> None:
    response.delete_cookie(
        session_cookie_name(secure=secure), path="/", secure=secure, httponly=True, samesite="strict"
    )


def has_session_cookie(cookie_header: str) -> bool:
    """Either name: a cookie-authenticated write is held to the same-origin rule whatever its name."""
    return f"{SESSION_COOKIE}=" in cookie_header


# ---------------------------------------------------------------- CSRF: same origin
def from_own_site(headers: Mapping[str, str], own_origin: str | None) -> bool:
    """Whether the request's Origin (or, without one, its Referer) is our own origin: scheme,
    host and port (``own_origin``: ``origins.server_origin`` of the request)."""
    return origins.same_origin(headers.get("origin") or origins.origin_of_url(headers.get("referer")), own_origin)


def cookie_write_allowed(method: str, headers: Mapping[str, str], own_origin: str | None) -> bool:
    """A cookie-authenticated write must come from our own pages (SameSite is the first line);
    a request without the session cookie carries no authority to abuse and passes."""
    if method not in UNSAFE_METHODS or not has_session_cookie(headers.get("cookie", "")):
        return True
    return from_own_site(headers, own_origin)


def form_from_own_site(headers: Mapping[str, str], own_origin: str | None) -> bool:
    """The log-in form (no cookie yet): refused when a browser says it came from another site.
    Non-browser clients send neither header; browsers always send Origin on a form POST."""
    if not (headers.get("origin") or headers.get("referer")):
        return True
    return from_own_site(headers, own_origin)


# ---------------------------------------------------------------- headers
def is_page(path: str) -> bool:
    return not path.startswith(_NOT_PAGES)


def served_over_https(scheme: str, settings: Settings) -> bool:
    """Whether this request reached us over TLS (built in: the scope's scheme), or the browser's did
    through a TLS proxy (``CONFIDE_COOKIE_SECURE`` or an https ``CONFIDE_PUBLIC_URL`` say so)."""
    return scheme in ("https", "wss") or settings.https


def add_security_headers(headers: MutableHeaders, path: str, *, https: bool = False) -> None:
    """Every answer: no sniffing, same-origin referrers, HSTS when served over https; our pages
    also get the CSP and may not be framed."""
    if https:
        headers.setdefault("Strict-Transport-Security", HSTS)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    if is_page(path) and path not in _CSP_EXEMPT:
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Frame-Options", "DENY")
