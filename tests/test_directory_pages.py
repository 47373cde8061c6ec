"""Settings → Security → Directory & SSO: only with Permission.SETTINGS_MANAGE, secrets never shown
back ("leave empty to keep"), bad input shown again with a message and nothing half-written, the
"test connection" button against a real slapd, every change audited."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from confide.audit.models import AuditEvent
from confide.core.runtime import Runtime
from confide.identity.models import LdapDirectory, OidcProvider
from tests.conftest import World
from tests.factories import PASSWORD
from tests.helpers_api import other_workspace
from tests.ldap_server import PEOPLE, SERVICE_DN, SERVICE_PW, USER_FILTER, Slapd, start_slapd

SAME_ORIGIN = {"Origin": "http://testserver"}
PAGE = "/app/settings/security/directory"


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[Slapd]:
    server = start_slapd(tmp_path / "slapd")
    yield server
    server.stop()


async def log_in(client: httpx.AsyncClient, email: str) -> None:
    response = await client.post("/login", data={"email": email, "password": PASSWORD}, headers=SAME_ORIGIN)
    assert response.status_code == 303, response.text


def ldap_form(server: Slapd, **over: str) -> dict[str, str]:
    return {
        "enabled": "1", "server_urls": server.url, "tls_mode": "starttls", "ca_cert_pem": server.ca_pem,
        "bind_dn": SERVICE_DN, "bind_password": SERVICE_PW, "user_base_dn": PEOPLE, "user_filter": USER_FILTER,
        "attr_email": "mail", "attr_name": "cn", "attr_groups": "memberOf",
        "group_roles": "cn=chat-admins,ou=groups,dc=example,dc=test => administrator",
        "group_departments": "cn=support,ou=groups,dc=example,dc=test => Support",
        "required_groups": "", "default_role": "operator", "auto_create": "1", "login_domains": "corp.example",
        "timeout_s": "3", "recheck_interval_s": "300", **over,
    }


def provider_form(**over: str) -> dict[str, str]:
    return {
        "name": "Tenant SSO", "enabled": "1", "issuer": "https://login.microsoftonline.com/tenant-id/v2.0",
        "client_id": "app-id", "client_secret": "the-client-secret-value", "scopes": "openid email profile",
        "email_claim": "email", "group_claim": "groups", "group_roles": "0f1e2d => supervisor",
        "group_departments": "", "default_role": "operator", "allowed_domains": "corp.example", **over,
    }


async def audit_actions(rt: Runtime) -> list[tuple[str, str, dict[str, Any]]]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        rows = (await uow.session.scalars(select(AuditEvent).order_by(AuditEvent.seq))).all()
    return [(r.action, r.outcome, json.loads(r.detail)) for r in rows if r.action.startswith("settings.")]


async def count(rt: Runtime, model: Any) -> int:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(model)) or 0)


async def test_page_needs_the_settings_permission(rt: Runtime, world: World, client: httpx.AsyncClient) -> None:
    response = await client.get(PAGE)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")
    await log_in(client, world.operator_email)
    assert (await client.get(PAGE)).status_code == 403
    response = await client.post(f"{PAGE}/oidc", data=provider_form(), headers=SAME_ORIGIN)
    assert response.status_code == 403
    response = await client.post(f"{PAGE}/ldap/test", headers=SAME_ORIGIN)
    assert response.status_code == 403
    assert await count(rt, OidcProvider) == 0


async def test_ldap_settings_saved_secret_never_shown_and_kept(
    rt: Runtime, world: World, client: httpx.AsyncClient, slapd: Slapd
) -> None:
    await log_in(client, world.admin_email)
    page = await client.get(PAGE)
    assert page.status_code == 200
    assert "No password stored yet." in page.text
    response = await client.post(f"{PAGE}/ldap", data=ldap_form(slapd), headers=SAME_ORIGIN)
    assert response.status_code == 303, response.text
    page = await client.get(response.headers["location"])
    assert "Directory settings saved." in page.text
    assert "A password is stored. Leave empty to keep it." in page.text
    assert SERVICE_PW not in page.text
    assert "cn=support,ou=groups,dc=example,dc=test =&gt; Support" in page.text  # the department by name
    # Saved again without a password: the stored one stays (the test connection still binds).
    response = await client.post(f"{PAGE}/ldap", data=ldap_form(slapd, bind_password=""), headers=SAME_ORIGIN)
    assert response.status_code == 303
    tested = await client.post(f"{PAGE}/ldap/test", headers=SAME_ORIGIN)
    assert tested.status_code == 200
    assert "The directory answered" in tested.text
    async with rt.db.unit_of_work(readonly=True) as uow:
        row = await uow.session.scalar(select(LdapDirectory))
    assert row is not None
    assert row.group_departments == [{"group": "cn=support,ou=groups,dc=example,dc=test",
                                      "department_id": world.department_id}]
    assert row.login_domains == ["corp.example"]
    # A wrong service password: the test says so.
    response = await client.post(f"{PAGE}/ldap", data=ldap_form(slapd, bind_password="not-it"), headers=SAME_ORIGIN)
    assert response.status_code == 303
    tested = await client.post(f"{PAGE}/ldap/test", headers=SAME_ORIGIN)
    assert "The service account&#39;s DN or password was refused." in tested.text
    actions = await audit_actions(rt)
    assert [a[:2] for a in actions] == [
        ("settings.directory_changed", "ok"), ("settings.directory_changed", "ok"),
        ("settings.directory_tested", "ok"), ("settings.directory_changed", "ok"),
        ("settings.directory_tested", "failed"),
    ]
    assert actions[0][2]["password_changed"] is True
    assert actions[1][2]["password_changed"] is False
    assert actions[4][2] == {"reason": "bad_credentials"}


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"user_filter": "(uid=alice)"}, "must contain {login}"),
        ({"user_filter": "(uid={login}"}, "one parenthesised LDAP filter"),
        ({"server_urls": "http://dc1.example.com"}, "is not a server URL"),
        ({"tls_mode": "ldaps"}, "ldaps:// URLs with LDAPS"),
        ({"group_roles": "cn=x => superuser"}, "is not a role"),
        ({"group_roles": "no arrow here"}, "is not a line like"),
        ({"group_departments": "cn=x => Nowhere"}, "there is no department named"),
        ({"ca_cert_pem": "<script>alert(1)</script>"}, "must be PEM"),
        ({"attr_email": "mail)(x"}, "is not an LDAP attribute name"),
        ({"login_domains": "not a domain!"}, "is not a domain name"),
        ({"timeout_s": "0"}, "must be at least 1"),
        ({"bind_password": "", "enabled": "1"}, "give the service account&#39;s password"),
    ],
)
async def test_bad_ldap_settings_are_shown_again_and_nothing_is_saved(
    rt: Runtime, world: World, client: httpx.AsyncClient, slapd: Slapd, over: dict[str, str], message: str
) -> None:
    await log_in(client, world.admin_email)
    response = await client.post(f"{PAGE}/ldap", data=ldap_form(slapd, **over), headers=SAME_ORIGIN)
    assert response.status_code == 422, response.text
    assert message in response.text
    assert "<script>alert(1)</script>" not in response.text
    assert SERVICE_PW not in response.text  # a typed secret is not sent back either
    assert await count(rt, LdapDirectory) == 0
    assert await audit_actions(rt) == []


async def test_providers_added_edited_deleted(rt: Runtime, world: World, client: httpx.AsyncClient) -> None:
    await log_in(client, world.admin_email)
    response = await client.post(f"{PAGE}/oidc", data=provider_form(), headers=SAME_ORIGIN)
    assert response.status_code == 303, response.text
    async with rt.db.unit_of_work(readonly=True) as uow:
        row = await uow.session.scalar(select(OidcProvider))
    assert row is not None
    assert row.group_roles == [{"group": "0f1e2d", "role": "supervisor"}]
    page = await client.get(PAGE)
    assert "the-client-secret-value" not in page.text
    assert f"http://testserver/login/sso/{row.id}/callback" in page.text
    assert "A secret is stored. Leave empty to keep it." in page.text
    # The log-in page offers it.
    anonymous = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")  # type: ignore[attr-defined]
    async with anonymous:
        assert "Sign in with Tenant SSO" in (await anonymous.get("/login")).text
    # Edited without a secret: kept.
    response = await client.post(f"{PAGE}/oidc/{row.id}", data=provider_form(name="Microsoft", client_secret=""),
                                 headers=SAME_ORIGIN)
    assert response.status_code == 303
    async with rt.db.unit_of_work(readonly=True) as uow:
        again = await uow.session.get(OidcProvider, row.id)
    assert again is not None
    assert again.name == "Microsoft"
    assert again.client_secret_enc == row.client_secret_enc
    # Bad input: shown again, nothing changed.
    response = await client.post(f"{PAGE}/oidc/{row.id}", data=provider_form(issuer="http://idp.example.com"),
                                 headers=SAME_ORIGIN)
    assert response.status_code == 422
    assert "must use https://" in response.text
    # Deleted.
    response = await client.post(f"{PAGE}/oidc/{row.id}/delete", headers=SAME_ORIGIN)
    assert response.status_code == 303
    assert await count(rt, OidcProvider) == 0
    actions = [a[0] for a in await audit_actions(rt)]
    changed, deleted = "settings.sso_provider_changed", "settings.sso_provider_deleted"
    assert actions == [changed, changed, deleted]


async def test_another_workspaces_provider_is_not_found(
    rt: Runtime, world: World, client: httpx.AsyncClient
) -> None:
    other = await other_workspace(rt)
    async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as theirs:  # type: ignore[attr-defined]
        await log_in(theirs, other.admin_email)
        response = await theirs.post(f"{PAGE}/oidc", data=provider_form(), headers=SAME_ORIGIN)
        assert response.status_code == 303
    async with rt.db.unit_of_work(readonly=True) as uow:
        row = await uow.session.scalar(select(OidcProvider))
    assert row is not None
    await log_in(client, world.admin_email)
    for path in (f"{PAGE}/oidc/{row.id}", f"{PAGE}/oidc/{row.id}/delete"):
        response = await client.post(path, data=provider_form(name="Mine now"), headers=SAME_ORIGIN)
        assert response.status_code == 404, path
    assert "Tenant SSO" not in (await client.get(PAGE)).text
    async with rt.db.unit_of_work(readonly=True) as uow:
        again = await uow.session.get(OidcProvider, row.id)
    assert again is not None
    assert again.name == "Tenant SSO"
