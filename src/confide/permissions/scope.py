"""The one generic scoped loader, and the list scopes that follow the same rule.

``load(session, actor, Model, id, permission, for_update=...)`` returns a tenant object only when
the actor holds ``permission`` and the object lies within the actor's reach; otherwise it raises
``NotFound`` with the model's usual message, so a foreign id, a missing id and a denied one are
indistinguishable. Every tenant object is scoped by workspace; conversations and offline requests
also by site and department, according to the role's ``Scope``:

- ``WORKSPACE``: every department of the workspace;
- ``DEPARTMENTS``: the chats of the operator's departments (and the chats they hold elsewhere);
- ``OWN``: the operator's own chats, and the queued chats (waiting, nobody holds them) of their
  departments.

Offline requests follow the departments (a request left without a department is seen by every
operator of a department of that site) for both ``DEPARTMENTS`` and ``OWN``: a request has no owner.

``for_update=True`` reads the row fresh and locks it until the unit of work ends (``SELECT ... FOR
UPDATE`` on PostgreSQL, which re-checks the scope on the locked row; SQLite serialises writers), so a
read-then-write of its state is safe against another node doing the same at once.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, false, select
from sqlalchemy.ext.asyncio import AsyncSession

from confide.auth.actors import OperatorActor
from confide.chats.models import Conversation
from confide.core.errors import NotFound
from confide.offline.models import OfflineRequest
from confide.permissions.policy import Permission, Scope, allows, scope_of
from confide.privacy_requests.models import PrivacyRequest
from confide.prospects.models import Prospect
from confide.users.models import Operator, Role
from confide.visitor_activity.models import PageView
from confide.visitors.models import Visitor
from confide.workspaces.models import CannedReply, Department, Site

T = TypeVar("T")

NOT_FOUND: dict[type[Any], str] = {
    Conversation: "conversation not found",
    OfflineRequest: "offline request not found",
    Site: "site not found",
    Department: "department not found",
    Operator: "operator not found",
    CannedReply: "canned reply not found",
    Role: "role not found",
    Prospect: "prospect not found",
    PrivacyRequest: "request not found",  # data-subject requests (ADR 0029)
}
MAX_ID = 64


def not_found(model: type[Any]) -> NotFound:
    return NotFound(NOT_FOUND.get(model, "not found"))


def reaches_workspace_config(actor: OperatorActor) -> bool:
    """Sites, departments and canned replies: the whole workspace for a workspace-wide role or
    whoever may read the settings; otherwise those of the operator's own departments."""
    return scope_of(actor) is Scope.WORKSPACE or allows(actor, Permission.SETTINGS_READ)


# ---------------------------------------------------------------- the rule, as SQL
def conversation_clause(
    actor: OperatorActor,
    permission: Permission = Permission.CHATS_READ,
    *,
    own_only: bool = False,
    departments: bool = False,
) -> ColumnElement[bool]:
    """The conversations ``actor`` reaches with ``permission``. ``own_only``: with the ``OWN``
    scope, only the chats the operator holds (acting on a chat: transfer, close). ``departments``:
    with the ``OWN`` scope, every chat of their departments (accepting one: only a queued chat can
    be accepted, and the answer to any other is "taken already" or "closed", never its content)."""
    if not allows(actor, permission):
        return false()
    in_workspace = Conversation.workspace_id == actor.workspace_id
    scope = scope_of(actor)
    if departments and scope is Scope.OWN:
        scope = Scope.DEPARTMENTS
    if scope is Scope.WORKSPACE:
        return in_workspace
    mine = Conversation.operator_id == actor.operator_id
    in_departments = Conversation.department_id.in_(actor.department_ids)
    if scope is Scope.DEPARTMENTS:
        return in_workspace & (in_departments | mine)
    if own_only:
        return in_workspace & mine
    queued_here = in_departments & (Conversation.status == "queued") & Conversation.operator_id.is_(None)
    return in_workspace & (mine | queued_here)


def offline_clause(actor: OperatorActor, permission: Permission = Permission.OFFLINE_READ) -> ColumnElement[bool]:
    if not allows(actor, permission):
        return false()
    in_workspace = OfflineRequest.workspace_id == actor.workspace_id
    if scope_of(actor) is Scope.WORKSPACE:
        return in_workspace
    sites_of_mine = select(Department.site_id).where(Department.id.in_(actor.department_ids))
    return in_workspace & (
        OfflineRequest.department_id.in_(actor.department_ids)
        | (OfflineRequest.department_id.is_(None) & OfflineRequest.site_id.in_(sites_of_mine))
    )


def prospect_clause(actor: OperatorActor, permission: Permission = Permission.PROSPECTS_READ) -> ColumnElement[bool]:
    """Prospects follow the departments like offline requests (a prospect has an owner, but the
    scope of who sees it is its department, or its site when it has none)."""
    if not allows(actor, permission):
        return false()
    in_workspace = Prospect.workspace_id == actor.workspace_id
    if scope_of(actor) is Scope.WORKSPACE:
        return in_workspace
    sites_of_mine = select(Department.site_id).where(Department.id.in_(actor.department_ids))
    return in_workspace & (
        Prospect.department_id.in_(actor.department_ids)
        | (Prospect.department_id.is_(None) & Prospect.site_id.in_(sites_of_mine))
    )


def department_clause(actor: OperatorActor) -> ColumnElement[bool]:
    in_workspace = Department.workspace_id == actor.workspace_id
    return in_workspace if reaches_workspace_config(actor) else in_workspace & Department.id.in_(actor.department_ids)


def site_clause(actor: OperatorActor) -> ColumnElement[bool]:
    in_workspace = Site.workspace_id == actor.workspace_id
    if reaches_workspace_config(actor):
        return in_workspace
    return in_workspace & Site.id.in_(select(Department.site_id).where(Department.id.in_(actor.department_ids)))


def canned_reply_clause(actor: OperatorActor) -> ColumnElement[bool]:
    in_workspace = CannedReply.workspace_id == actor.workspace_id
    if reaches_workspace_config(actor):
        return in_workspace
    return in_workspace & (CannedReply.department_id.is_(None) | CannedReply.department_id.in_(actor.department_ids))


# ---- activity (Visitor Activity, issue 7 point 5)
def _sites_of_departments(actor: OperatorActor) -> Select[Any]:
    return select(Department.site_id).where(Department.id.in_(actor.department_ids))


def activity_clause(actor: OperatorActor) -> ColumnElement[bool]:
    """The page views ``actor`` may read (``VISITORS_READ``): the workspace's for a workspace-wide
    role, otherwise those of the sites of the operator's departments."""
    if not allows(actor, Permission.VISITORS_READ):
        return false()
    in_workspace = PageView.workspace_id == actor.workspace_id
    if scope_of(actor) is Scope.WORKSPACE:
        return in_workspace
    return in_workspace & PageView.site_id.in_(_sites_of_departments(actor))


def activity_visitor_clause(actor: OperatorActor) -> ColumnElement[bool]:
    """The visitors whose trail ``actor`` may open: same rule, on the visitor's site."""
    if not allows(actor, Permission.VISITORS_READ):
        return false()
    in_workspace = Visitor.workspace_id == actor.workspace_id
    if scope_of(actor) is Scope.WORKSPACE:
        return in_workspace
    return in_workspace & Visitor.site_id.in_(_sites_of_departments(actor))


# ---- end activity


def _object_clause(actor: OperatorActor, model: type[Any], permission: Permission | None) -> ColumnElement[bool]:
    """What one object's load is scoped by (lists of sites, departments and canned replies are
    narrower for operators, but an object named by id is in reach anywhere in the workspace: a
    chat may be transferred to any department of its site)."""
    if model is Conversation:
        return conversation_clause(actor, permission or Permission.CHATS_READ)
    if model is OfflineRequest:
        return offline_clause(actor, permission or Permission.OFFLINE_READ)
    if model is Prospect:
        return prospect_clause(actor, permission or Permission.PROSPECTS_READ)
    if permission is not None and not allows(actor, permission):
        return false()
    workspace_id = getattr(model, "workspace_id", None)
    if workspace_id is None:
        raise TypeError(f"{model.__name__} is not a tenant object")
    clause: ColumnElement[bool] = workspace_id == actor.workspace_id
    return clause


# ---------------------------------------------------------------- the loader
async def load(
    session: AsyncSession,
    actor: OperatorActor,
    model: type[T],
    object_id: object,
    permission: Permission | None,
    *,
    for_update: bool = False,
    where: ColumnElement[bool] | None = None,
    reach: ColumnElement[bool] | None = None,
) -> T:
    """The object ``model`` with id ``object_id`` if ``actor`` may reach it with ``permission``
    (``None``: any operator of the workspace, e.g. a colleague named as a transfer target), else
    ``NotFound``. ``where``: a narrower rule of a special loader (e.g. "the chat is theirs");
    ``reach``: a special loader's own rule instead of the model's (built by this module's clauses)."""
    if not isinstance(object_id, str) or not object_id or len(object_id) > MAX_ID:
        raise not_found(model)
    model_id: Any = getattr(model, "id")  # noqa: B009 - every tenant model has an ``id`` column
    rule = reach if reach is not None else _object_clause(actor, model, permission)
    stmt: Select[Any] = select(model).where(model_id == object_id, rule)
    if where is not None:
        stmt = stmt.where(where)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    found: T | None = await session.scalar(stmt)
    if found is None:
        raise not_found(model)
    return found


def scoped(
    actor: OperatorActor, model: type[Any], stmt: Select[Any], permission: Permission | None = None
) -> Select[Any]:
    """A list query narrowed by the same rule as ``load`` (for conversations and offline requests)
    or by the list rule (sites, departments, canned replies: the operator's departments)."""
    if model is Site:
        return stmt.where(site_clause(actor))
    if model is Department:
        return stmt.where(department_clause(actor))
    if model is CannedReply:
        return stmt.where(canned_reply_clause(actor))
    return stmt.where(_object_clause(actor, model, permission))
