"""Roles as data: custom roles per workspace (Settings -> Roles), operators holding them, what the
actor then may do, sessions ended on a role change, nobody granting more than they hold, audit."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from confide.audit.models import AuditEvent
from confide.core.errors import Conflict, Forbidden, Invalid, NotFound
from confide.core.runtime import Runtime
from confide.permissions.policy import BUILT_IN_ROLES
from confide.users import roles
from confide.users.models import Operator, OperatorSession, Role
from confide.users.schemas import RoleIn
from tests import factories, wsclient
from tests.conftest import Live, World
from tests.helpers_api import SELF, actor, logged_in, login, other_workspace

PAGE = "/app/settings/roles"


async def count(rt: Runtime, model: Any) -> int:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(model)) or 0)


async def actions(rt: Runtime) -> list[str]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return list(await uow.session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


async def make_role(rt: Runtime, world: World, name: str = "Night shift", scope: str = "departments",
                    permissions: list[str] | None = None) -> str:
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        row = await roles.create_role(rt, uow, admin, RoleIn(name=name, scope=scope,  # type: ignore[arg-type]
                                                             permissions=permissions or ["chats.read"]))
        return row.id


async def test_the_page_lists_built_in_roles_and_creates_a_custom_one(app: Any, rt: Runtime, world: World) -> None:
    async with logged_in(app, world.admin_email) as admin:
        page = await admin.get(PAGE)
        assert page.status_code == 200
        for role in BUILT_IN_ROLES.values():
            assert f'data-role-key="{role.key}"' in page.text
        response = await admin.post(PAGE, data={"name": "  Night   shift ", "description": "Evenings",
                                                "scope": "departments",
                                                "permissions": ["chats.read", "chats.participate"]},
                                    headers=SELF)
        assert response.status_code == 303
        assert response.headers["location"].startswith(f"{PAGE}?saved=new#role-")
        listed = await admin.get(PAGE)
        assert "Night shift" in listed.text
        operators_page = await admin.get("/app/settings/operators")
        assert ">Night shift</option>" in operators_page.text  # the operator form offers it
    async with rt.db.unit_of_work(readonly=True) as uow:
        row = (await uow.session.scalars(select(Role))).one()
    assert (row.name, row.scope, row.permissions) == ("Night shift", "departments", ["chats.read", "chats.participate"])
    assert "role.create" in await actions(rt)


async def test_a_custom_role_is_what_its_holder_may_do(app: Any, rt: Runtime, world: World) -> None:
    role_id = await make_role(rt, world, permissions=["chats.read", "settings.read"], scope="workspace")
    async with logged_in(app, world.admin_email) as admin:
        response = await admin.patch(f"/api/v1/operators/{world.operator_id}", json={"role": role_id}, headers=SELF)
        assert response.status_code == 200, response.text
        assert response.json()["role"] == role_id
    mia = await actor(rt, world.operator_id)
    assert mia.permissions == frozenset({"chats.read", "settings.read"})
    assert mia.scope == "workspace"
    async with logged_in(app, world.operator_email) as http:
        assert (await http.get("/app/settings")).status_code == 200  # settings.read
        assert (await http.post("/api/v1/sites", json={"name": "X"}, headers=SELF)).status_code == 403
        assert (await http.get("/api/v1/offline-requests")).status_code == 403  # no offline.read


async def test_a_role_change_ends_the_holders_sessions_and_closes_their_socket(live: Live, rt: Runtime,
                                                                                world: World) -> None:
    ws, _, cookie = await wsclient.operator_connect(live=live, email=world.operator_email)
    role_id = await make_role(rt, world, permissions=["chats.read", "chats.participate"])
    admin_cookie = await wsclient.login(live=live, email=world.admin_email)
    response = await wsclient.console_request(live=live, cookie=admin_cookie, method="PATCH",
                                              path=f"/api/v1/operators/{world.operator_id}",
                                              json_body={"role": role_id})
    assert response.status_code == 200, response.text
    code, _ = await wsclient.expect_close(ws=ws)
    assert code == 4403
    me = await wsclient.console_request(live=live, cookie=cookie, method="GET", path="/api/v1/auth/me")
    assert me.status_code == 401
    # Changing what the role grants ends the sessions of everyone who holds it, again.
    ws2, _, cookie2 = await wsclient.operator_connect(live=live, email=world.operator_email)
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await roles.update_role(rt, uow, admin, role_id, RoleIn(name="Night shift", scope="own",
                                                                 permissions=["chats.read"]))
    code, _ = await wsclient.expect_close(ws=ws2)
    assert code == 4403
    me = await wsclient.console_request(live=live, cookie=cookie2, method="GET", path="/api/v1/auth/me")
    assert me.status_code == 401
    # The administrator's session was not touched.
    ok = await wsclient.console_request(live=live, cookie=admin_cookie, method="GET", path="/api/v1/auth/me")
    assert ok.status_code == 200
    assert [a for a in await actions(rt) if a.startswith("role.")] == ["role.create", "role.update"]
    await wsclient.close_all()


async def test_a_rename_alone_ends_no_session(rt: Runtime, world: World) -> None:
    role_id = await make_role(rt, world)
    async with rt.db.unit_of_work() as uow:
        op = await uow.session.get(Operator, world.operator_id)
        assert op is not None
        op.role = role_id
        await factories_session(rt, uow, world.operator_id)
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await roles.update_role(rt, uow, admin, role_id, RoleIn(name="Renamed", scope="departments",
                                                                 permissions=["chats.read"]))
    async with rt.db.unit_of_work(readonly=True) as uow:
        live_sessions = await uow.session.scalar(select(func.count()).select_from(OperatorSession).where(
            OperatorSession.operator_id == world.operator_id, OperatorSession.revoked_at.is_(None)))
    assert live_sessions == 1


async def factories_session(rt: Runtime, uow: Any, operator_id: str) -> None:
    from confide.users import sessions as user_sessions

    await user_sessions.open_session(rt, uow, operator_id, method="password")


async def test_delete_only_when_unused(app: Any, rt: Runtime, world: World) -> None:
    role_id = await make_role(rt, world)
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        op = await uow.session.get(Operator, world.operator_id)
        assert op is not None
        op.role = role_id
    async with logged_in(app, world.admin_email) as http:
        held = await http.post(f"{PAGE}/{role_id}/delete", headers=SELF)
        assert held.status_code == 409
        assert "give them another role first" in held.text
        assert await count(rt, Role) == 1
        async with rt.db.unit_of_work() as uow:
            op = await uow.session.get(Operator, world.operator_id)
            assert op is not None
            op.role = "operator"
        gone = await http.post(f"{PAGE}/{role_id}/delete", headers=SELF)
        assert gone.status_code == 303
        assert await count(rt, Role) == 0
        # Built-in roles are not rows: they cannot be edited or deleted.
        for key in BUILT_IN_ROLES:
            response = await http.post(f"{PAGE}/{key}/delete", headers=SELF)
            assert response.status_code == 404
    async with rt.db.unit_of_work() as uow:
        with pytest.raises(NotFound, match="role not found"):
            await roles.delete_role(rt, uow, admin, "administrator")
    assert (await actions(rt))[-1] == "role.delete"


@pytest.mark.parametrize(("form", "status", "message"), [
    ({"name": "", "scope": "own"}, 422, "Name"),
    ({"name": "X" * 81, "scope": "own"}, 422, "Name"),
    ({"name": "Ok", "scope": "galaxy"}, 422, "cope"),
    ({"name": "Ok", "scope": "own", "permissions": ["chats.read", "root.everything"]}, 422,
     "Unknown permission: root.everything"),
    ({"name": "Administrator", "scope": "own"}, 409, "A built-in role has this name"),
    ({"name": "<script>alert(1)</script>", "scope": "own", "permissions": ["x" * 5000]}, 422, "Unknown permission"),
])
async def test_hostile_forms_are_refused_with_a_message_and_nothing_stored(
        app: Any, rt: Runtime, world: World, form: dict[str, Any], status: int, message: str) -> None:
    async with logged_in(app, world.admin_email) as http:
        response = await http.post(PAGE, data=form, headers=SELF)
    assert response.status_code == status, response.text[:500]
    assert message in response.text
    assert "<script>alert(1)</script>" not in response.text
    assert await count(rt, Role) == 0
    assert "role.create" not in await actions(rt)


async def test_duplicate_names_and_foreign_roles(app: Any, rt: Runtime, world: World) -> None:
    role_id = await make_role(rt, world, name="Night shift")
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        with pytest.raises(Conflict):
            await roles.create_role(rt, uow, admin, RoleIn(name="night SHIFT"))
    other = await other_workspace(rt)
    theirs = await actor(rt, other.admin_id)
    async with rt.db.unit_of_work() as uow:
        with pytest.raises(NotFound, match="role not found"):
            await roles.update_role(rt, uow, theirs, role_id, RoleIn(name="Mine now"))
        with pytest.raises(NotFound, match="role not found"):
            await roles.delete_role(rt, uow, theirs, role_id)
    async with logged_in(app, other.admin_email) as http:  # nor can they hand it to their operators
        response = await http.patch(f"/api/v1/operators/{other.operator_id}", json={"role": role_id}, headers=SELF)
        assert response.status_code == 422
        assert response.json()["detail"] == "choose one of the workspace's roles"
        assert role_id not in (await http.get(PAGE)).text


async def test_nobody_grants_more_than_they_hold(app: Any, rt: Runtime, world: World) -> None:
    """A role manager without settings.manage cannot create, edit or hand out a role that has it,
    nor make anyone an administrator, nor change an administrator's account."""
    manager_role = await make_role(rt, world, name="People", scope="workspace",
                                   permissions=["roles.manage", "users.read", "users.manage", "settings.read"])
    async with rt.db.unit_of_work() as uow:
        await factories.operator(rt, uow, workspace_id=world.workspace_id, email="hr@shop.example", role=manager_role)
    reader_role = await make_role(rt, world, name="Readers", scope="own", permissions=["users.read"])
    viewer_role = await make_role(rt, world, name="Viewers", scope="own", permissions=["settings.read"])
    async with rt.db.unit_of_work() as uow:
        await factories.operator(rt, uow, workspace_id=world.workspace_id, email="reader@shop.example",
                                 role=reader_role)
    hr_id = await actor_by_email(rt, "hr@shop.example")
    reader_id = await actor_by_email(rt, "reader@shop.example")
    hr = await actor(rt, hr_id)
    async with rt.db.unit_of_work() as uow:
        with pytest.raises(Forbidden):
            await roles.create_role(rt, uow, hr, RoleIn(name="Sneaky", scope="own", permissions=["settings.manage"]))
        with pytest.raises(Forbidden):  # audit.read: not theirs
            await roles.create_role(rt, uow, hr, RoleIn(name="Wider", scope="workspace", permissions=["audit.read"]))
        with pytest.raises(Invalid):  # their own role keeps roles.manage
            await roles.update_role(rt, uow, hr, manager_role, RoleIn(name="People", scope="workspace",
                                                                       permissions=["users.read"]))
    async with logged_in(app, "hr@shop.example") as http:
        for body in ({"role": "administrator"}, {"role": "auditor"}):  # auditor has audit.read: not theirs
            response = await http.patch(f"/api/v1/operators/{world.operator_id}", json=body, headers=SELF)
            assert response.status_code == 403, response.text
        response = await http.patch(f"/api/v1/operators/{world.admin_id}", json={"max_chats": 1}, headers=SELF)
        assert response.status_code == 403  # the administrator's account grants more than theirs
        response = await http.patch(f"/api/v1/operators/{hr_id}", json={"role": "operator"}, headers=SELF)
        assert response.status_code == 422, response.text  # nobody changes their own role
        response = await http.patch(f"/api/v1/operators/{world.operator_id}", json={"max_chats": 3}, headers=SELF)
        assert response.status_code == 403  # an operator may chat; the manager may not: not theirs to change
        ok = await http.patch(f"/api/v1/operators/{reader_id}", json={"role": viewer_role, "max_chats": 3},
                              headers=SELF)
        assert ok.status_code == 200, ok.text
    async with rt.db.unit_of_work(readonly=True) as uow:
        admin_row = await uow.session.get(Operator, world.admin_id)
        assert admin_row is not None
        assert (admin_row.role, admin_row.max_chats) == ("administrator", 5)


async def actor_by_email(rt: Runtime, email: str) -> str:
    async with rt.db.unit_of_work(readonly=True) as uow:
        found = await uow.session.scalar(select(Operator.id).where(Operator.email == email))
        assert found is not None
        return str(found)


async def test_a_role_that_is_gone_grants_nothing(rt: Runtime, world: World) -> None:
    async with rt.db.unit_of_work() as uow:
        op = await uow.session.get(Operator, world.operator_id)
        assert op is not None
        op.role = "no-such-role"
    mia = await actor(rt, world.operator_id)
    assert (mia.permissions, mia.scope) == (frozenset(), "own")


async def test_legacy_admin_key_is_read_as_administrator(client: httpx.AsyncClient, rt: Runtime,
                                                         world: World) -> None:
    async with rt.db.unit_of_work(readonly=True) as uow:
        admin_row = await uow.session.get(Operator, world.admin_id)
        assert admin_row is not None
        assert admin_row.role == "administrator"  # factories still say "admin": stored as the new key
    async with rt.db.unit_of_work() as uow:
        op = await uow.session.get(Operator, world.operator_id)
        assert op is not None
        op.role = "admin"  # a row written before the migration
    mia = await actor(rt, world.operator_id)
    assert mia.role == "administrator"
    assert "roles.manage" in mia.permissions
    assert (await login(client, world.operator_email)).status_code == 200


async def test_reading_offline_requests_is_not_handling_them(app: Any, client: httpx.AsyncClient, rt: Runtime,
                                                            world: World) -> None:
    """offline.read without offline.manage: the list, but neither the route nor the service marks one."""
    from confide.offline import service as offline
    from tests.helpers_api import leave_message

    request_id = (await leave_message(client, world, department_id=world.department_id))["id"]
    role_id = await make_role(rt, world, name="Readers", scope="departments", permissions=["offline.read"])
    async with rt.db.unit_of_work() as uow:
        op = await uow.session.get(Operator, world.operator_id)
        assert op is not None
        op.role = role_id
    async with logged_in(app, world.operator_email) as http:
        listed = (await http.get("/api/v1/offline-requests", params={"state": "all"})).json()
        assert [r["id"] for r in listed["items"]] == [request_id]
        response = await http.post(f"/api/v1/offline-requests/{request_id}/handled", json={"handled": True},
                                   headers=SELF)
        assert response.status_code == 403
    reader = await actor(rt, world.operator_id)
    async with rt.db.unit_of_work() as uow:
        with pytest.raises(NotFound, match="offline request not found"):
            await offline.set_handled(rt, uow, reader, request_id, True)
