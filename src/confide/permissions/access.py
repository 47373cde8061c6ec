"""Loaders that scope every tenant object by workspace, site and department.

Each ``access_*_by_id`` returns the object only if the actor may see it and raises ``NotFound``
otherwise, so a foreign id and a missing id are indistinguishable. They are thin wrappers of the
one generic loader, ``scope.load``; list queries use the ``*_scope`` helpers so that listing and
loading follow the same rule (``scope`` explains it).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from confide.auth.actors import Actor, OperatorActor, VisitorActor
from confide.chats.models import Conversation
from confide.core.errors import NotFound
from confide.offline.models import OfflineRequest
from confide.permissions.policy import Permission, Scope, allows, scope_of
from confide.permissions.scope import (
    activity_clause,
    activity_visitor_clause,
    conversation_clause,
    load,
    scoped,
)
from confide.privacy_requests.models import PrivacyRequest
from confide.prospects.models import Prospect
from confide.restriction.models import Restriction
from confide.users.models import Operator, Role
from confide.visitors.models import Visitor
from confide.workspaces.models import CannedReply, Department, Site


def conversation_scope(
    actor: OperatorActor, stmt: Select[Any], permission: Permission = Permission.CHATS_READ
) -> Select[Any]:
    return scoped(actor, Conversation, stmt, permission)


def visitor_conversation_scope(actor: VisitorActor, stmt: Select[Any]) -> Select[Any]:
    """A visitor's own conversations on their site: every visit of one verified person (ADR 0022),
    one conversation for an anonymous visitor. Never anyone else's."""
    return stmt.where(Conversation.visitor_id == actor.visitor_id, Conversation.site_id == actor.site_id)


def offline_scope(
    actor: OperatorActor, stmt: Select[Any], permission: Permission = Permission.OFFLINE_READ
) -> Select[Any]:
    return scoped(actor, OfflineRequest, stmt, permission)


def prospect_scope(
    actor: OperatorActor, stmt: Select[Any], permission: Permission = Permission.PROSPECTS_READ
) -> Select[Any]:
    return scoped(actor, Prospect, stmt, permission)


def department_scope(actor: OperatorActor, stmt: Select[Any]) -> Select[Any]:
    return scoped(actor, Department, stmt)


def site_scope(actor: OperatorActor, stmt: Select[Any]) -> Select[Any]:
    return scoped(actor, Site, stmt)


def canned_reply_scope(actor: OperatorActor, stmt: Select[Any]) -> Select[Any]:
    return scoped(actor, CannedReply, stmt)


async def access_conversation_by_id(
    session: AsyncSession,
    actor: Actor,
    conversation_id: object,
    *,
    assigned: bool = False,
    for_update: bool = False,
    permission: Permission = Permission.CHATS_READ,
) -> Conversation:
    """A conversation the actor may see. ``assigned=True``: operators must be its current operator
    (and may take part in chats). ``permission``: what the operator means to do with it (reading
    by default; ``CHATS_PARTICIPATE`` to accept it).

    ``for_update=True``: the row is locked until the unit of work ends (``SELECT ... FOR UPDATE`` on
    PostgreSQL; SQLite serialises writers already) and read fresh, so a read-then-write of its state
    is safe against another node doing the same at once. The access check runs on the fresh row.
    """
    if isinstance(actor, VisitorActor):
        if not isinstance(conversation_id, str) or len(conversation_id) > 64:
            raise NotFound("conversation not found")
        stmt = select(Conversation).where(
            Conversation.id == conversation_id,
            Conversation.visitor_id == actor.visitor_id,
            Conversation.site_id == actor.site_id,
        )
        if for_update:
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
        conv = await session.scalar(stmt)
        if conv is None:
            raise NotFound("conversation not found")
        return conv
    if assigned:
        return await load(
            session,
            actor,
            Conversation,
            conversation_id,
            Permission.CHATS_PARTICIPATE,
            for_update=for_update,
            where=Conversation.operator_id == actor.operator_id,
        )
    return await load(session, actor, Conversation, conversation_id, permission, for_update=for_update)


async def access_transcript_by_id(session: AsyncSession, actor: OperatorActor, conversation_id: object) -> Conversation:
    """A stored chat opened by id (the transcript): as ``access_conversation_by_id``, and a
    restricted person's chat (Art. 18) looks missing to a role without a privacy permission."""
    return await load(session, actor, Conversation, conversation_id, Permission.CHATS_READ,
                      where=unrestricted_clause(actor, Conversation.visitor_id))


async def access_conversation_to_accept(
    session: AsyncSession, actor: OperatorActor, conversation_id: object, *, for_update: bool = True
) -> Conversation:
    """A conversation of the operator's departments they may take part in (accepting it: the
    caller then refuses anything but a queued chat, as a conflict)."""
    return await load(
        session,
        actor,
        Conversation,
        conversation_id,
        Permission.CHATS_PARTICIPATE,
        for_update=for_update,
        reach=conversation_clause(actor, Permission.CHATS_PARTICIPATE, departments=True),
    )


async def access_conversation_to_act(
    session: AsyncSession, actor: OperatorActor, conversation_id: object, *, for_update: bool = True
) -> Conversation:
    """A conversation the operator may act on (transfer, close): with the ``OWN`` scope only one
    they hold; with a wider scope any chat of it."""
    return await load(
        session,
        actor,
        Conversation,
        conversation_id,
        Permission.CHATS_PARTICIPATE,
        for_update=for_update,
        where=conversation_clause(actor, Permission.CHATS_PARTICIPATE, own_only=True),
    )


async def access_site_by_id(session: AsyncSession, actor: OperatorActor, site_id: object) -> Site:
    return await load(session, actor, Site, site_id, None)


async def access_department_by_id(session: AsyncSession, actor: OperatorActor, department_id: object) -> Department:
    return await load(session, actor, Department, department_id, None)


async def access_operator_by_id(
    session: AsyncSession, actor: OperatorActor, operator_id: object, *, for_update: bool = False
) -> Operator:
    return await load(session, actor, Operator, operator_id, None, for_update=for_update)


async def access_role_by_id(
    session: AsyncSession, actor: OperatorActor, role_id: object, *, for_update: bool = False
) -> Role:
    return await load(session, actor, Role, role_id, Permission.ROLES_MANAGE, for_update=for_update)


async def access_offline_request_by_id(
    session: AsyncSession,
    actor: OperatorActor,
    request_id: object,
    *,
    permission: Permission = Permission.OFFLINE_READ,
    for_update: bool = False,
) -> OfflineRequest:
    return await load(session, actor, OfflineRequest, request_id, permission, for_update=for_update,
                      where=unrestricted_clause(actor, OfflineRequest.visitor_id))  # Art. 18 (ADR 0031)


async def access_prospect_by_id(
    session: AsyncSession,
    actor: OperatorActor,
    prospect_id: object,
    *,
    permission: Permission = Permission.PROSPECTS_READ,
    for_update: bool = False,
) -> Prospect:
    return await load(session, actor, Prospect, prospect_id, permission, for_update=for_update,
                      where=unrestricted_clause(actor, Prospect.visitor_id))  # Art. 18 (ADR 0031)


async def prospect_placement_allowed(
    session: AsyncSession, actor: OperatorActor, site_id: str, department_id: str | None
) -> bool:
    """Would a prospect of this site and department be in the actor's reach (creating or moving
    one: nobody files a prospect where they could not see it)?"""
    if scope_of(actor) is Scope.WORKSPACE:
        return True
    if department_id is not None:
        return department_id in actor.department_ids
    found = await session.scalar(
        select(Department.id).where(Department.site_id == site_id, Department.id.in_(actor.department_ids)).limit(1)
    )
    return found is not None


async def access_canned_reply_by_id(session: AsyncSession, actor: OperatorActor, reply_id: object) -> CannedReply:
    return await load(session, actor, CannedReply, reply_id, None)


async def site_by_key(session: AsyncSession, site_key: object) -> Site:
    """Public lookup for the widget: the site key is not a secret, the Origin check follows."""
    if not isinstance(site_key, str) or len(site_key) > 64:
        raise NotFound("site not found")
    site = await session.scalar(select(Site).where(Site.site_key == site_key))
    if site is None:
        raise NotFound("site not found")
    return site


def colleagues_emails_visible(actor: OperatorActor) -> bool:
    """Colleagues' e-mail addresses: for those who may read the staff accounts."""
    return allows(actor, Permission.USERS_READ)


# ---- activity (Visitor Activity, issue 7 point 5)
def activity_scope(actor: OperatorActor, stmt: Select[Any]) -> Select[Any]:
    """Page views (``visitor_activity.models.PageView``) the actor may read."""
    return stmt.where(activity_clause(actor))


async def access_visitor_trail_by_id(session: AsyncSession, actor: OperatorActor, visitor_id: object) -> Visitor:
    """A visitor whose page trail the actor may open (``VISITORS_READ``, their site in reach)."""
    if not isinstance(visitor_id, str) or not visitor_id or len(visitor_id) > 64:
        raise NotFound("visitor not found")
    found = await session.scalar(
        select(Visitor).where(Visitor.id == visitor_id, activity_visitor_clause(actor),
                              unrestricted_clause(actor, Visitor.id))  # Art. 18: looks missing (ADR 0031)
    )
    if found is None:
        raise NotFound("visitor not found")
    return found


# ---- end activity


# ---- retention (ADR 0030): a legal hold names a person by visitor id
async def access_visitor_by_id(
    session: AsyncSession, actor: OperatorActor, visitor_id: object, permission: Permission
) -> Visitor:
    """A visitor of the actor's workspace (their site in reach for a narrower scope), for an action
    that needs ``permission`` (placing a legal hold: ``RETENTION_MANAGE``)."""
    if not allows(actor, permission) or not isinstance(visitor_id, str) or not visitor_id or len(visitor_id) > 64:
        raise NotFound("visitor not found")
    stmt = select(Visitor).where(Visitor.id == visitor_id, Visitor.workspace_id == actor.workspace_id)
    if scope_of(actor) is not Scope.WORKSPACE:
        sites = select(Department.site_id).where(Department.id.in_(actor.department_ids))
        stmt = stmt.where(Visitor.site_id.in_(sites))
    found = await session.scalar(stmt)
    if found is None:
        raise NotFound("visitor not found")
    return found
# ---- erasure (ADR 0028)
async def access_visitors_to_erase(
    session: AsyncSession,
    actor: OperatorActor | None,
    workspace_id: str,
    visitor_ids: list[str],
    *,
    for_update: bool = False,
) -> list[str]:
    """Which of ``visitor_ids`` (in ``workspace_id``) the actor may erase: ``SUBJECTS_ERASE`` in a
    role of workspace scope (a person's data is not split by department: whoever erases it must
    reach all of it), locked in id order when ``for_update``. The others are simply absent: another
    workspace's id, an id without the permission and a missing id look alike. ``actor=None``: the
    CLI (the installation's shell)."""
    return await _whole_person(session, actor, workspace_id, visitor_ids, Permission.SUBJECTS_ERASE,
                               for_update=for_update)


async def _whole_person(
    session: AsyncSession,
    actor: OperatorActor | None,
    workspace_id: str,
    visitor_ids: list[str],
    permission: Permission,
    *,
    for_update: bool,
) -> list[str]:
    """The visitors of ``workspace_id`` among ``visitor_ids`` for an action on a whole person
    (erase, rectify, restrict): ``permission`` in a role of workspace scope, or ``actor=None``
    (the CLI); locked in id order when ``for_update``; the others simply absent."""
    if actor is not None and not (
        actor.workspace_id == workspace_id and allows(actor, permission) and scope_of(actor) is Scope.WORKSPACE
    ):
        return []
    ids = sorted({v for v in visitor_ids if isinstance(v, str) and 0 < len(v) <= 64})
    if not ids:
        return []
    stmt = select(Visitor.id).where(Visitor.id.in_(ids), Visitor.workspace_id == workspace_id).order_by(Visitor.id)
    if for_update:
        stmt = stmt.with_for_update()
    return list((await session.scalars(stmt)).all())


async def access_visitors_to_rectify(
    session: AsyncSession,
    actor: OperatorActor | None,
    workspace_id: str,
    visitor_ids: list[str],
    *,
    for_update: bool = False,
) -> list[str]:
    """Which of ``visitor_ids`` the actor may rectify (Art. 16, ADR 0032): ``SUBJECTS_RECTIFY`` in a
    role of workspace scope (a correction reaches every store of the person), locked in id order
    when ``for_update``; the others are absent, as for erasure. ``actor=None``: the CLI."""
    return await _whole_person(session, actor, workspace_id, visitor_ids, Permission.SUBJECTS_RECTIFY,
                               for_update=for_update)


async def access_site_to_erase(session: AsyncSession, actor: OperatorActor | None, site_id: object) -> Site:
    """A site whose visitors the actor may erase in bulk (``SUBJECTS_ERASE``); else ``NotFound``."""
    if actor is None:
        if not isinstance(site_id, str) or not site_id or len(site_id) > 64:
            raise NotFound("site not found")
        found = await session.get(Site, site_id)
        if found is None:
            raise NotFound("site not found")
        return found
    if scope_of(actor) is not Scope.WORKSPACE:
        raise NotFound("site not found")
    return await load(session, actor, Site, site_id, Permission.SUBJECTS_ERASE)


# ---- end erasure
# ---- restriction of processing (ADR 0031)
def restricted_ids_select(workspace_id: str) -> Select[Any]:
    """The visitor ids of ``workspace_id`` whose processing is restricted now (Art. 18)."""
    return select(Restriction.visitor_id).where(
        Restriction.workspace_id == workspace_id, Restriction.lifted_at.is_(None)
    )


def unrestricted_clause(actor: OperatorActor, visitor_column: Any) -> ColumnElement[bool]:
    """The one search exclusion of Art. 18: rows whose ``visitor_column`` names a restricted
    person are left out for a role without a privacy permission (``subjects.view``); a privacy
    role sees them (it must, to handle the person's requests). A NULL visitor (a prospect entered
    by hand) is nobody's restriction and stays."""
    if allows(actor, Permission.SUBJECTS_VIEW):
        return true()
    return or_(visitor_column.is_(None), visitor_column.not_in(restricted_ids_select(actor.workspace_id)))


def without_restricted(actor: OperatorActor, stmt: Select[Any], visitor_column: Any) -> Select[Any]:
    return stmt.where(unrestricted_clause(actor, visitor_column))


async def access_visitors_to_restrict(
    session: AsyncSession,
    actor: OperatorActor | None,
    workspace_id: str,
    visitor_ids: list[str],
    *,
    for_update: bool = False,
) -> list[str]:
    """As ``access_visitors_to_erase``, for ``SUBJECTS_RESTRICT``: workspace scope (a restriction
    covers the whole person), locked in id order when ``for_update``; the others look missing."""
    return await _whole_person(session, actor, workspace_id, visitor_ids, Permission.SUBJECTS_RESTRICT,
                               for_update=for_update)


# ---- end restriction
# ---- data-subject requests (ADR 0029): workspace-wide, like the subjects.* permissions that reach them
def privacy_request_scope(
    actor: OperatorActor, stmt: Select[Any], permission: Permission = Permission.SUBJECTS_VIEW
) -> Select[Any]:
    return scoped(actor, PrivacyRequest, stmt, permission)


async def access_privacy_request_by_id(
    session: AsyncSession,
    actor: OperatorActor,
    request_id: object,
    *,
    permission: Permission = Permission.SUBJECTS_VIEW,
    for_update: bool = False,
) -> PrivacyRequest:
    """A request of the actor's workspace if they hold ``permission``; ``for_update`` locks the row
    (two actions on one request at once: the second waits, then sees the first's state)."""
    return await load(session, actor, PrivacyRequest, request_id, permission, for_update=for_update)
