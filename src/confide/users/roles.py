"""Roles as data: the built-in roles (fixed in ``permissions.policy``) and each workspace's custom
roles (a name, a scope and a set of permissions), edited in Settings -> Roles.

An operator holds one role, by key (``Operator.role``): a built-in role's key or a custom role's id.
Changing what a role grants, or which role an operator holds, ends the affected operators' sessions
(their open consoles are closed at once) so that nobody keeps powers they lost. Nobody grants more
than they hold (``policy.may_grant``). Every change is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update

from confide.audit import service as audit
from confide.auth.actors import OperatorActor
from confide.core import clock, crypto
from confide.core.db import UnitOfWork
from confide.core.errors import Conflict, Forbidden, Invalid
from confide.core.runtime import Runtime
from confide.permissions import policy
from confide.permissions.access import access_role_by_id
from confide.permissions.policy import BuiltInRole, Permission, Scope, require
from confide.realtime import events
from confide.users.account_models import OperatorInvite
from confide.users.models import Operator, OperatorSession, Role
from confide.users.schemas import RoleIn

MAX_CUSTOM_ROLES = 100  # per workspace


@dataclass(frozen=True)
class RoleView:
    key: str
    name: str
    description: str
    scope: str
    permissions: tuple[str, ...]  # in catalogue order
    built_in: bool
    holders: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "description": self.description,
            "scope": self.scope,
            "permissions": list(self.permissions),
            "built_in": self.built_in,
            "holders": self.holders,
        }


def _ordered(permissions: frozenset[Permission]) -> tuple[str, ...]:
    return tuple(p.value for p in Permission if p in permissions)


def definition(row: Role) -> BuiltInRole:
    """A custom role's row as a role definition (unknown stored values grant nothing)."""
    try:
        scope = Scope(row.scope)
    except ValueError:
        scope = Scope.OWN
    return BuiltInRole(row.id, row.name, row.description, scope, policy.parse_permissions(row.permissions))


async def _custom_row(uow: UnitOfWork, workspace_id: str, key: str, *, lock: bool) -> Role | None:
    """The workspace's custom role ``key``. ``lock``: read it under a shared row lock (``FOR
    SHARE`` on PostgreSQL) held until the unit ends, so that a role being given to someone (an
    operator, an invitation, a directory mapping, login limits, the two-factor policy) cannot be
    deleted underneath (``delete_role`` locks it ``FOR UPDATE`` and then finds the new holder, or
    the giver finds no role any more): nothing ends up naming a role that is gone."""
    if not key or len(key) > 40:
        return None
    if not lock:
        row = await uow.session.get(Role, key)
    else:
        row = await uow.session.scalar(
            select(Role).where(Role.id == key).with_for_update(read=True).execution_options(populate_existing=True)
        )
    return row if row is not None and row.workspace_id == workspace_id else None


async def role_definition(
    uow: UnitOfWork, workspace_id: str, key: str, *, lock: bool = False
) -> BuiltInRole | None:
    """What the role ``key`` grants in this workspace; ``None`` for a key that names no role
    (its holder then holds no permission at all). ``lock``: see ``_custom_row``."""
    if policy.is_built_in(key):
        return policy.built_in(key)
    row = await _custom_row(uow, workspace_id, key, lock=lock)
    return definition(row) if row is not None else None


def canonical(key: str) -> str:
    """The key a role reference is stored under: a built-in role's key (the legacy "admin" is
    "administrator") or a custom role's id, unchanged."""
    return policy.built_in(key).key if policy.is_built_in(key) else key


async def checked_key(uow: UnitOfWork, workspace_id: str, key: object, *, lock: bool = True) -> str:
    """Every role picker and every stored role reference (login limits, the two-factor policy,
    directory group mappings) asks this: the canonical key of a role of this workspace, built-in
    or custom, or ``Invalid`` (422). The custom role's row stays share-locked (``lock``) until the
    unit ends, so that it cannot be deleted while the reference is being stored."""
    if isinstance(key, str) and policy.is_built_in(key):
        return canonical(key)
    if not isinstance(key, str) or await _custom_row(uow, workspace_id, key, lock=lock) is None:
        raise Invalid("choose one of the workspace's roles")
    return key


async def choices(uow: UnitOfWork, workspace_id: str) -> list[tuple[str, str]]:
    """(key, name) of every role a picker offers: the built-in roles, then the custom ones by name."""
    rows = await uow.session.execute(
        select(Role.id, Role.name).where(Role.workspace_id == workspace_id).order_by(Role.name, Role.id)
    )
    return [(r.key, r.name) for r in policy.BUILT_IN_ROLES.values()] + [(row.id, row.name) for row in rows]


async def role_names(uow: UnitOfWork, workspace_id: str) -> dict[str, str]:
    """Role key -> name, for pages that show the roles operators hold."""
    return dict(await choices(uow, workspace_id))


async def _holder_counts(uow: UnitOfWork, workspace_id: str) -> dict[str, int]:
    rows = await uow.session.execute(
        select(Operator.role, func.count()).where(Operator.workspace_id == workspace_id).group_by(Operator.role)
    )
    counts: dict[str, int] = {}
    for key, count in rows:
        canonical = policy.LEGACY_ROLE_KEYS.get(key, key)
        counts[canonical] = counts.get(canonical, 0) + int(count)
    return counts


async def list_roles(uow: UnitOfWork, actor: OperatorActor) -> list[RoleView]:
    """The built-in roles, then the workspace's custom roles by name, with how many hold each."""
    if not policy.allows_any(actor, Permission.ROLES_MANAGE, Permission.USERS_READ, Permission.SETTINGS_READ):
        raise Forbidden("you do not have permission to do this")
    counts = await _holder_counts(uow, actor.workspace_id)
    views = [
        RoleView(r.key, r.name, r.description, r.scope.value, _ordered(r.permissions), True, counts.get(r.key, 0))
        for r in policy.BUILT_IN_ROLES.values()
    ]
    rows = await uow.session.scalars(select(Role).where(Role.workspace_id == actor.workspace_id).order_by(Role.name))
    for row in rows:
        d = definition(row)
        views.append(
            RoleView(d.key, d.name, d.description, d.scope.value, _ordered(d.permissions), False, counts.get(d.key, 0))
        )
    return views


def _checked(actor: OperatorActor, data: RoleIn) -> tuple[frozenset[Permission], Scope]:
    known = {p.value for p in Permission}
    unknown = sorted({p for p in data.permissions if p not in known})
    if unknown:
        raise Invalid(f"unknown permission: {unknown[0][:60]}")
    permissions = frozenset(Permission(p) for p in data.permissions)
    scope = Scope(data.scope)
    if not policy.may_grant(actor, permissions, scope):
        raise Forbidden("you cannot grant a permission or a scope that you do not hold yourself")
    return permissions, scope


async def _name_free(uow: UnitOfWork, workspace_id: str, name: str, *, except_id: str | None = None) -> None:
    taken = {r.name.casefold() for r in policy.BUILT_IN_ROLES.values()}
    if name.casefold() in taken:
        raise Conflict("a built-in role has this name")
    stmt = select(Role.id).where(Role.workspace_id == workspace_id, func.lower(Role.name) == name.lower())
    if except_id is not None:
        stmt = stmt.where(Role.id != except_id)
    if await uow.session.scalar(stmt) is not None:
        raise Conflict("a role with this name exists already")


async def create_role(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, data: RoleIn) -> Role:
    require(actor, Permission.ROLES_MANAGE)
    permissions, scope = _checked(actor, data)
    await _name_free(uow, actor.workspace_id, data.name)
    count = await uow.session.scalar(
        select(func.count()).select_from(Role).where(Role.workspace_id == actor.workspace_id)
    )
    if int(count or 0) >= MAX_CUSTOM_ROLES:
        raise Conflict(f"a workspace has at most {MAX_CUSTOM_ROLES} custom roles")
    now = clock.now()
    row = Role(
        id=crypto.new_id(),
        workspace_id=actor.workspace_id,
        name=data.name,
        description=data.description,
        scope=scope.value,
        permissions=list(_ordered(permissions)),
        created_at=now,
        updated_at=now,
    )
    uow.session.add(row)
    await uow.session.flush()
    await audit.record(
        rt,
        uow,
        "role.create",
        actor=actor,
        target_type="role",
        target_id=row.id,
        detail={"scope": scope.value, "permissions": len(permissions)},
    )
    return row


async def update_role(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, role_id: str, data: RoleIn) -> Role:
    require(actor, Permission.ROLES_MANAGE)
    row = await access_role_by_id(uow.session, actor, role_id, for_update=True)
    if not policy.may_grant(actor, definition(row).permissions, definition(row).scope):
        raise Forbidden("you cannot change a role that grants more than you hold")
    permissions, scope = _checked(actor, data)
    await _name_free(uow, actor.workspace_id, data.name, except_id=row.id)
    before = definition(row)
    after = BuiltInRole(row.id, data.name, data.description, scope, permissions)
    changed = before.permissions != after.permissions or before.scope != after.scope
    if changed and policy.holds(actor, row.id) and not policy.grants(after, Permission.ROLES_MANAGE):
        raise Invalid("you cannot take the roles permission away from your own role")
    row.name, row.description = data.name, data.description
    row.scope, row.permissions = scope.value, list(_ordered(permissions))
    row.updated_at = clock.now()
    await uow.session.flush()
    ended = await end_sessions_of_role(rt, uow, actor, row.id) if changed else 0
    await audit.record(
        rt,
        uow,
        "role.update",
        actor=actor,
        target_type="role",
        target_id=row.id,
        detail={"scope": scope.value, "permissions": len(permissions), "grants_changed": changed, "holders": ended},
    )
    return row


async def lock_for_delete(uow: UnitOfWork, actor: OperatorActor, role_id: str) -> Role:
    """Step 1 of deleting a role (``confide.role_use.delete_role``): the row, locked ``FOR UPDATE``
    (whoever is giving it to someone holds it ``FOR SHARE`` until they commit, see ``checked_key``),
    refused (409) while an operator or a pending invitation holds it. The counts run after the lock
    is taken, so they see a racing assignment that committed first."""
    require(actor, Permission.ROLES_MANAGE)
    row = await access_role_by_id(uow.session, actor, role_id, for_update=True)
    held = await uow.session.scalar(select(func.count()).select_from(Operator).where(Operator.role == row.id))
    if int(held or 0):
        raise Conflict("operators hold this role: give them another role first")
    invited = await uow.session.scalar(
        select(func.count())
        .select_from(OperatorInvite)
        .where(
            OperatorInvite.role == row.id,
            OperatorInvite.used_at.is_(None),
            OperatorInvite.revoked_at.is_(None),
            OperatorInvite.expires_at > clock.now(),
        )
    )
    if int(invited or 0):
        raise Conflict("a pending invitation gives this role: revoke it first")
    return row


async def delete_role(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, role_id: str, *, cleared: int = 0
) -> None:
    """Delete a custom role nobody holds. The dashboard goes through ``confide.role_use.delete_role``,
    which also refuses a role a directory maps groups to and clears the login limits and two-factor
    policy entries naming it (``cleared``: how many, for the audit)."""
    row = await lock_for_delete(uow, actor, role_id)
    await uow.session.delete(row)
    await uow.session.flush()
    await audit.record(
        rt,
        uow,
        "role.delete",
        actor=actor,
        target_type="role",
        target_id=role_id,
        detail={"references_cleared": cleared},
    )


async def end_sessions_of_role(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, role_key: str) -> int:
    """What a role grants changed: every holder's sessions end (the editor keeps the session they
    are using), and their open consoles are closed. Returns the number of holders."""
    holders = list(
        await uow.session.scalars(
            select(Operator.id).where(Operator.workspace_id == actor.workspace_id, Operator.role == role_key)
        )
    )
    for operator_id in holders:
        await end_sessions(rt, uow, operator_id, keep=actor.session_id if operator_id == actor.operator_id else None)
    return len(holders)


async def end_sessions(rt: Runtime, uow: UnitOfWork, operator_id: str, *, keep: str | None = None) -> None:
    """End an operator's sessions (but ``keep``), and close their sockets through the broker."""
    if keep is None:
        from confide.users import sessions  # the one revocation of every session (it imports this module)

        await sessions.revoke_sessions(uow, operator_id)
        events.publish(rt, uow, events.Revoke(operator_id))
        return
    stmt = update(OperatorSession).where(
        OperatorSession.operator_id == operator_id, OperatorSession.revoked_at.is_(None)
    )
    if keep is not None:
        stmt = stmt.where(OperatorSession.id != keep)
    await uow.session.execute(stmt.values(revoked_at=clock.now()))
    # Their other consoles close (they read their session again and find it revoked); this one reloads.
    events.publish(rt, uow, events.Refresh(operator_id))
