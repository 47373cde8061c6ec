"""Loaders that scope every tenant object by workspace, site and department.

Each ``access_*_by_id`` returns the object only if the actor may see it and raises ``NotFound``
otherwise, so a foreign id and a missing id are indistinguishable. List queries use the
``*_scope`` helpers so that listing and loading follow the same rule.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from confide.auth.actors import Actor, OperatorActor, VisitorActor
from confide.chats.models import Conversation
from confide.core.errors import Forbidden, NotFound
from confide.offline.models import OfflineRequest
from confide.users.models import Operator
from confide.workspaces.models import CannedReply, Department, Site


def require_admin(actor: OperatorActor) -> None:
    if not actor.is_admin:
        raise Forbidden("administrators only")


def conversation_scope(actor: OperatorActor, stmt: Select[Any]) -> Select[Any]:
    stmt = stmt.where(Conversation.workspace_id == actor.workspace_id)
    if not actor.is_admin:
        stmt = stmt.where(Conversation.department_id.in_(actor.department_ids))
    return stmt


def offline_scope(actor: OperatorActor, stmt: Select[Any]) -> Select[Any]:
    stmt = stmt.where(OfflineRequest.workspace_id == actor.workspace_id)
    if not actor.is_admin:
        # Requests left without a department are visible to every operator of a department of that site.
        stmt = stmt.where(
            OfflineRequest.department_id.in_(actor.department_ids)
            | (
                OfflineRequest.department_id.is_(None)
                & OfflineRequest.site_id.in_(select(Department.site_id).where(Department.id.in_(actor.department_ids)))
            )
        )
    return stmt


def department_scope(actor: OperatorActor, stmt: Select[Any]) -> Select[Any]:
    stmt = stmt.where(Department.workspace_id == actor.workspace_id)
    if not actor.is_admin:
        stmt = stmt.where(Department.id.in_(actor.department_ids))
    return stmt


async def access_conversation_by_id(
    session: AsyncSession, actor: Actor, conversation_id: object, *, assigned: bool = False, for_update: bool = False
) -> Conversation:
    """A conversation the actor may see. ``assigned=True``: operators must be its current operator.

    ``for_update=True``: the row is locked until the unit of work ends (``SELECT ... FOR UPDATE`` on
    PostgreSQL; SQLite serialises writers already) and read fresh, so a read-then-write of its state
    is safe against another node doing the same at once. The access check runs on the fresh row.
    """
    if not isinstance(conversation_id, str) or len(conversation_id) > 64:
        raise NotFound("conversation not found")
    if for_update:
        conv = await session.scalar(
            select(Conversation)
            .where(Conversation.id == conversation_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    else:
        conv = await session.get(Conversation, conversation_id)
    if conv is None:
        raise NotFound("conversation not found")
    if isinstance(actor, VisitorActor):
        if conv.visitor_id != actor.visitor_id or conv.site_id != actor.site_id:
            raise NotFound("conversation not found")
        return conv
    if conv.workspace_id != actor.workspace_id:
        raise NotFound("conversation not found")
    if assigned:
        if conv.operator_id != actor.operator_id:
            raise NotFound("conversation not found")
        return conv
    if not actor.is_admin and conv.department_id not in actor.department_ids and conv.operator_id != actor.operator_id:
        raise NotFound("conversation not found")
    return conv


async def access_site_by_id(session: AsyncSession, actor: OperatorActor, site_id: object) -> Site:
    site = await session.get(Site, site_id) if isinstance(site_id, str) else None
    if site is None or site.workspace_id != actor.workspace_id:
        raise NotFound("site not found")
    return site


async def access_department_by_id(session: AsyncSession, actor: OperatorActor, department_id: object) -> Department:
    dept = await session.get(Department, department_id) if isinstance(department_id, str) else None
    if dept is None or dept.workspace_id != actor.workspace_id:
        raise NotFound("department not found")
    return dept


async def access_operator_by_id(session: AsyncSession, actor: OperatorActor, operator_id: object) -> Operator:
    op = await session.get(Operator, operator_id) if isinstance(operator_id, str) else None
    if op is None or op.workspace_id != actor.workspace_id:
        raise NotFound("operator not found")
    return op


async def access_offline_request_by_id(
    session: AsyncSession, actor: OperatorActor, request_id: object
) -> OfflineRequest:
    if not isinstance(request_id, str):
        raise NotFound("offline request not found")
    row: OfflineRequest | None = await session.scalar(
        offline_scope(actor, select(OfflineRequest)).where(OfflineRequest.id == request_id)
    )
    if row is None:
        raise NotFound("offline request not found")
    return row


async def access_canned_reply_by_id(session: AsyncSession, actor: OperatorActor, reply_id: object) -> CannedReply:
    reply = await session.get(CannedReply, reply_id) if isinstance(reply_id, str) else None
    if reply is None or reply.workspace_id != actor.workspace_id:
        raise NotFound("canned reply not found")
    return reply


async def site_by_key(session: AsyncSession, site_key: object) -> Site:
    """Public lookup for the widget: the site key is not a secret, the Origin check follows."""
    if not isinstance(site_key, str) or len(site_key) > 64:
        raise NotFound("site not found")
    site = await session.scalar(select(Site).where(Site.site_key == site_key))
    if site is None:
        raise NotFound("site not found")
    return site
