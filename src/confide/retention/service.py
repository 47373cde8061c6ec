"""Retention policies and legal holds (ADR 0030).

**Periods.** Each category (``categories.py``) has a default in the configuration
(``CONFIDE_RETENTION_*_DAYS``; 0 keeps forever). A workspace may set its own period for a category,
and a site its own again: a site's override beats the workspace's, which beats the default
(``effective``). The audit log is one chain for the installation, so its period is the
configuration's only. Changing a period needs ``retention.manage`` and is audited
(``retention.policy_set``, with the old and new days).

**Legal holds.** A hold on a person (a visitor id) or on a conversation, with a reason, who and
when. While it stands nothing of it is swept (``sweep.py`` leaves the rows out in its very select)
and the erasure flow skips or refuses it (``held_visitor_ids`` / ``held_conversation_ids``).
Lifting keeps the row, with who, when and why; both are audited (``retention.hold_placed`` /
``retention.hold_lifted``). A hold on a person covers every row of that visitor id (their chats,
offline requests, page trail, prospects and consent records); a hold on a conversation covers the
conversation (messages included), the prospects made from it and its consent statements.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.dialects import postgresql, sqlite

from confide.audit import service as audit
from confide.auth.actors import OperatorActor
from confide.config import Settings
from confide.core import clock, crypto
from confide.core.db import UnitOfWork
from confide.core.errors import Invalid, NotFound
from confide.core.runtime import Runtime
from confide.permissions.access import access_conversation_by_id, access_site_by_id, access_visitor_by_id
from confide.permissions.policy import Permission, require
from confide.retention.categories import INFO, Category, describe
from confide.retention.models import WORKSPACE_SCOPE, LegalHold, RetentionPolicy
from confide.retention.schemas import HoldIn, LiftIn, PolicyIn
from confide.workspaces import service as workspaces

VISITOR, CONVERSATION = "visitor", "conversation"
HOLDS_LISTED = 200


# ---------------------------------------------------------------- periods
def default_days(settings: Settings, category: Category) -> int:
    return int(getattr(settings, INFO[category].setting))


def defaults(settings: Settings) -> dict[Category, int]:
    return {c: default_days(settings, c) for c in Category}


async def overrides(uow: UnitOfWork, workspace_id: str) -> dict[tuple[str, Category], int]:
    """(scope, category) -> days for the workspace's overrides (scope "*" or a site id)."""
    stmt = select(RetentionPolicy).where(RetentionPolicy.workspace_id == workspace_id)
    known = {c.value for c in Category}
    rows = (await uow.session.scalars(stmt)).all()
    return {(r.scope, Category(r.category)): r.days for r in rows if r.category in known}


def resolve(
    settings: Settings, found: dict[tuple[str, Category], int], site_id: str | None, category: Category
) -> tuple[int, str]:
    """The period of ``category`` on ``site_id`` (None: the workspace's) and where it comes from:
    "site", "workspace" or "default"."""
    if INFO[category].overridable:
        if site_id is not None and (site_id, category) in found:
            return found[(site_id, category)], "site"
        if (WORKSPACE_SCOPE, category) in found:
            return found[(WORKSPACE_SCOPE, category)], "workspace"
    return default_days(settings, category), "default"


async def effective(rt: Runtime, uow: UnitOfWork, workspace_id: str, site_id: str | None, category: Category) -> int:
    return resolve(rt.settings, await overrides(uow, workspace_id), site_id, category)[0]


def _period(days: int, source: str) -> dict[str, Any]:
    return {"days": days, "text": describe(days), "source": source}


async def overview(rt: Runtime, uow: UnitOfWork, actor: OperatorActor) -> dict[str, Any]:
    """The Retention settings page: every category's default, the workspace's and each site's
    period (with where it comes from), and the holds (``retention.manage``)."""
    require(actor, Permission.RETENTION_MANAGE)
    found = await overrides(uow, actor.workspace_id)
    sites = await workspaces.list_sites(uow, actor)
    categories = []
    for category, info in INFO.items():
        default = default_days(rt.settings, category)
        ws_days, ws_source = resolve(rt.settings, found, None, category)
        categories.append({
            "key": category.value,
            "label": info.label,
            "counts_from": info.counts_from,
            "overridable": info.overridable,
            "store": info.store,
            "default": _period(default, "default"),
            "workspace": _period(ws_days, ws_source),
            "sites": [
                {"site_id": s.id, "site": s.name, **_period(*resolve(rt.settings, found, s.id, category))}
                for s in sites
            ],
        })
    return {
        "categories": categories,
        "sites": [{"id": s.id, "name": s.name} for s in sites],
        "holds": await holds_view(rt, uow, actor),
    }


async def set_policy(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, data: PolicyIn) -> dict[str, Any]:
    """Set (``days``) or remove (``days`` None) the workspace's or a site's period for a category."""
    require(actor, Permission.RETENTION_MANAGE)
    category = Category(data.category)
    if not INFO[category].overridable:
        raise Invalid(f"the {INFO[category].label.lower()} period is the installation's (CONFIDE_AUDIT_RETENTION_DAYS)")
    where = str(data.scope)  # "workspace" or a site id
    scope = WORKSPACE_SCOPE if where == "workspace" else (await access_site_by_id(uow.session, actor, where)).id
    key = {"workspace_id": actor.workspace_id, "scope": scope, "category": category.value}
    row = await uow.session.get(RetentionPolicy, key, with_for_update=True)
    previous = row.days if row is not None else None
    now = clock.now()
    if data.days is None:
        if row is not None:
            await uow.session.delete(row)
    else:
        values = {"days": data.days, "updated_at": now, "updated_by": actor.operator_id}
        dialect = uow.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert(RetentionPolicy).values(**key, **values)
        await uow.session.execute(
            stmt.on_conflict_do_update(index_elements=["workspace_id", "scope", "category"], set_=values)
        )
    await audit.record(
        rt,
        uow,
        "retention.policy_set",
        actor=actor,
        target_type="workspace" if scope == WORKSPACE_SCOPE else "site",
        target_id=actor.workspace_id if scope == WORKSPACE_SCOPE else scope,
        detail={"category": category.value, "days": data.days, "previous": previous},
    )
    return {"scope": data.scope, "category": category.value, "days": data.days}


# ---------------------------------------------------------------- legal holds
def _active(workspace_id: str, target_type: str) -> Select[Any]:
    return select(LegalHold.target_id).where(
        LegalHold.workspace_id == workspace_id, LegalHold.target_type == target_type, LegalHold.lifted_at.is_(None)
    )


def held_visitors_select(workspace_id: str) -> Select[Any]:
    """The visitor ids under a standing hold in the workspace, as a subquery (the sweep's)."""
    return _active(workspace_id, VISITOR)


def held_conversations_select(workspace_id: str) -> Select[Any]:
    return _active(workspace_id, CONVERSATION)


async def _held(uow: UnitOfWork, workspace_id: str, target_type: str, ids: Iterable[str]) -> set[str]:
    wanted = sorted({i for i in ids if isinstance(i, str)})
    if not wanted:
        return set()
    stmt = _active(workspace_id, target_type).where(LegalHold.target_id.in_(wanted))
    return {str(v) for v in (await uow.session.scalars(stmt)).all()}


async def held_visitor_ids(uow: UnitOfWork, workspace_id: str, visitor_ids: Iterable[str]) -> set[str]:
    """Which of ``visitor_ids`` are under a standing legal hold (the erasure flow refuses them)."""
    return await _held(uow, workspace_id, VISITOR, visitor_ids)


async def held_conversation_ids(uow: UnitOfWork, workspace_id: str, conversation_ids: Iterable[str]) -> set[str]:
    """Which of ``conversation_ids`` are under a standing hold of their own (a hold on the person is
    ``held_visitor_ids``'s: ask both)."""
    return await _held(uow, workspace_id, CONVERSATION, conversation_ids)


def hold_view(row: LegalHold) -> dict[str, Any]:
    return {
        "id": row.id,
        "target_type": row.target_type,
        "target_id": row.target_id,
        "reason": row.reason,
        "placed_by": row.placed_by,
        "placed_at": clock.iso(row.placed_at),
        "lifted_by": row.lifted_by,
        "lifted_at": clock.iso(row.lifted_at),
        "lift_reason": row.lift_reason,
        "active": row.lifted_at is None,
    }


async def holds_view(rt: Runtime, uow: UnitOfWork, actor: OperatorActor) -> list[dict[str, Any]]:
    """The workspace's holds, standing ones first, newest first (a list of ids and reasons about
    people: recorded in the read-access log when it shows any)."""
    require(actor, Permission.RETENTION_MANAGE)
    stmt = (
        select(LegalHold)
        .where(LegalHold.workspace_id == actor.workspace_id)
        .order_by(LegalHold.lifted_at.is_not(None), LegalHold.placed_at.desc(), LegalHold.id)
        .limit(HOLDS_LISTED)
    )
    rows = list((await uow.session.scalars(stmt)).all())
    if rows and not uow.readonly:
        await audit.record_list_view(
            rt, uow, "retention.holds_listed", actor=actor, target_type="legal_hold",
            ids=[r.id for r in rows][: audit.MAX_LISTED], via="retention", page=1, total=len(rows),
        )
    return [hold_view(r) for r in rows]


async def place_hold(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, data: HoldIn) -> dict[str, Any]:
    """Hold a person or a conversation of the actor's workspace (``retention.manage``); a target
    held already keeps its one standing hold (a second is refused)."""
    require(actor, Permission.RETENTION_MANAGE)
    if data.target_type == VISITOR:
        target_id = (await access_visitor_by_id(uow.session, actor, data.target_id, Permission.RETENTION_MANAGE)).id
    else:
        conv = await access_conversation_by_id(
            uow.session, actor, data.target_id, permission=Permission.RETENTION_MANAGE
        )
        target_id = conv.id
    if await _held(uow, actor.workspace_id, data.target_type, [target_id]):
        raise Invalid(f"this {data.target_type} is under a legal hold already")
    row = LegalHold(
        id=crypto.new_id(),
        workspace_id=actor.workspace_id,
        target_type=data.target_type,
        target_id=target_id,
        reason=data.reason,
        placed_by=actor.operator_id,
        placed_at=clock.now(),
    )
    uow.session.add(row)
    await uow.session.flush()
    await audit.record(
        rt, uow, "retention.hold_placed", actor=actor, target_type="legal_hold", target_id=row.id,
        detail={"on": data.target_type, "target": target_id},
    )
    return hold_view(row)


async def lift_hold(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, hold_id: object, data: LiftIn
) -> dict[str, Any]:
    require(actor, Permission.RETENTION_MANAGE)
    if not isinstance(hold_id, str) or len(hold_id) > 64:
        raise NotFound("legal hold not found")
    row = await uow.session.scalar(
        select(LegalHold)
        .where(LegalHold.id == hold_id, LegalHold.workspace_id == actor.workspace_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None:
        raise NotFound("legal hold not found")
    if row.lifted_at is not None:
        raise Invalid("this legal hold was lifted already")
    row.lifted_at = clock.now()
    row.lifted_by = actor.operator_id
    row.lift_reason = data.reason
    await audit.record(
        rt, uow, "retention.hold_lifted", actor=actor, target_type="legal_hold", target_id=row.id,
        detail={"on": row.target_type, "target": row.target_id},
    )
    return hold_view(row)
