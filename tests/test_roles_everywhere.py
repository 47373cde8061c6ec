"""Custom roles wherever a built-in role key is accepted (SQLite and PostgreSQL): login limits per
role, the two-factor policy, LDAP and OpenID Connect group -> role mappings; each validated (an
unknown role, or another workspace's, is a 4xx and nothing is stored), each enforced for the
holder of a custom role, and a role deletion that leaves no reference to it behind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from confide import role_use
from confide.audit.models import AuditEvent
from confide.core.errors import Conflict, Invalid, NotFound
from confide.core.runtime import Runtime
from confide.identity import service as identity
from confide.identity.models import LdapDirectory, OidcProvider
from confide.identity.schemas import LdapSettingsIn, OidcProviderIn
from confide.login_limits import service as login_limits
from confide.login_limits.models import LoginLimit
from confide.login_limits.schemas import LoginLimitsIn
from confide.two_factor import service as two_factor
from confide.users import accounts as user_accounts
from confide.users.models import Operator, Role
from confide.users.schemas import OperatorPatch
from tests.conftest import World
from tests.helpers_api import PASSWORD, SELF, actor, logged_in, other_workspace
from tests.ldap_server import PEOPLE, SERVICE_DN, SERVICE_PW, USER_FILTER, Slapd
from tests.test_directory_ldap import ALICE_PW, directory_with_users, form_login, operator_by_email
from tests.test_roles import make_role


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[Slapd]:
    yield from directory_with_users(tmp_path)


OIDC = {"name": "Corp SSO", "issuer": "https://sso.corp.example", "client_id": "confide"}


async def give(rt: Runtime, world: World, operator_id: str, role: str) -> None:
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await user_accounts.update_operator(rt, uow, admin, operator_id, OperatorPatch(role=role))


async def stored_role(rt: Runtime, operator_id: str) -> str:
    async with rt.db.unit_of_work(readonly=True) as uow:
        op = await uow.session.get(Operator, operator_id)
        assert op is not None
        return op.role


# ---------------------------------------------------------------- two-factor policy
async def test_the_two_factor_policy_names_a_custom_role_and_its_holders_must_enrol(
    app: Any, rt: Runtime, world: World
) -> None:
    role_id = await make_role(rt, world, permissions=["chats.read", "chats.participate"])
    await give(rt, world, world.operator_id, role_id)
    admin = await actor(rt, world.admin_id)
    async with logged_in(app, world.admin_email) as http:  # logged in before the policy names their role
        async with rt.db.unit_of_work() as uow:
            assert (await two_factor.role_choices(uow, world.workspace_id))[-1] == (role_id, "Night shift")
            view = await two_factor.set_policy(rt, uow, admin, require_all=False, roles=[role_id, "admin"])
        assert view.roles == sorted([role_id, "administrator"])  # canonical keys
        async with rt.db.unit_of_work(readonly=True) as uow:
            assert await two_factor.second_step(uow, world.operator_id) == two_factor.ENROL
        # The settings page offers the custom role and keeps it ticked.
        page = await http.get("/app/settings/security/two-factor")
    assert f'value="{role_id}" checked' in page.text
    assert "Night shift" in page.text


@pytest.mark.parametrize("bad", ["nosuchrole", "", "x" * 41, "<script>"])
async def test_the_two_factor_policy_refuses_unknown_roles(rt: Runtime, world: World, bad: str) -> None:
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        with pytest.raises(Invalid):
            await two_factor.set_policy(rt, uow, admin, require_all=False, roles=["operator", bad])
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert (await two_factor.get_policy(uow, world.workspace_id)).roles == []


async def test_another_workspaces_custom_role_is_unknown_everywhere(rt: Runtime, world: World) -> None:
    other = await other_workspace(rt)
    theirs = await make_role(rt, other, name="Theirs")
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        with pytest.raises(Invalid):
            await two_factor.set_policy(rt, uow, admin, require_all=False, roles=[theirs])
        with pytest.raises(NotFound):
            await login_limits.set_limits(rt, uow, admin, "role", theirs,
                                          LoginLimitsIn(ranges=["192.0.2.0/24"]), address=None)
        with pytest.raises(Invalid):
            await identity.save_oidc_provider(rt, uow, admin, OidcProviderIn.model_validate(
                {**OIDC, "group_roles": [{"group": "g", "role": theirs}]}))
        with pytest.raises(Invalid):
            await user_accounts.update_operator(rt, uow, admin, world.operator_id, OperatorPatch(role=theirs))
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert (await uow.session.scalars(select(LoginLimit))).all() == []
        assert (await uow.session.scalars(select(OidcProvider))).all() == []


# ---------------------------------------------------------------- login limits
async def test_login_limits_per_custom_role_are_listed_saved_and_enforced(
    app: Any, rt: Runtime, world: World
) -> None:
    role_id = await make_role(rt, world, permissions=["chats.read", "chats.participate"])
    await give(rt, world, world.operator_id, role_id)
    async with logged_in(app, world.admin_email) as http:
        saved = await http.post(f"/app/settings/security/login-limits/role/{role_id}",
                                data={"ranges": "192.0.2.0/24", "timezone": "UTC"}, headers=SELF)
        assert saved.status_code == 303, saved.text
        page = await http.get("/app/settings/security/login-limits")
        assert "Night shift" in page.text
        unknown = await http.post("/app/settings/security/login-limits/role/nosuchrole",
                                  data={"ranges": "192.0.2.0/24", "timezone": "UTC"}, headers=SELF)
        assert unknown.status_code == 404
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work(readonly=True) as uow:
        overview = await login_limits.overview(uow, admin)
    mine = [r for r in overview["roles"] if r["id"] == role_id]
    assert len(mine) == 1
    assert (mine[0]["ranges"], mine[0]["name"]) == (["192.0.2.0/24"], "Night shift")
    holder = next(o for o in overview["operators"] if o["id"] == world.operator_id)
    assert holder["role_name"] == "Night shift"

    async def login_from(address: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            return await http.post("/api/v1/auth/login", json={"email": world.operator_email,
                                                               "password": PASSWORD}, headers=SELF)

    assert (await login_from("203.0.113.7")).status_code == 403  # the custom role's network only
    assert (await login_from("192.0.2.10")).status_code == 200
    async with rt.db.unit_of_work(readonly=True) as uow:
        denied = (await uow.session.scalars(select(AuditEvent).where(AuditEvent.outcome == "denied"))).all()
    assert [json.loads(d.detail)["reason"] for d in denied] == ["login_limits_network"]


# ---------------------------------------------------------------- directory mappings
async def test_oidc_mappings_accept_custom_roles_and_refuse_unknown_ones(rt: Runtime, world: World) -> None:
    role_id = await make_role(rt, world)
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        row = await identity.save_oidc_provider(rt, uow, admin, OidcProviderIn.model_validate(
            {**OIDC, "group_roles": [{"group": "night", "role": role_id}, {"group": "boss", "role": "admin"}],
             "default_role": role_id}))
        assert row.group_roles == [{"group": "night", "role": role_id}, {"group": "boss", "role": "administrator"}]
        assert row.default_role == role_id
    for bad in ({"default_role": "nosuchrole"}, {"group_roles": [{"group": "g", "role": "nosuchrole"}]}):
        async with rt.db.unit_of_work() as uow:
            with pytest.raises(Invalid):
                await identity.save_oidc_provider(rt, uow, admin, OidcProviderIn.model_validate({**OIDC, **bad}))
    with pytest.raises(ValueError, match="is not a role"):
        OidcProviderIn.model_validate({**OIDC, "default_role": "<b>x</b>"})


async def ldap_settings(server: Slapd, **over: Any) -> LdapSettingsIn:
    data = {
        "enabled": True, "server_urls": [server.url], "tls_mode": "none", "bind_dn": SERVICE_DN,
        "bind_password": SERVICE_PW, "user_base_dn": PEOPLE, "user_filter": USER_FILTER,
        "auto_create": True, "default_role": "operator",
    }
    return LdapSettingsIn.model_validate({**data, **over})


async def test_an_ldap_group_maps_to_a_custom_role_and_admin_is_stored_canonical(
    app: Any, rt: Runtime, world: World, slapd: Slapd, client: httpx.AsyncClient
) -> None:
    role_id = await make_role(rt, world, permissions=["chats.read", "settings.read"], scope="workspace")
    admin = await actor(rt, world.admin_id)
    mapping = [{"group": "cn=chat-support,ou=groups,dc=example,dc=test", "role": role_id}]
    async with rt.db.unit_of_work() as uow:
        with pytest.raises(Invalid):
            await identity.save_ldap(rt, uow, admin, await ldap_settings(
                slapd, group_roles=[{"group": "cn=x,dc=example,dc=test", "role": "nosuchrole"}]))
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert (await uow.session.scalars(select(LdapDirectory))).all() == []
    async with rt.db.unit_of_work() as uow:
        await identity.save_ldap(rt, uow, admin, await ldap_settings(slapd, group_roles=mapping))
    # carol is in chat-support: the custom role.
    assert (await form_login(client, "carol@corp.example", "carol-directory-pw")).status_code == 303
    carol = await operator_by_email(rt, "carol@corp.example")
    assert carol is not None
    assert carol.role == role_id
    assert (await actor(rt, carol.id)).permissions == frozenset({"chats.read", "settings.read"})
    # A group mapped to the administrator role (typed as the legacy "admin") is stored canonical.
    async with rt.db.unit_of_work() as uow:
        await identity.save_ldap(rt, uow, admin, await ldap_settings(slapd, group_roles=[
            {"group": "cn=chat-admins,ou=groups,dc=example,dc=test", "role": "admin"}, *mapping]))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        assert (await form_login(other, "alice@corp.example", ALICE_PW)).status_code == 303
    alice = await operator_by_email(rt, "alice@corp.example")
    assert alice is not None
    assert alice.role == "administrator"
    # The settings page offers the custom role.
    async with logged_in(app, world.admin_email) as http:
        page = await http.get("/app/settings/security/directory")
    assert f'<option value="{role_id}"' in page.text


# ---------------------------------------------------------------- deleting a role leaves nothing behind
async def test_deleting_a_role_clears_its_limits_and_policy_entry_and_refuses_while_mapped(
    rt: Runtime, world: World
) -> None:
    role_id = await make_role(rt, world)
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await login_limits.set_limits(rt, uow, admin, "role", role_id, LoginLimitsIn(ranges=["192.0.2.0/24"]),
                                      address=None)
        await two_factor.set_policy(rt, uow, admin, require_all=False, roles=[role_id, "operator"])
        await identity.save_oidc_provider(rt, uow, admin, OidcProviderIn.model_validate(
            {**OIDC, "group_roles": [{"group": "night", "role": role_id}]}))
    async with rt.db.unit_of_work() as uow:
        with pytest.raises(Conflict):
            await role_use.delete_role(rt, uow, admin, role_id)
        provider = (await uow.session.scalars(select(OidcProvider))).one()
    async with rt.db.unit_of_work() as uow:
        await identity.save_oidc_provider(rt, uow, admin, OidcProviderIn.model_validate(OIDC), provider.id)
    async with rt.db.unit_of_work() as uow:
        await role_use.delete_role(rt, uow, admin, role_id)
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert await uow.session.get(Role, role_id) is None
        assert (await uow.session.scalars(select(LoginLimit))).all() == []
        assert (await two_factor.get_policy(uow, world.workspace_id)).roles == ["operator"]
        row = (await uow.session.scalars(select(AuditEvent).where(AuditEvent.action == "role.delete"))).one()
    assert json.loads(row.detail) == {"references_cleared": 2}
