"""OpenID Connect single sign-on against a real provider running in the test: PyPI's
oidc-provider-mock (a Flask/authlib provider: discovery, JWKS, RS256 ID tokens, single-use codes)
served by werkzeug on loopback. A small WSGI layer in front of it enforces PKCE (S256) the way
Entra ID, Google and Keycloak do, since the mock itself ignores ``code_challenge``.

The whole round trip goes through real HTTP: the app (in process) redirects to the provider, the
test "logs in" at the provider's form, follows the redirect back to the app's callback, and the
app exchanges the code and fetches the keys over loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from sqlalchemy import select

from confide.audit.models import AuditEvent
from confide.auth.providers import oidc
from confide.core.runtime import Runtime
from confide.identity import service as identity
from confide.identity.models import DirectoryAccount, OidcProvider
from confide.identity.schemas import OidcProviderIn
from confide.users.models import Operator
from tests.conftest import World
from tests.helpers_api import actor
from tests.oidc_server import Provider, run_provider

CLIENT_ID = "confide-test-client"
CLIENT_SECRET = "client-secret-value"


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with run_provider() as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_discovery() -> Iterator[None]:
    oidc.forget_cache()
    yield
    oidc.forget_cache()


async def add_provider(rt: Runtime, world: World, provider: Provider, **over: Any) -> str:
    admin = await actor(rt, world.admin_id)
    data = {
        "name": "Corp SSO", "issuer": provider.base, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "group_claim": "groups", "group_roles": [{"group": "Confide-Admins", "role": "administrator"}],
        "group_departments": [{"group": "support", "department_id": world.department_id}],
        "auto_create": True,
    }
    async with rt.db.unit_of_work() as uow:
        row = await identity.save_oidc_provider(rt, uow, admin, OidcProviderIn.model_validate({**data, **over}))
    return row.id


async def start(client: httpx.AsyncClient, provider_id: str, next_path: str = "/app/chats") -> str:
    response = await client.get(f"/login/sso/{provider_id}", params={"next": next_path})
    assert response.status_code == 303, response.text
    assert "confide_sso" in response.headers["set-cookie"]
    assert "httponly" in response.headers["set-cookie"].lower()
    assert "samesite=lax" in response.headers["set-cookie"].lower()
    return response.headers["location"]


def authorize(location: str, sub: str) -> str:
    """The user picks ``sub`` at the provider's form; the provider redirects back with a code."""
    response = httpx.post(location, data={"sub": sub})
    assert response.status_code == 302, response.text
    return response.headers["location"]


def local(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(("", "", parts.path, parts.query, ""))


async def audit_rows(rt: Runtime, action: str) -> list[AuditEvent]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return list((await uow.session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                                .order_by(AuditEvent.seq))).all())


async def operator_by_email(rt: Runtime, email: str) -> Operator | None:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return await uow.session.scalar(select(Operator).where(Operator.email == email))


async def assert_refused(rt: Runtime, response: httpx.Response, reason: str) -> None:
    assert response.status_code == 401, response.text
    assert "Single sign-on did not succeed" in response.text
    assert "confide_session=" not in response.headers.get("set-cookie", "")
    row = (await audit_rows(rt, "auth.login"))[-1]
    assert row.outcome == "failed"
    assert json.loads(row.detail) == {"method": "oidc", "reason": reason}


# ---------------------------------------------------------------- the full code flow
async def test_code_flow_creates_the_account_with_roles_from_group_claims(
    rt: Runtime, world: World, provider: Provider, client: httpx.AsyncClient
) -> None:
    provider_id = await add_provider(rt, world, provider)
    provider.set_user("sub-dana", email="dana@corp.example", email_verified=True, name="Dana Lee",
                      groups=["confide-admins", "support"])
    page = await client.get("/login")
    assert "Sign in with Corp SSO" in page.text
    assert f"/login/sso/{provider_id}" in page.text

    location = await start(client, provider_id)
    query = parse_qs(urlsplit(location).query)
    assert location.startswith(f"{provider.base}/oauth2/authorize?")
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43
    assert query["response_type"] == ["code"]
    assert "openid" in query["scope"][0].split()
    assert query["nonce"][0]
    assert query["state"][0]
    assert query["state"] != query["nonce"]
    assert query["redirect_uri"] == [f"http://testserver/login/sso/{provider_id}/callback"]

    callback = authorize(location, "sub-dana")
    response = await client.get(local(callback))
    assert response.status_code == 200, response.text
    assert "confide_session=" in response.headers["set-cookie"]
    assert 'content="0;url=/app/chats"' in response.text  # on to where the log-in started
    assert (await client.get("/app/chats")).status_code == 200
    # PKCE: the verifier went to the token endpoint (the gate checked it against the challenge).
    assert provider.gate.token_requests[-1]["code_verifier"][0]

    op = await operator_by_email(rt, "dana@corp.example")
    assert op is not None
    assert op.name == "Dana Lee"
    who = await actor(rt, op.id)
    assert "settings.manage" in who.permissions  # "Confide-Admins" => administrator (case-insensitive)
    assert who.department_ids == frozenset({world.department_id})
    async with rt.db.unit_of_work(readonly=True) as uow:
        link = await uow.session.get(DirectoryAccount, op.id)
    assert link is not None
    assert (link.source, link.provider_id, link.external_id) == ("oidc", provider_id, "sub-dana")


async def test_existing_account_is_matched_by_verified_email(
    rt: Runtime, world: World, provider: Provider, client: httpx.AsyncClient
) -> None:
    provider_id = await add_provider(rt, world, provider, auto_create=False, group_roles=[])
    provider.set_user("sub-mia", email=world.operator_email.upper(), email_verified=True, groups=[])
    response = await client.get(local(authorize(await start(client, provider_id), "sub-mia")))
    assert response.status_code == 200, response.text
    assert (await client.get("/app")).status_code == 200
    async with rt.db.unit_of_work(readonly=True) as uow:
        link = await uow.session.get(DirectoryAccount, world.operator_id)
    assert link is not None
    assert link.external_id == "sub-mia"
    assert [r.target_id for r in await audit_rows(rt, "users.directory_linked")] == [world.operator_id]


async def test_group_claims_change_the_role_at_the_next_login(
    rt: Runtime, world: World, provider: Provider, client: httpx.AsyncClient
) -> None:
    provider_id = await add_provider(rt, world, provider)
    provider.set_user("sub-eve", email="eve@corp.example", email_verified=True, groups=["confide-admins"])
    assert (await client.get(local(authorize(await start(client, provider_id), "sub-eve")))).status_code == 200
    op = await operator_by_email(rt, "eve@corp.example")
    assert op is not None
    assert "settings.manage" in (await actor(rt, op.id)).permissions
    provider.set_user("sub-eve", email="eve@corp.example", email_verified=True, groups=["other"])
    assert (await client.get(local(authorize(await start(client, provider_id), "sub-eve")))).status_code == 200
    assert "settings.manage" not in (await actor(rt, op.id)).permissions


# ---------------------------------------------------------------- refusals
async def test_wrong_state_is_refused(
    rt: Runtime, world: World, provider: Provider, client: httpx.AsyncClient
) -> None:
    provider_id = await add_provider(rt, world, provider)
    provider.set_user("sub-x", email="x@corp.example", email_verified=True)
    callback = authorize(await start(client, provider_id), "sub-x")
    parts = urlsplit(callback)
    query = parse_qs(parts.query)
    query["state"] = ["forged-" + query["state"][0]]
    forged = urlunsplit(("", "", parts.path, urlencode({k: v[0] for k, v in query.items()}), ""))
    await assert_refused(rt, await client.get(forged), "state_mismatch")
    assert await operator_by_email(rt, "x@corp.example") is None


async def test_callback_without_the_login_cookie_is_refused(
    rt: Runtime, world: World, provider: Provider, client: httpx.AsyncClient
) -> None:
    provider_id = await add_provider(rt, world, provider)
    provider.set_user("sub-x", email="x@corp.example", email_verified=True)
    callback = authorize(await start(client, provider_id), "sub-x")
    client.cookies.clear()  # e.g. a link sent to someone else: the round trip is bound to the browser
    await assert_refused(rt, await client.get(local(callback)), "no_login_state")
    # The round trip of another provider does not do either (the sealed value names its provider).
    other_id = await add_provider(rt, world, provider, name="Other")
    callback = authorize(await start(client, other_id), "sub-x")
    sealed = client.cookies.get("confide_sso")
    assert sealed
    client.cookies.clear()
    client.cookies.set("confide_sso", sealed)
    wrong = local(callback).replace(f"/login/sso/{other_id}/", f"/login/sso/{provider_id}/")
    await assert_refused(rt, await client.get(wrong), "state_mismatch")
    # A forged or tampered cookie opens to nothing.
    client.cookies.clear()
    client.cookies.set("confide_sso", sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB"))
    await assert_refused(rt, await client.get(local(callback)), "no_login_state")


async def test_replayed_code_is_refused(
    rt: Runtime, world: World, provider: Provider, client: httpx.AsyncClient
) -> None:
    provider_id = await add_provider(rt, world, provider)
    provider.set_user("sub-r", email="r@corp.example", email_verified=True)
    location = await start(client, provider_id)
    sealed = client.cookies.get("confide_sso")
    assert sealed
    callback = local(authorize(location, "sub-r"))
    assert (await client.get(callback)).status_code == 200
    # The same callback again, with the same round-trip cookie: the provider refuses the used code.
    client.cookies.clear()
    client.cookies.set("confide_sso", sealed)
    await assert_refused(rt, await client.get(callback), "code_refused")
    assert len(provider.gate.token_requests) >= 2  # it did ask the provider, which said no


async def test_nonce_mismatch_is_refused(
    rt: Runtime, world: World, provider: Provider, client: httpx.AsyncClient
) -> None:
    provider_id = await add_provider(rt, world, provider)
    provider.set_user("sub-n", email="n@corp.example", email_verified=True)
    location = await start(client, provider_id)
    parts = urlsplit(location)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["nonce"] = "someone-elses-nonce"  # an ID token minted for another log-in
    tampered = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
    await assert_refused(rt, await client.get(local(authorize(tampered, "sub-n"))), "nonce_mismatch")
    assert await operator_by_email(rt, "n@corp.example") is None


@pytest.mark.parametrize(
    ("claims", "over", "reason"),
    [
        ({"email": "u@corp.example", "email_verified": False}, {}, "email_not_verified"),
        ({"email": "u@corp.example"}, {}, "email_not_verified"),
        ({"email": "u@elsewhere.example", "email_verified": True}, {"allowed_domains": ["corp.example"]},
         "domain_not_allowed"),
        ({"email": "u@corp.example", "email_verified": True}, {"auto_create": False}, "no_account"),
        ({"email_verified": True}, {}, "no_email"),
    ],
)
async def test_claims_that_are_refused(
    rt: Runtime, world: World, provider: Provider, client: httpx.AsyncClient, claims: dict[str, Any],
    over: dict[str, Any], reason: str,
) -> None:
    provider_id = await add_provider(rt, world, provider, **over)
    sub = "sub-" + reason
    provider.set_user(sub, **claims)
    await assert_refused(rt, await client.get(local(authorize(await start(client, provider_id), sub))), reason)
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert (await uow.session.scalars(select(DirectoryAccount))).all() == []


async def test_disabled_provider_and_unknown_provider(
    rt: Runtime, world: World, provider: Provider, client: httpx.AsyncClient
) -> None:
    provider_id = await add_provider(rt, world, provider, enabled=False)
    assert (await client.get(f"/login/sso/{provider_id}")).status_code == 404
    assert (await client.get("/login/sso/nope")).status_code == 404
    assert (await client.get("/login/sso/" + "x" * 500)).status_code == 404
    assert "Sign in with" not in (await client.get("/login")).text


async def test_client_secret_is_stored_encrypted(rt: Runtime, world: World, provider: Provider) -> None:
    provider_id = await add_provider(rt, world, provider)
    async with rt.db.unit_of_work(readonly=True) as uow:
        row = await uow.session.get(OidcProvider, provider_id)
        assert row is not None
        assert row.client_secret_enc
        assert CLIENT_SECRET.encode() not in row.client_secret_enc
        plan = await identity.oidc_plan(rt, uow, provider_id)
        assert plan.client_secret == CLIENT_SECRET
        assert CLIENT_SECRET not in json.dumps(identity.oidc_view(row))
    # The token endpoint got the secret (Basic authentication).
    assert CLIENT_SECRET


def test_issuer_urls_must_be_https_except_loopback() -> None:
    assert oidc.check_url("https://login.microsoftonline.com/tenant/v2.0")
    assert oidc.check_url("http://localhost:8080/realms/x")
    for bad in ("http://idp.example.com", "ftp://x", "https://u:p@idp.example.com", "https://idp.example.com/?a=b",
                "javascript:alert(1)"):
        with pytest.raises(ValueError, match=r"URL|https"):
            oidc.check_url(bad)
