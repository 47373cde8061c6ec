"""Workspaces, sites, departments and canned replies: the configuration a business manages."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from confide.audit import service as audit
from confide.auth.actors import OperatorActor
from confide.consent import notices as consent_notices
from confide.core import clock, crypto
from confide.core.db import UnitOfWork
from confide.core.errors import Invalid, NotFound
from confide.permissions.access import (
    access_canned_reply_by_id,
    access_department_by_id,
    access_site_by_id,
    canned_reply_scope,
    department_scope,
    site_scope,
)
from confide.permissions.policy import Permission, require
from confide.workspaces.models import CannedReply, RefusedOrigin, Workspace
from confide.workspaces.models import Department as Department  # re-exported: other domains hold departments
from confide.workspaces.models import Site as Site  # re-exported: other domains hold sites, never query them
from confide.workspaces.schemas import DAYS, CannedReplyIn, DepartmentIn, DepartmentPatch, SiteIn, SitePatch

DEFAULT_PRECHAT = [
    {"key": "name", "label": "Your name", "type": "text", "required": True},
    {"key": "email", "label": "E-mail", "type": "email", "required": True},
    {"key": "phone", "label": "Phone", "type": "tel", "required": False},
]


async def create_workspace(uow: UnitOfWork, *, name: str) -> Workspace:
    ws = Workspace(id=crypto.new_id(), name=name, created_at=clock.now())
    uow.session.add(ws)
    await uow.session.flush()
    await consent_notices.seed_defaults(uow, ws.id)  # ---- consent: the default purposes and notices
    return ws


async def create_site(uow: UnitOfWork, *, workspace_id: str, data: SiteIn) -> Site:
    dumped = data.model_dump()
    site = Site(
        id=crypto.new_id(),
        workspace_id=workspace_id,
        site_key=crypto.new_id(),
        created_at=clock.now(),
        **{**dumped, "prechat_fields": dumped["prechat_fields"] or DEFAULT_PRECHAT},
    )
    uow.session.add(site)
    await uow.session.flush()
    await consent_notices.adopt_site_purposes(uow, workspace_id, site.purposes)  # ---- consent
    return site


async def admin_create_site(uow: UnitOfWork, actor: OperatorActor, data: SiteIn) -> Site:
    require(actor, Permission.SETTINGS_MANAGE)
    site = await create_site(uow, workspace_id=actor.workspace_id, data=data)
    await audit.record(None, uow, "settings.site_created", actor=actor, target_type="site", target_id=site.id)
    return site


async def update_site(uow: UnitOfWork, actor: OperatorActor, site_id: str, patch: SitePatch) -> Site:
    require(actor, Permission.SETTINGS_MANAGE)
    site = await access_site_by_id(uow.session, actor, site_id)
    changes = patch.model_dump(exclude_unset=True)
    always_open = changes.pop("always_open", None)
    if "timezone" in changes and changes["timezone"] is not None:
        SiteIn(name=site.name, timezone=changes["timezone"])  # validates the zone
    for key, value in changes.items():
        if key in ("prechat_fields", "purposes") and value is not None:
            value = [dict(item) for item in value]
        if value is None and key != "business_hours":
            continue
        setattr(site, key, value)
    if always_open:
        site.business_hours = None
    await uow.session.flush()
    if "purposes" in changes:
        await consent_notices.adopt_site_purposes(uow, site.workspace_id, site.purposes)  # ---- consent
    fields = {key: True for key in patch.model_dump(exclude_unset=True)}  # which settings, never their values
    await audit.record(None, uow, "settings.site_updated", actor=actor, target_type="site", target_id=site.id,
                       detail=fields)
    return site


async def list_sites(uow: UnitOfWork, actor: OperatorActor) -> list[Site]:
    stmt = site_scope(actor, select(Site))
    return list((await uow.session.scalars(stmt.order_by(Site.created_at))).all())


async def first_site(uow: UnitOfWork) -> Site | None:
    """The oldest site (the demo page embeds its widget)."""
    return await uow.session.scalar(select(Site).order_by(Site.created_at).limit(1))


def site_view(site: Site) -> dict[str, Any]:
    return {
        "id": site.id,
        "name": site.name,
        "site_key": site.site_key,
        "allowed_origins": site.allowed_origins,
        "prechat_fields": site.prechat_fields,
        "purposes": site.purposes,
        "privacy_policy_url": site.privacy_policy_url,
        "greeting": site.greeting,
        "color": site.color,
        "timezone": site.timezone,
        "business_hours": site.business_hours,
    }


def is_open(site: Site, at: datetime | None = None) -> bool:
    """Within the site's business hours (in its own time zone)? No hours set: always open."""
    if not site.business_hours:
        return True
    local = (at or clock.now()).astimezone(ZoneInfo(site.timezone))
    spans = site.business_hours.get(DAYS[local.weekday()], [])
    hhmm = local.strftime("%H:%M")
    return any(start <= hhmm < end for start, end in spans)


# ---------------------------------------------------------------- refused origins
REFUSED_ORIGINS_KEPT = 20  # per site: the most recently seen distinct origins


def origin_only(value: str | None) -> str | None:
    """``scheme://host[:port]`` of an Origin header, lower-cased; None when it is not one (a path,
    a query, credentials or anything else in it is never kept)."""
    if not value or len(value) > 300:
        return None
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host or parts.username or parts.password:
        return None
    if not all(ch.isalnum() or ch in ".-_[]:" for ch in host):
        return None
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


async def record_refused_origin(uow: UnitOfWork, site_id: str, origin: str | None) -> bool:
    """Count one refused widget call (HTTP or socket) from ``origin`` for a site; keeps the
    ``REFUSED_ORIGINS_KEPT`` most recent per site. One upsert, so racing calls never collide.
    Returns False (and stores nothing) when ``origin`` is not an origin. Callers rate-limit."""
    clean = origin_only(origin)
    if clean is None:
        return False
    now = clock.now()
    values = {"site_id": site_id, "origin": clean, "count": 1, "first_seen": now, "last_seen": now}
    dialect = uow.session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(RefusedOrigin).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["site_id", "origin"],
        set_={"count": RefusedOrigin.count + 1, "last_seen": now},
    )
    await uow.session.execute(stmt)
    keep = (
        select(RefusedOrigin.origin)
        .where(RefusedOrigin.site_id == site_id)
        .order_by(RefusedOrigin.last_seen.desc(), RefusedOrigin.origin)
        .limit(REFUSED_ORIGINS_KEPT)
    )
    await uow.session.execute(
        delete(RefusedOrigin).where(RefusedOrigin.site_id == site_id, RefusedOrigin.origin.not_in(keep))
    )
    return True


async def refused_origins(uow: UnitOfWork, actor: OperatorActor) -> dict[str, list[dict[str, Any]]]:
    """Per site of the caller's workspace (for those who may read the settings), newest first."""
    require(actor, Permission.SETTINGS_READ)
    rows = await uow.session.execute(
        select(RefusedOrigin)
        .join(Site, Site.id == RefusedOrigin.site_id)
        .where(Site.workspace_id == actor.workspace_id)
        .order_by(RefusedOrigin.last_seen.desc())
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows.scalars():
        out.setdefault(row.site_id, []).append(
            {"origin": row.origin, "count": row.count, "first_seen": clock.iso(row.first_seen),
             "last_seen": clock.iso(row.last_seen)}
        )
    return out


# ---------------------------------------------------------------- departments
async def create_department(
    uow: UnitOfWork,
    *,
    workspace_id: str,
    site_id: str,
    name: str,
    strategy: str = "round_robin",
    offer_timeout_s: int = 30,
) -> Department:
    dept = Department(
        id=crypto.new_id(),
        workspace_id=workspace_id,
        site_id=site_id,
        name=name,
        strategy=strategy,
        offer_timeout_s=offer_timeout_s,
        created_at=clock.now(),
    )
    uow.session.add(dept)
    await uow.session.flush()
    return dept


async def admin_create_department(uow: UnitOfWork, actor: OperatorActor, data: DepartmentIn) -> Department:
    require(actor, Permission.SETTINGS_MANAGE)
    site = await access_site_by_id(uow.session, actor, data.site_id)
    dept = await create_department(
        uow,
        workspace_id=actor.workspace_id,
        site_id=site.id,
        name=data.name,
        strategy=data.strategy,
        offer_timeout_s=data.offer_timeout_s,
    )
    await audit.record(None, uow, "settings.department_created", actor=actor, target_type="department",
                       target_id=dept.id, detail={"site_id": site.id})
    return dept


async def update_department(
    uow: UnitOfWork, actor: OperatorActor, department_id: str, patch: DepartmentPatch
) -> Department:
    require(actor, Permission.SETTINGS_MANAGE)
    dept = await access_department_by_id(uow.session, actor, department_id)
    for key, value in patch.model_dump(exclude_unset=True, exclude_none=True).items():
        setattr(dept, key, value)
    await uow.session.flush()
    await audit.record(None, uow, "settings.department_updated", actor=actor, target_type="department",
                       target_id=dept.id, detail={key: True for key in patch.model_dump(exclude_unset=True)})
    return dept


async def list_departments(uow: UnitOfWork, actor: OperatorActor) -> list[Department]:
    stmt = department_scope(actor, select(Department)).order_by(Department.created_at)
    return list((await uow.session.scalars(stmt)).all())


async def transfer_departments(uow: UnitOfWork, actor: OperatorActor) -> list[Department]:
    """Every department of the workspace: a chat may be handed to any department of its site."""
    stmt = select(Department).where(Department.workspace_id == actor.workspace_id).order_by(Department.created_at)
    return list((await uow.session.scalars(stmt)).all())


async def departments_of_site(uow: UnitOfWork, site_id: str) -> list[Department]:
    stmt = select(Department).where(Department.site_id == site_id).order_by(Department.created_at)
    return list((await uow.session.scalars(stmt)).all())


def department_view(dept: Department) -> dict[str, Any]:
    return {
        "id": dept.id,
        "site_id": dept.site_id,
        "name": dept.name,
        "strategy": dept.strategy,
        "offer_timeout_s": dept.offer_timeout_s,
    }


# ---------------------------------------------------------------- canned replies
async def create_canned_reply(uow: UnitOfWork, actor: OperatorActor, data: CannedReplyIn) -> CannedReply:
    require(actor, Permission.SETTINGS_MANAGE)
    if data.department_id is not None:
        await access_department_by_id(uow.session, actor, data.department_id)
    reply = CannedReply(
        id=crypto.new_id(),
        workspace_id=actor.workspace_id,
        department_id=data.department_id,
        shortcut=data.shortcut,
        title=data.title,
        text=data.text,
        created_at=clock.now(),
    )
    uow.session.add(reply)
    await uow.session.flush()
    await audit.record(None, uow, "settings.canned_reply_created", actor=actor, target_type="canned_reply",
                       target_id=reply.id, detail={"department_id": reply.department_id})
    return reply


async def delete_canned_reply(uow: UnitOfWork, actor: OperatorActor, reply_id: str) -> None:
    require(actor, Permission.SETTINGS_MANAGE)
    reply = await access_canned_reply_by_id(uow.session, actor, reply_id)
    await uow.session.delete(reply)
    await audit.record(None, uow, "settings.canned_reply_deleted", actor=actor, target_type="canned_reply",
                       target_id=reply.id)


async def list_canned_replies(uow: UnitOfWork, actor: OperatorActor) -> list[CannedReply]:
    stmt = canned_reply_scope(actor, select(CannedReply))
    return list((await uow.session.scalars(stmt.order_by(CannedReply.shortcut))).all())


def canned_reply_view(reply: CannedReply) -> dict[str, Any]:
    return {
        "id": reply.id,
        "shortcut": reply.shortcut,
        "title": reply.title,
        "text": reply.text,
        "department_id": reply.department_id,
    }


async def get_site(uow: UnitOfWork, site_id: str) -> Site | None:
    return await uow.session.get(Site, site_id)


async def get_department(uow: UnitOfWork, department_id: str) -> Department | None:
    return await uow.session.get(Department, department_id)


async def department_names(uow: UnitOfWork, department_ids: list[str]) -> dict[str, str]:
    if not department_ids:
        return {}
    rows = await uow.session.execute(select(Department.id, Department.name).where(Department.id.in_(department_ids)))
    return {row.id: row.name for row in rows}


async def lock_department(uow: UnitOfWork, department_id: str) -> Department | None:
    """The department locked until the unit ends (its round robin cursor is read, then moved);
    ``None`` when it does not exist or another unit holds it right now (``SKIP LOCKED``).

    ``FOR NO KEY UPDATE`` on PostgreSQL (``key_share``): two routers still exclude each other, but
    a unit that merely inserted a row pointing at the department (a new conversation takes a
    ``KEY SHARE`` lock for its foreign key) does not make every router skip it. With ``FOR UPDATE``
    two chats starting at once each skipped the department for the other's new conversation, and
    neither was offered."""
    found: Department | None = await uow.session.scalar(
        select(Department)
        .where(Department.id == department_id)
        .with_for_update(skip_locked=True, key_share=True)
        .execution_options(populate_existing=True)
    )
    return found


def advance_round_robin(dept: Department, operator_id: str) -> None:
    """The round robin cursor: the operator most recently offered a chat (department locked)."""
    dept.rr_last_operator_id = operator_id


def check_department_belongs(dept: Department | None, site: Site) -> Department:
    if dept is None or dept.site_id != site.id:
        raise Invalid("unknown department")
    return dept


# ---------------------------------------------------------------- system walks (retention, ADR 0030)
async def all_workspaces(uow: UnitOfWork) -> list[Workspace]:
    """Every workspace, oldest first (system work with no actor: the retention sweep)."""
    return list((await uow.session.scalars(select(Workspace).order_by(Workspace.created_at, Workspace.id))).all())


async def workspace_ids(uow: UnitOfWork, workspace_id: str | None = None) -> list[str]:
    """The id of one workspace (``NotFound`` when there is none by that id), or of every workspace,
    oldest first: what a system walk over one or all workspaces starts from."""
    if workspace_id is None:
        return [w.id for w in await all_workspaces(uow)]
    if await get_workspace(uow, workspace_id) is None:
        raise NotFound("workspace not found")
    return [workspace_id]


async def get_workspace(uow: UnitOfWork, workspace_id: str) -> Workspace | None:
    return await uow.session.get(Workspace, workspace_id)


async def sites_of(uow: UnitOfWork, workspace_id: str) -> list[Site]:
    """A workspace's sites, oldest first (system work with no actor)."""
    stmt = select(Site).where(Site.workspace_id == workspace_id).order_by(Site.created_at, Site.id)
    return list((await uow.session.scalars(stmt)).all())
