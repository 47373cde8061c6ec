"""Small keyword-only factories that build data through the services (never raw SQL)."""

from __future__ import annotations

from typing import Any

from confide.core.db import UnitOfWork
from confide.core.runtime import Runtime
from confide.users import accounts as user_accounts
from confide.users import presence as user_presence
from confide.users.models import Operator
from confide.users.schemas import OperatorIn
from confide.workspaces import service as workspaces
from confide.workspaces.models import Department, Site, Workspace
from confide.workspaces.schemas import SiteIn

PASSWORD = "correct horse battery staple"


async def workspace(uow: UnitOfWork, *, name: str = "Shop Ltd") -> Workspace:
    return await workspaces.create_workspace(uow, name=name)


async def site(uow: UnitOfWork, *, workspace_id: str, name: str = "Shop", allowed_origins: list[str] | None = None,
               **extra: Any) -> Site:
    data = SiteIn(name=name, allowed_origins=allowed_origins or ["https://shop.example"],
                  privacy_policy_url="https://shop.example/privacy",
                  purposes=extra.pop("purposes", [{"key": "marketing", "label": "News by e-mail", "version": "v1"}]),
                  prechat_fields=extra.pop("prechat_fields", [
                      {"key": "name", "label": "Name", "type": "text", "required": True},
                      {"key": "email", "label": "E-mail", "type": "email", "required": True},
                      {"key": "phone", "label": "Phone", "type": "tel", "required": False},
                      {"key": "order", "label": "Order", "type": "text", "required": False},
                      {"key": "topic", "label": "Topic", "type": "select", "options": ["Sales", "Support"]},
                  ]), **extra)
    return await workspaces.create_site(uow, workspace_id=workspace_id, data=data)


async def department(uow: UnitOfWork, *, workspace_id: str, site_id: str, name: str = "Support",
                     strategy: str = "round_robin", offer_timeout_s: int = 30) -> Department:
    return await workspaces.create_department(uow, workspace_id=workspace_id, site_id=site_id, name=name,
                                              strategy=strategy, offer_timeout_s=offer_timeout_s)


async def operator(rt: Runtime, uow: UnitOfWork, *, workspace_id: str, email: str, name: str = "Operator",
                   role: str = "operator", department_ids: list[str] | None = None, max_chats: int = 5,
                   status: str = "offline") -> Operator:
    op = await user_accounts.create_operator(rt, uow, workspace_id=workspace_id, data=OperatorIn(
        email=email, name=name, password=PASSWORD, role=role, max_chats=max_chats,  # type: ignore[arg-type]
        department_ids=department_ids or []))
    op.status = status
    if status == "online":
        await present(uow, op.id)
    return op


# A console that stays open for the whole test (a node of the test's own that never stops beating);
# tests of presence itself use real heartbeats with the configured TTL.
TEST_NODE = "test-node"


async def present(uow: UnitOfWork, operator_id: str) -> None:
    """The operator has a live console (a heartbeat that outlives the test's clock moves)."""
    await user_presence.beat(uow, TEST_NODE, operators=[operator_id], ttl_s=10 * 365 * 24 * 3600)
