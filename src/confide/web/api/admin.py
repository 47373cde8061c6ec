"""Configuration: sites, departments, operators, canned replies (administrators change; all read)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from confide.users import service as users
from confide.users.schemas import OperatorIn, OperatorPatch
from confide.web.api.deps import OperatorDep, StateDep
from confide.workspaces import service as workspaces
from confide.workspaces.schemas import CannedReplyIn, DepartmentIn, DepartmentPatch, SiteIn, SitePatch

router = APIRouter(prefix="/api/v1", tags=["configuration"])


@router.get("/sites")
async def list_sites(actor: OperatorDep, state: StateDep) -> list[dict[str, Any]]:
    async with state.rt.db.unit_of_work(readonly=True) as uow:
        return [workspaces.site_view(s) for s in await workspaces.list_sites(uow, actor)]


@router.post("/sites", status_code=201)
async def create_site(body: SiteIn, actor: OperatorDep, state: StateDep) -> dict[str, Any]:
    async with state.rt.db.unit_of_work() as uow:
        return workspaces.site_view(await workspaces.admin_create_site(uow, actor, body))


@router.patch("/sites/{site_id}")
async def update_site(site_id: str, body: SitePatch, actor: OperatorDep, state: StateDep) -> dict[str, Any]:
    async with state.rt.db.unit_of_work() as uow:
        return workspaces.site_view(await workspaces.update_site(uow, actor, site_id, body))


@router.get("/departments")
async def list_departments(actor: OperatorDep, state: StateDep) -> list[dict[str, Any]]:
    async with state.rt.db.unit_of_work(readonly=True) as uow:
        return [workspaces.department_view(d) for d in await workspaces.list_departments(uow, actor)]


@router.post("/departments", status_code=201)
async def create_department(body: DepartmentIn, actor: OperatorDep, state: StateDep) -> dict[str, Any]:
    async with state.rt.db.unit_of_work() as uow:
        return workspaces.department_view(await workspaces.admin_create_department(uow, actor, body))


@router.patch("/departments/{department_id}")
async def update_department(
    department_id: str, body: DepartmentPatch, actor: OperatorDep, state: StateDep
) -> dict[str, Any]:
    async with state.rt.db.unit_of_work() as uow:
        return workspaces.department_view(await workspaces.update_department(uow, actor, department_id, body))


@router.get("/operators")
async def list_operators(actor: OperatorDep, state: StateDep) -> list[dict[str, Any]]:
    async with state.rt.db.unit_of_work(readonly=True) as uow:
        return await users.list_operator_views(uow, actor)


@router.post("/operators", status_code=201)
async def create_operator(body: OperatorIn, actor: OperatorDep, state: StateDep) -> dict[str, Any]:
    hashed = await state.rt.passwords.hash_async(body.password)  # off the loop, before the unit
    async with state.rt.db.unit_of_work() as uow:
        op = await users.admin_create_operator(state.rt, uow, actor, body, password_hash=hashed)
        return await users.operator_view(uow, op)


@router.patch("/operators/{operator_id}")
async def update_operator(operator_id: str, body: OperatorPatch, actor: OperatorDep, state: StateDep) -> dict[str, Any]:
    hashed = await state.rt.passwords.hash_async(body.password) if body.password else None
    async with state.rt.db.unit_of_work() as uow:
        op = await users.update_operator(state.rt, uow, actor, operator_id, body, password_hash=hashed)
        return await users.operator_view(uow, op)


@router.get("/canned-replies")
async def list_canned(actor: OperatorDep, state: StateDep) -> list[dict[str, Any]]:
    async with state.rt.db.unit_of_work(readonly=True) as uow:
        return [workspaces.canned_reply_view(r) for r in await workspaces.list_canned_replies(uow, actor)]


@router.post("/canned-replies", status_code=201)
async def create_canned(body: CannedReplyIn, actor: OperatorDep, state: StateDep) -> dict[str, Any]:
    async with state.rt.db.unit_of_work() as uow:
        return workspaces.canned_reply_view(await workspaces.create_canned_reply(uow, actor, body))


@router.delete("/canned-replies/{reply_id}", status_code=204)
async def delete_canned(reply_id: str, actor: OperatorDep, state: StateDep) -> None:
    async with state.rt.db.unit_of_work() as uow:
        await workspaces.delete_canned_reply(uow, actor, reply_id)
