"""OpenID Connect single sign-on (Entra ID / Azure AD, Google, Keycloak): the relying party's side of
the authorization code flow with PKCE (S256), ``state`` and ``nonce``.

Protocol only, no accounts: discovery (``/.well-known/openid-configuration``, its ``issuer`` must be
the configured one), the authorization URL, the code exchange at the token endpoint, and the ID
token's verification with PyJWT: signature against the provider's JWKS (asymmetric algorithms
only, never ``none`` or HMAC; the key set fetched again once when a ``kid`` is unknown, for key
rotation), ``iss``, ``aud`` (a string or a list holding our client id; ``azp`` must be ours when
there are several audiences), ``exp``/``iat`` with a minute of leeway, ``sub``, and the ``nonce``
of this log-in. Network calls are async (httpx) with timeouts; nothing blocks the event loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import jwt

from confide.core import crypto

# Asymmetric signatures only: an HMAC "signature" keyed with a public value proves nothing.
ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
DISCOVERY_TTL_S = 3600.0
JWKS_TTL_S = 3600.0
LEEWAY_S = 60
MAX_BODY = 512 * 1024
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class OidcRefused(Exception):
    """The provider or its answer was refused. ``code`` is a stable word for the audit log."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    token_auth_methods: tuple[str, ...]
    algorithms: tuple[str, ...]


@dataclass(frozen=True)
class LoginRequest:
    """What a log-in keeps between the redirect to the provider and its return (sealed in a cookie)."""

    state: str
    nonce: str
    verifier: str

    @property
    def challenge(self) -> str:
        return crypto.pkce_s256(self.verifier)


def new_login_request() -> LoginRequest:
    # 43 characters of base64url each: the verifier is within RFC 7636's 43-128 characters.
    return LoginRequest(crypto.random_token(), crypto.random_token(), crypto.random_token(32))


def check_url(url: str, what: str = "issuer URL") -> str:
    """An https URL (plain http only for a provider on this machine: development and tests)."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ValueError(f"the {what} is not a URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.username or parts.password:
        raise ValueError(f"the {what} must be an https:// URL")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise ValueError(f"the {what} must use https:// (plain http only for localhost)")
    if parts.query or parts.fragment:
        raise ValueError(f"the {what} must not have a query or a fragment")
    return url


_discovered: dict[str, tuple[float, ProviderMetadata]] = {}
_key_sets: dict[str, tuple[float, dict[str, Any]]] = {}


def forget_cache() -> None:
    _discovered.clear()
    _key_sets.clear()


async def _get_json(http: httpx.AsyncClient, url: str, code: str) -> dict[str, Any]:
    try:
        response = await http.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError:
        raise OidcRefused(f"{code}_unreachable") from None
    if response.status_code != 200 or len(response.content) > MAX_BODY:
        raise OidcRefused(f"{code}_failed")
    try:
        body = response.json()
    except ValueError:
        raise OidcRefused(f"{code}_failed") from None
    if not isinstance(body, dict):
        raise OidcRefused(f"{code}_failed")
    return body


def _client(timeout_s: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, trust_env=False)


async def discover(issuer: str, *, timeout_s: float = 10.0) -> ProviderMetadata:
    issuer = check_url(issuer)
    cached = _discovered.get(issuer)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    async with _client(timeout_s) as http:
        body = await _get_json(http, url, "discovery")
    # OpenID Connect Discovery 1.0, 4.3: the issuer in the document must be the one asked for.
    if str(body.get("issuer", "")).rstrip("/") != issuer.rstrip("/"):
        raise OidcRefused("issuer_mismatch")
    try:
        endpoints = [check_url(str(body[k]), k) for k in ("authorization_endpoint", "token_endpoint", "jwks_uri")]
    except (KeyError, ValueError):
        raise OidcRefused("discovery_failed") from None
    methods = body.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    algs = body.get("id_token_signing_alg_values_supported") or ["RS256"]
    meta = ProviderMetadata(
        issuer=str(body["issuer"]),
        authorization_endpoint=endpoints[0],
        token_endpoint=endpoints[1],
        jwks_uri=endpoints[2],
        token_auth_methods=tuple(str(m) for m in methods if isinstance(m, str)),
        algorithms=tuple(a for a in ALLOWED_ALGORITHMS if a in algs) or ("RS256",),
    )
    _discovered[issuer] = (time.monotonic() + DISCOVERY_TTL_S, meta)
    return meta


def authorization_url(
    meta: ProviderMetadata, *, client_id: str, redirect_uri: str, scopes: str, request: LoginRequest
) -> str:
    scope_list = scopes.split()
    if "openid" not in scope_list:
        scope_list.insert(0, "openid")
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(scope_list),
            "state": request.state,
            "nonce": request.nonce,
            "code_challenge": request.challenge,
            "code_challenge_method": "S256",
        }
    )
    sep = "&" if urlsplit(meta.authorization_endpoint).query else "?"
    return f"{meta.authorization_endpoint}{sep}{query}"


async def exchange_code(
    meta: ProviderMetadata,
    *,
    client_id: str,
    client_secret: str | None,
    code: str,
    redirect_uri: str,
    verifier: str,
    timeout_s: float = 10.0,
) -> str:
    """The ID token for this code (a code is good once: the provider refuses a replay)."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
        "client_id": client_id,
    }
    auth: httpx.BasicAuth | None = None
    if client_secret:
        if "client_secret_basic" in meta.token_auth_methods or "client_secret_post" not in meta.token_auth_methods:
            # RFC 6749 2.3.1: both parts form-urlencoded before the Basic encoding.
            auth = httpx.BasicAuth(urlencode({"": client_id})[1:], urlencode({"": client_secret})[1:])
        else:
            form["client_secret"] = client_secret
    async with _client(timeout_s) as http:
        try:
            response = await http.post(
                meta.token_endpoint,
                data=form,
                auth=auth or httpx.USE_CLIENT_DEFAULT,
                headers={"Accept": "application/json"},
            )
        except httpx.HTTPError:
            raise OidcRefused("token_unreachable") from None
    if response.status_code != 200 or len(response.content) > MAX_BODY:
        raise OidcRefused("code_refused")
    try:
        body = response.json()
    except ValueError:
        raise OidcRefused("token_failed") from None
    token = body.get("id_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise OidcRefused("no_id_token")
    return token


async def _key_set(meta: ProviderMetadata, *, refresh: bool, timeout_s: float) -> dict[str, Any]:
    cached = _key_sets.get(meta.jwks_uri)
    if not refresh and cached is not None and cached[0] > time.monotonic():
        return cached[1]
    async with _client(timeout_s) as http:
        body = await _get_json(http, meta.jwks_uri, "jwks")
    if not isinstance(body.get("keys"), list):
        raise OidcRefused("jwks_failed")
    _key_sets[meta.jwks_uri] = (time.monotonic() + JWKS_TTL_S, body)
    return body


def _pick(key_set: dict[str, Any], kid: str | None, alg: str) -> dict[str, Any] | None:
    keys = [k for k in key_set.get("keys", []) if isinstance(k, dict) and k.get("use", "sig") == "sig"]
    if kid is not None:
        keys = [k for k in keys if k.get("kid") == kid]
    elif len(keys) != 1:
        return None
    keys = [k for k in keys if k.get("alg") in (None, alg)]
    return keys[0] if keys else None


async def verify_id_token(
    meta: ProviderMetadata, token: str, *, client_id: str, nonce: str, timeout_s: float = 10.0
) -> dict[str, Any]:
    """The ID token's claims once every check passed; ``OidcRefused`` otherwise."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise OidcRefused("bad_id_token") from None
    alg = header.get("alg")
    if alg not in meta.algorithms:
        raise OidcRefused("bad_algorithm")
    kid = header.get("kid") if isinstance(header.get("kid"), str) else None
    jwk = _pick(await _key_set(meta, refresh=False, timeout_s=timeout_s), kid, alg)
    if jwk is None:  # the provider may have rotated its keys
        jwk = _pick(await _key_set(meta, refresh=True, timeout_s=timeout_s), kid, alg)
    if jwk is None:
        raise OidcRefused("unknown_key")
    try:
        key = jwt.PyJWK(jwk, algorithm=alg)
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key.key,
            algorithms=[alg],
            audience=client_id,
            issuer=meta.issuer,
            leeway=LEEWAY_S,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise OidcRefused("id_token_expired") from None
    except jwt.InvalidAudienceError:
        raise OidcRefused("wrong_audience") from None
    except jwt.InvalidIssuerError:
        raise OidcRefused("wrong_issuer") from None
    except (jwt.PyJWTError, ValueError, TypeError):
        raise OidcRefused("bad_id_token") from None
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != client_id:
        raise OidcRefused("wrong_audience")
    if not isinstance(claims.get("nonce"), str) or claims["nonce"] != nonce:
        raise OidcRefused("nonce_mismatch")
    if not isinstance(claims.get("sub"), str) or not claims["sub"] or len(claims["sub"]) > 255:
        raise OidcRefused("bad_id_token")
    return claims


def claim_values(claims: dict[str, Any], name: str) -> list[str]:
    """A claim as a list of strings (a group claim may be a list or one string)."""
    value = claims.get(name) if name else None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []
