"""A real OpenID provider for the tests: PyPI's oidc-provider-mock (Flask + authlib: discovery, JWKS,
RS256 ID tokens, single-use codes) served by werkzeug on loopback, behind a small WSGI gate that
enforces PKCE (S256) as Entra ID, Google and Keycloak do (the mock itself ignores ``code_challenge``)."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import oidc_provider_mock
import werkzeug.serving

from confide.core import crypto
from tests.conftest import free_port


class PkceGate:
    """WSGI middleware: remembers each authorization request's S256 challenge by the code it led to,
    and refuses a token request whose ``code_verifier`` does not match it (RFC 7636 4.6)."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.challenges: dict[str, str] = {}
        self.token_requests: list[dict[str, list[str]]] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/oauth2/token" and environ.get("REQUEST_METHOD") == "POST":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            form = parse_qs(body.decode())
            self.token_requests.append(form)
            code, verifier = form.get("code", [""])[0], form.get("code_verifier", [""])[0]
            challenge = self.challenges.get(code)
            if challenge is None or not verifier or crypto.pkce_s256(verifier) != challenge:
                start_response("400 Bad Request", [("Content-Type", "application/json")])
                return [b'{"error": "invalid_grant", "error_description": "PKCE verification failed"}']
            environ["wsgi.input"] = io.BytesIO(body)
            return self.app(environ, start_response)
        if path == "/oauth2/authorize":
            query = parse_qs(environ.get("QUERY_STRING", ""))
            challenge = query.get("code_challenge", [""])[0]
            method = query.get("code_challenge_method", [""])[0]

            def remember(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
                for name, value in headers:
                    if name.lower() == "location" and method == "S256":
                        code = parse_qs(urlsplit(value).query).get("code", [""])[0]
                        if code:
                            self.challenges[code] = challenge
                return start_response(status, headers, *args)

            return self.app(environ, remember)
        return self.app(environ, start_response)


class Provider:
    def __init__(self, base: str, gate: PkceGate) -> None:
        self.base = base
        self.gate = gate

    def set_user(self, sub: str, **claims: Any) -> None:
        response = httpx.put(f"{self.base}/users/{sub}", json=claims)
        assert response.status_code in (200, 204), response.text


@contextmanager
def run_provider() -> Iterator[Provider]:
    gate = PkceGate(oidc_provider_mock.app(require_nonce=True, require_client_registration=False))
    port = free_port()
    server = werkzeug.serving.make_server("localhost", port, gate, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Provider(f"http://localhost:{port}", gate)
    finally:
        server.shutdown()
        thread.join(5)
