"""Built-in TLS (``confide serve --tls-cert --tls-key``): served with exactly ``serve``'s uvicorn
options and a self-signed certificate made here, fetched over https (verified against that
certificate); HSTS and the Secure session cookie; HSTS behind a TLS proxy; clear CLI errors."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from confide.app import create_app
from confide.cli.main import server_options, tls_problem
from confide.config import Settings
from confide.core.broker import MemoryBroker
from confide.core.runtime import build_runtime
from confide.web.security import HSTS
from tests.cli_helpers import run_cli
from tests.conftest import World, free_port
from tests.factories import PASSWORD


def make_certificate(directory: Path, name: str = "server") -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                    x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def with_tls(settings: Settings, cert: Path, key: Path) -> Settings:
    values = settings.model_dump() | {"tls_cert": cert, "tls_key": key}
    return Settings.model_validate(values)  # validated again: TLS implies secure cookies


@pytest.fixture
async def https_server(settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[str, Path, Settings]]:
    cert, key = make_certificate(tmp_path)
    tls = with_tls(settings, cert, key)
    assert tls.cookie_secure
    assert tls.https
    rt = build_runtime(tls, broker=MemoryBroker())
    application = create_app(runtime=rt)
    options = server_options(tls) | {"port": free_port(), "log_level": "warning"}
    assert options["ssl_certfile"] == str(cert)
    assert options["ssl_keyfile"] == str(key)
    options.pop("loop")  # the test's loop serves it
    server = uvicorn.Server(uvicorn.Config(application, lifespan="on", **options))
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)
    assert server.started
    try:
        yield f"https://127.0.0.1:{options['port']}", cert, tls
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        await rt.close()


async def test_served_over_https_with_hsts_and_a_secure_cookie(
    https_server: tuple[str, Path, Settings], world: World
) -> None:
    base, cert, _ = https_server
    verify = ssl.create_default_context(cafile=str(cert))
    async with httpx.AsyncClient(base_url=base, verify=verify, trust_env=False) as http:
        health = await http.get("/healthz")
        assert health.status_code == 200
        assert health.headers["strict-transport-security"] == HSTS == "max-age=31536000; includeSubDomains"
        login_page = await http.get("/login")
        assert login_page.headers["strict-transport-security"] == HSTS
        csp = login_page.headers["content-security-policy"]
        assert "unsafe-inline" not in csp
        assert "script-src 'self'" in csp
        response = await http.post("/api/v1/auth/login", json={"email": world.operator_email, "password": PASSWORD},
                                   headers={"Origin": base})
        assert response.status_code == 200
        cookie = response.headers["set-cookie"]
        assert "; secure" in cookie.lower()
        assert "httponly" in cookie.lower()
        assert "samesite=strict" in cookie.lower()
    # Not trusted without that certificate: it really is TLS, with our certificate.
    async with httpx.AsyncClient(base_url=base, trust_env=False) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get("/healthz")


async def test_hsts_only_when_browsers_reach_us_over_https(client: httpx.AsyncClient, rt: object) -> None:
    plain = await client.get("/healthz")  # http, no TLS proxy configured
    assert "strict-transport-security" not in plain.headers


async def test_hsts_behind_a_tls_proxy(settings: Settings) -> None:
    for behind in ({"cookie_secure": True}, {"public_url": "https://chat.example.com"}):
        rt = build_runtime(Settings.model_validate(settings.model_dump() | behind), broker=MemoryBroker())
        application = create_app(runtime=rt)
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                response = await http.get("/login")
        assert response.headers["strict-transport-security"] == HSTS, behind


def test_tls_problems_are_named(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    other_cert, other_key = make_certificate(tmp_path, "other")
    assert tls_problem(cert, key) is None
    assert "no such file" in str(tls_problem(tmp_path / "missing.crt", key))
    assert "--tls-key" in str(tls_problem(cert, tmp_path / "missing.key"))
    assert "cannot be used together" in str(tls_problem(cert, other_key))
    if os.geteuid() != 0:  # root reads any file
        unreadable = tmp_path / "unreadable.key"
        unreadable.write_bytes(key.read_bytes())
        unreadable.chmod(0)
        assert "--tls-key" in str(tls_problem(cert, unreadable))
        assert "cannot be read" in str(tls_problem(cert, unreadable))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    assert "cannot be used together" in str(tls_problem(garbage, key))
    assert other_cert.exists()


async def test_serve_refuses_bad_tls_files_with_exit_code_2(settings: Settings, tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    missing = await run_cli(settings, "serve", "--tls-cert", str(tmp_path / "nope.crt"), "--tls-key", str(key))
    assert missing.exit_code == 2
    assert "--tls-cert" in missing.output
    assert "no such file" in missing.output
    half = await run_cli(settings, "serve", "--tls-cert", str(cert))
    assert half.exit_code == 2
    assert "give both --tls-cert and --tls-key" in half.output
    env_half = await run_cli(settings, "serve", CONFIDE_TLS_CERT=str(cert))
    assert env_half.exit_code == 2
    assert "CONFIDE_TLS_KEY" in env_half.output
