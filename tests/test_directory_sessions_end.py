"""Deleting or turning off a single sign-on provider, or turning off the LDAP directory, ends the
sessions that logged in through it at once (SQLite and PostgreSQL): their open consoles close
(4403, the ``revoke`` event), sessions the same operator opened with a local password stay, and
each operator's ended sessions are audited."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from confide.audit.models import AuditEvent
from confide.core import clock
from confide.core.runtime import Runtime
from confide.identity import service as identity
from confide.identity.models import DirectoryAccount
from confide.identity.schemas import LdapSettingsIn, OidcProviderIn
from confide.users import sessions as user_sessions
from confide.users.models import OperatorSession
from tests import wsclient
from tests.conftest import Live, World
from tests.helpers_api import actor

OIDC = {"name": "Corp SSO", "issuer": "https://sso.corp.example", "client_id": "confide"}
LDAP = {"enabled": True, "server_urls": ["ldap://127.0.0.1:1"], "tls_mode": "none", "bind_dn": "cn=svc,dc=x",
        "bind_password": "service-pw", "user_base_dn": "ou=people,dc=x", "user_filter": "(uid={login})"}


async def link(rt: Runtime, world: World, operator_id: str, source: str, provider_id: str) -> None:
    async with rt.db.unit_of_work() as uow:
        uow.session.add(DirectoryAccount(operator_id=operator_id, workspace_id=world.workspace_id, source=source,
                                         provider_id=provider_id, external_id=f"sub-{operator_id}",
                                         created_at=clock.now(), checked_at=clock.now()))


async def open_session(rt: Runtime, operator_id: str, method: str) -> str:
    async with rt.db.unit_of_work() as uow:
        return await user_sessions.open_session(rt, uow, operator_id, method=method)


async def live_methods(rt: Runtime, operator_id: str) -> list[str]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        rows = await uow.session.scalars(select(OperatorSession).where(
            OperatorSession.operator_id == operator_id, OperatorSession.revoked_at.is_(None)))
        return sorted(s.method for s in rows)


async def revoked_rows(rt: Runtime) -> list[dict[str, Any]]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        rows = await uow.session.scalars(select(AuditEvent).where(AuditEvent.action == "auth.sessions_revoked")
                                         .order_by(AuditEvent.seq))
        return [{"target": r.target_id, "actor": r.actor_type, **json.loads(r.detail)} for r in rows]


async def make_provider(rt: Runtime, world: World) -> str:
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        return (await identity.save_oidc_provider(rt, uow, admin, OidcProviderIn.model_validate(OIDC))).id


async def test_deleting_a_provider_ends_its_sessions_and_closes_their_consoles(
    live: Live, rt: Runtime, world: World
) -> None:
    provider_id = await make_provider(rt, world)
    await link(rt, world, world.operator_id, "oidc", provider_id)
    sso_token = await open_session(rt, world.operator_id, "oidc")
    await open_session(rt, world.operator_id, "password")
    ws = await wsclient.operator_socket(live=live, cookie=sso_token)
    assert (await wsclient.recv(ws=ws))["type"] == "welcome"
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await identity.delete_oidc_provider(rt, uow, admin, provider_id)
    code, _ = await wsclient.expect_close(ws=ws)
    assert code == 4403
    assert await live_methods(rt, world.operator_id) == ["password"]  # the local log-in stays
    assert await revoked_rows(rt) == [{"target": world.operator_id, "actor": "system", "method": "oidc",
                                       "reason": "provider_deleted", "sessions": 1}]
    await wsclient.close_all()


async def test_turning_a_provider_off_ends_its_sessions(rt: Runtime, world: World) -> None:
    provider_id = await make_provider(rt, world)
    await link(rt, world, world.operator_id, "oidc", provider_id)
    await open_session(rt, world.operator_id, "oidc")
    await open_session(rt, world.operator_id, "oidc")
    await open_session(rt, world.admin_id, "oidc")  # not linked to this provider: kept
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:  # saved unchanged (still on): nothing ends
        await identity.save_oidc_provider(rt, uow, admin, OidcProviderIn.model_validate(OIDC), provider_id)
    assert await live_methods(rt, world.operator_id) == ["oidc", "oidc"]
    async with rt.db.unit_of_work() as uow:
        await identity.save_oidc_provider(rt, uow, admin, OidcProviderIn.model_validate({**OIDC, "enabled": False}),
                                          provider_id)
    assert await live_methods(rt, world.operator_id) == []
    assert await live_methods(rt, world.admin_id) == ["oidc"]
    assert await revoked_rows(rt) == [{"target": world.operator_id, "actor": "system", "method": "oidc",
                                       "reason": "provider_off", "sessions": 2}]


async def test_turning_the_ldap_directory_off_ends_its_sessions(rt: Runtime, world: World) -> None:
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        directory = await identity.save_ldap(rt, uow, admin, LdapSettingsIn.model_validate(LDAP))
    await link(rt, world, world.operator_id, "ldap", directory.id)
    await open_session(rt, world.operator_id, "ldap")
    await open_session(rt, world.operator_id, "password")
    async with rt.db.unit_of_work() as uow:
        await identity.save_ldap(rt, uow, admin, LdapSettingsIn.model_validate({**LDAP, "enabled": False}))
    assert await live_methods(rt, world.operator_id) == ["password"]
    assert await revoked_rows(rt) == [{"target": world.operator_id, "actor": "system", "method": "ldap",
                                       "reason": "directory_off", "sessions": 1}]
    async with rt.db.unit_of_work(readonly=True) as uow:
        changed = (await uow.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "settings.directory_changed").order_by(AuditEvent.seq))).all()
    assert json.loads(changed[-1].detail)["sessions_ended"] == 1
