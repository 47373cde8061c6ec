"""Configuration: sites, departments, operators, canned replies (administrators change; all read)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from confide.permissions.policy import Permission as P
from confide.users import accounts as user_accounts
from confide.users import operators as user_operators
from confide.users.schemas import OperatorIn, OperatorPatch
from confide.web.api.deps import OperatorDep, ReadUnit, StateDep, WriteUnit, operator_unit
from confide.web.api.docs import errors
from confide.web.permits import authenticated, needs
from confide.workspaces import service as workspaces
from confide.workspaces.schemas import CannedReplyIn, DepartmentIn, DepartmentPatch, SiteIn, SitePatch

router = APIRouter(prefix="/api/v1", tags=["configuration"], responses=errors(401))


@router.get("/sites", dependencies=[authenticated()])
async def list_sites(unit: ReadUnit) -> list[dict[str, Any]]:
    return [workspaces.site_view(s) for s in await workspaces.list_sites(unit.uow, unit.actor)]


@router.post("/sites", status_code=201, responses=errors(400, 403, 422), dependencies=[needs(P.SETTINGS_MANAGE)])
async def create_site(body: SiteIn, unit: WriteUnit) -> dict[str, Any]:
    return workspaces.site_view(await workspaces.admin_create_site(unit.uow, unit.actor, body))


@router.patch("/sites/{site_id}", responses=errors(400, 403, 404, 422), dependencies=[needs(P.SETTINGS_MANAGE)])
async def update_site(site_id: str, body: SitePatch, unit: WriteUnit) -> dict[str, Any]:
    return workspaces.site_view(await workspaces.update_site(unit.uow, unit.actor, site_id, body))


@router.get("/departments", dependencies=[authenticated()])
async def list_departments(unit: ReadUnit) -> list[dict[str, Any]]:
    return [workspaces.department_view(d) for d in await workspaces.list_departments(unit.uow, unit.actor)]


@router.post(
    "/departments", status_code=201, responses=errors(400, 403, 404, 422), dependencies=[needs(P.SETTINGS_MANAGE)]
)
async def create_department(body: DepartmentIn, unit: WriteUnit) -> dict[str, Any]:
    return workspaces.department_view(await workspaces.admin_create_department(unit.uow, unit.actor, body))


@router.patch(
    "/departments/{department_id}", responses=errors(400, 403, 404, 422), dependencies=[needs(P.SETTINGS_MANAGE)]
)
async def update_department(department_id: str, body: DepartmentPatch, unit: WriteUnit) -> dict[str, Any]:
    return workspaces.department_view(await workspaces.update_department(unit.uow, unit.actor, department_id, body))


@router.get("/operators", dependencies=[authenticated()])
async def list_operators(unit: ReadUnit) -> list[dict[str, Any]]:
    return await user_accounts.list_operator_views(unit.uow, unit.actor)


@router.post(
    "/operators", status_code=201, responses=errors(400, 403, 404, 409, 422, 429), dependencies=[needs(P.USERS_MANAGE)]
)
async def create_operator(body: OperatorIn, request: Request, state: StateDep, _: OperatorDep) -> dict[str, Any]:
    # The password is hashed off the loop *before* the write unit opens (no lock held meanwhile),
    # so this handler opens its unit itself, after the hash.
    hashed = await state.rt.passwords.hash_async(body.password)
    async with operator_unit(request, write=True) as unit:
        op = await user_accounts.admin_create_operator(state.rt, unit.uow, unit.actor, body, password_hash=hashed)
        return await user_operators.operator_view(unit.uow, op)


@router.patch(
    "/operators/{operator_id}", responses=errors(400, 403, 404, 422, 429), dependencies=[needs(P.USERS_MANAGE)]
)
async def update_operator(
    operator_id: str, body: OperatorPatch, request: Request, state: StateDep, _: OperatorDep
) -> dict[str, Any]:
    hashed = await state.rt.passwords.hash_async(body.password) if body.password else None  # before the unit
    async with operator_unit(request, write=True) as unit:
        op = await user_accounts.update_operator(
            state.rt, unit.uow, unit.actor, operator_id, body, password_hash=hashed
        )
        return await user_operators.operator_view(unit.uow, op)


@router.get("/canned-replies", dependencies=[authenticated()])
async def list_canned(unit: ReadUnit) -> list[dict[str, Any]]:
    return [workspaces.canned_reply_view(r) for r in await workspaces.list_canned_replies(unit.uow, unit.actor)]


@router.post(
    "/canned-replies", status_code=201, responses=errors(400, 403, 404, 422), dependencies=[needs(P.SETTINGS_MANAGE)]
)
async def create_canned(body: CannedReplyIn, unit: WriteUnit) -> dict[str, Any]:
    return workspaces.canned_reply_view(await workspaces.create_canned_reply(unit.uow, unit.actor, body))


@router.delete(
    "/canned-replies/{reply_id}", status_code=204, responses=errors(403, 404), dependencies=[needs(P.SETTINGS_MANAGE)]
)
async def delete_canned(reply_id: str, unit: WriteUnit) -> None:
    await workspaces.delete_canned_reply(unit.uow, unit.actor, reply_id)
