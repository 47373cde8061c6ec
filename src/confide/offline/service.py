"""Offline requests ("leave a message"): created by the widget when nobody is available."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from confide.auth.actors import OperatorActor
from confide.core import clock, crypto, expiry
from confide.core.db import UnitOfWork
from confide.core.runtime import Runtime
from confide.offline.models import OfflineRequest
from confide.offline.schemas import OfflineFilters, OfflineRequestIn
from confide.permissions.access import access_offline_request_by_id, offline_scope, without_restricted
from confide.permissions.policy import Permission
from confide.prospects import service as prospects
from confide.realtime import events
from confide.realtime.events import OfflineRequestCreated
from confide.redaction import service as redaction
from confide.users import operators as user_operators
from confide.visitors import service as visitors
from confide.visitors.service import Visitor
from confide.workspaces import service as workspaces
from confide.workspaces.service import Site


async def create(rt: Runtime, uow: UnitOfWork, site: Site, data: OfflineRequestIn) -> OfflineRequest:
    fields, consents = visitors.validate_answers(site, data.fields, data.consents, require_contact=True)
    dept_id = None
    if data.department_id is not None:
        dept = await workspaces.get_department(uow, data.department_id)
        dept_id = workspaces.check_department_belongs(dept, site).id
    visitor = await visitors.create_visitor(rt, uow, site, fields, consents)
    await visitors.record_consents(rt, uow, site, visitor, consents)  # ---- consent: the ledger
    return await store_request(
        rt, uow, site, visitor, department_id=dept_id, message=data.message, page_url=data.page_url
    )


async def store_request(
    rt: Runtime,
    uow: UnitOfWork,
    site: Site,
    visitor: Visitor,
    *,
    department_id: str | None,
    message: str,
    page_url: str | None,
) -> OfflineRequest:
    """The request row, its message and page encrypted under the visitor's data key: a visitor of
    the widget's form (``create``), or a waiting visitor who leaves a message instead (their chat
    becomes an offline request: the same data subject, under the same data key)."""
    key = await rt.keyring.get_for_write(uow.session, visitor.id)
    req_id = crypto.new_id()
    message, original = await redaction.mask_text(uow, site_id=site.id, text=message, ref_kind="offline")
    row = OfflineRequest(
        id=req_id,
        workspace_id=site.workspace_id,
        site_id=site.id,
        department_id=department_id,
        visitor_id=visitor.id,
        message_enc=key.encrypt(message, f"offline_requests.message:{req_id}"),
        page_url_enc=key.encrypt(page_url, f"offline_requests.page_url:{req_id}") if page_url else None,
        created_at=clock.now(),
    )
    uow.session.add(row)
    await uow.session.flush()
    if original is not None:
        await redaction.keep_originals(
            rt,
            uow,
            [original._replace(ref_id=req_id)],
            workspace_id=site.workspace_id,
            site_id=site.id,
            subject_id=visitor.id,
            offline_request_id=req_id,
        )
    await prospects.create_automatically(  # only where the site chose it and profiling has a basis
        rt, uow, site, visitor, department_id=department_id, offline_request_id=req_id
    )
    events.publish(rt, uow, OfflineRequestCreated(site.workspace_id, req_id))
    return row


async def view(rt: Runtime, uow: UnitOfWork, row: OfflineRequest) -> dict[str, Any]:
    session = uow.session
    visitor = await visitors.get_visitor(uow, row.visitor_id)
    key = await rt.keyring.get(session, row.visitor_id)
    site = await workspaces.get_site(uow, row.site_id)
    dept = await workspaces.get_department(uow, row.department_id) if row.department_id else None
    handler = await user_operators.operator_name(uow, row.handled_by)
    return {
        "id": row.id,
        "site": {"id": row.site_id, "name": site.name if site else None},
        "department": {"id": dept.id, "name": dept.name} if dept else None,
        "visitor": await visitors.profile(rt, uow, visitor) if visitor else None,
        "message": key.decrypt(row.message_enc, f"offline_requests.message:{row.id}"),
        "page_url": key.decrypt(row.page_url_enc, f"offline_requests.page_url:{row.id}") if row.page_url_enc else None,
        "created_at": clock.iso(row.created_at),
        "handled_at": clock.iso(row.handled_at),
        "handled_by": handler,
    }


async def search(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, filters: OfflineFilters
) -> tuple[list[dict[str, Any]], int]:
    stmt = without_restricted(actor, offline_scope(actor, select(OfflineRequest)), OfflineRequest.visitor_id)
    if filters.date_from:
        stmt = stmt.where(OfflineRequest.created_at >= filters.date_from)
    if filters.date_to:
        stmt = stmt.where(OfflineRequest.created_at <= filters.date_to)
    if filters.site_id:
        stmt = stmt.where(OfflineRequest.site_id == filters.site_id)
    if filters.department_id:
        stmt = stmt.where(OfflineRequest.department_id == filters.department_id)
    if filters.state == "open":
        stmt = stmt.where(OfflineRequest.handled_at.is_(None))
    elif filters.state == "handled":
        stmt = stmt.where(OfflineRequest.handled_at.is_not(None))
    if filters.visitor:
        stmt = stmt.where(
            OfflineRequest.visitor_id.in_(visitors.visitor_ids_matching(rt, actor.workspace_id, filters.visitor))
        )
    total = int(await uow.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    rows = (
        await uow.session.scalars(
            stmt.order_by(OfflineRequest.created_at.desc(), OfflineRequest.id)
            .offset((filters.page - 1) * filters.per_page)
            .limit(filters.per_page)
        )
    ).all()
    return [await view(rt, uow, row) for row in rows], total


async def set_handled(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, request_id: str, handled: bool = True
) -> dict[str, Any]:
    row = await access_offline_request_by_id(
        uow.session, actor, request_id, permission=Permission.OFFLINE_MANAGE, for_update=True
    )
    row.handled_at = clock.now() if handled else None
    row.handled_by = actor.operator_id if handled else None
    await uow.session.flush()
    return await view(rt, uow, row)


# ---------------------------------------------------------------- retention (ADR 0030)
def _expired(criteria: expiry.Expired) -> list[Any]:
    return [
        OfflineRequest.workspace_id == criteria.workspace_id,
        OfflineRequest.site_id == criteria.site_id,
        OfflineRequest.created_at < criteria.before,
        expiry.not_held(OfflineRequest.visitor_id, criteria.held_visitors),
    ]


async def expired_requests(uow: UnitOfWork, criteria: expiry.Expired, *, limit: int) -> list[str]:
    """Ids of offline requests left before ``criteria.before`` (not held), oldest first, locked."""
    return await expiry.take(uow, OfflineRequest.id, _expired(criteria), OfflineRequest.created_at, limit)


async def count_expired_requests(uow: UnitOfWork, criteria: expiry.Expired) -> int:
    return await expiry.count(uow, OfflineRequest.id, _expired(criteria))


async def delete_requests(uow: UnitOfWork, request_ids: list[str]) -> int:
    return await expiry.delete_ids(uow, OfflineRequest.id, request_ids)
