"""Read models that span configuration domains, for the dashboard's pages and filters."""

from __future__ import annotations

from typing import Any

from confide.auth.actors import OperatorActor
from confide.core.db import UnitOfWork
from confide.permissions.policy import Permission, require
from confide.users import accounts as user_accounts
from confide.users import operators as user_operators
from confide.users import roles as user_roles
from confide.workspaces import service as workspaces


async def filter_choices(uow: UnitOfWork, actor: OperatorActor) -> dict[str, list[dict[str, Any]]]:
    """The sites, departments and operators an operator may filter Stored Chats and Offline Requests by."""
    return {
        "sites": [workspaces.site_view(s) for s in await workspaces.list_sites(uow, actor)],
        "departments": [workspaces.department_view(d) for d in await workspaces.list_departments(uow, actor)],
        "operators": [{"id": op.id, "name": op.name} for op in await user_operators.list_operators(uow, actor)],
    }


async def settings_overview(
    uow: UnitOfWork, actor: OperatorActor, *, operators: bool, canned: bool
) -> dict[str, list[dict[str, Any]]]:
    """Everything the settings pages show (for those who may read the settings)."""
    require(actor, Permission.SETTINGS_READ)
    return {
        "sites": [workspaces.site_view(s) for s in await workspaces.list_sites(uow, actor)],
        "departments": [workspaces.department_view(d) for d in await workspaces.list_departments(uow, actor)],
        "operators": await user_accounts.list_operator_views(uow, actor) if operators else [],
        "canned": [workspaces.canned_reply_view(r) for r in await workspaces.list_canned_replies(uow, actor)]
        if canned
        else [],
        "roles": [r.as_dict() for r in await user_roles.list_roles(uow, actor)] if operators else [],
    }
