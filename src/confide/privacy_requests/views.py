"""What staff, the shell and the requester see of data-subject requests (ADR 0029): a request's
summary and full view with its timeline, the Requests list, every workspace's list for the shell,
the requester's own page, and the visitors linked to a requester's e-mail (for Find a person).
Reads only, apart from the read audit of what staff saw."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select

from confide.audit import service as audit
from confide.auth.actors import OperatorActor
from confide.core import clock
from confide.core.db import UnitOfWork
from confide.core.errors import NotFound
from confide.core.runtime import Runtime
from confide.permissions.access import access_privacy_request_by_id, privacy_request_scope
from confide.permissions.policy import Permission
from confide.privacy_requests.deadlines import is_overdue
from confide.privacy_requests.models import PrivacyRequest, PrivacyRequestEvent, PrivacyRequestVisitor
from confide.privacy_requests.records import TARGET, aad_of, email_of, key_of, open_value
from confide.privacy_requests.schemas import OPEN_STATES, RequestFilters
from confide.users import operators as user_operators


def visitor_ids_by_email(workspace_id: str, email_bidx: str) -> Select[Any]:
    """The visitors linked to the workspace's requests made from the e-mail with this blind index
    (the widget's own visitor, or those matched once the requester proved the address): Find a
    person joins them to whoever gave that address."""
    return (
        select(PrivacyRequestVisitor.visitor_id)
        .join(PrivacyRequest, PrivacyRequest.id == PrivacyRequestVisitor.request_id)
        .where(PrivacyRequest.workspace_id == workspace_id, PrivacyRequest.email_bidx == email_bidx)
        .distinct()
    )


async def linked_visitors(uow: UnitOfWork, request_ids: list[str]) -> dict[str, list[str]]:
    """Request id -> the ids of the visitors linked to it (sorted)."""
    out: dict[str, list[str]] = {i: [] for i in request_ids}
    if not request_ids:
        return out
    rows = await uow.session.execute(
        select(PrivacyRequestVisitor.request_id, PrivacyRequestVisitor.visitor_id)
        .where(PrivacyRequestVisitor.request_id.in_(request_ids))
        .order_by(PrivacyRequestVisitor.visitor_id)
    )
    for request_id, visitor_id in rows.all():
        out[request_id].append(visitor_id)
    return out


def summary(row: PrivacyRequest, now: datetime | None = None) -> dict[str, Any]:
    """The non-personal facts of a request (lists, the CLI, the requester's own page)."""
    return {
        "id": row.id,
        "type": row.type,
        "channel": row.channel,
        "state": row.state,
        "site_id": row.site_id,
        "received_at": clock.iso(row.received_at),
        "due_at": clock.iso(row.due_at),
        "extended_months": row.extended_months,
        "overdue": is_overdue(row, now),
        "verified": row.verified_at is not None,
        "verified_by": ("staff" if row.verified_by else "code") if row.verified_at else None,
        "assignee_id": row.assignee_id,
        "closed_at": clock.iso(row.closed_at),
        "export_id": row.export_id,
        "certificate_id": row.certificate_id,
    }


async def view(rt: Runtime, uow: UnitOfWork, row: PrivacyRequest, *, timeline: bool = False) -> dict[str, Any]:
    key = key_of(rt, row)
    out = summary(row)
    out["email"] = open_value(key, row.email_enc, aad_of(row.id, "email"))
    out["details"] = open_value(key, row.details_enc, aad_of(row.id, "details")) or ""
    out["visitor_ids"] = (await linked_visitors(uow, [row.id]))[row.id]
    names = await user_operators.operator_names(uow, [i for i in (row.assignee_id, row.created_by) if i])
    out["assignee"] = {"id": row.assignee_id, "name": names.get(row.assignee_id)} if row.assignee_id else None
    if timeline:
        events = (
            await uow.session.scalars(
                select(PrivacyRequestEvent)
                .where(PrivacyRequestEvent.request_id == row.id)
                .order_by(PrivacyRequestEvent.seq)
            )
        ).all()
        who = await user_operators.operator_names(
            uow, [e.actor_id for e in events if e.actor_type == "operator" and e.actor_id]
        )
        out["timeline"] = [
            {
                "at": clock.iso(e.at),
                "kind": e.kind,
                "actor_type": e.actor_type,
                "actor": who.get(e.actor_id) if e.actor_type == "operator" and e.actor_id else None,
                "note": open_value(key, e.note_enc, f"privacy_request_events.note:{e.id}"),
            }
            for e in events
        ]
    return out


async def open_request(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, request_id: str, *, via: str
) -> dict[str, Any]:
    """The detail page or API: the request with its timeline; the view is recorded (read audit)."""
    row = await access_privacy_request_by_id(uow.session, actor, request_id, permission=Permission.SUBJECTS_VIEW)
    await audit.record_view_once(rt, uow, "privacy_request.viewed", actor=actor, target_type=TARGET,
                                 target_id=row.id, detail={"via": via})
    return await view(rt, uow, row, timeline=True)


def _filtered(stmt: Select[Any], filters: RequestFilters, now: datetime) -> Select[Any]:
    if filters.type:
        stmt = stmt.where(PrivacyRequest.type == filters.type)
    if filters.state == "open":
        stmt = stmt.where(PrivacyRequest.state.in_(OPEN_STATES))
    elif filters.state:
        stmt = stmt.where(PrivacyRequest.state == filters.state)
    if filters.channel:
        stmt = stmt.where(PrivacyRequest.channel == filters.channel)
    if filters.overdue:
        stmt = stmt.where(PrivacyRequest.state.in_(OPEN_STATES), PrivacyRequest.due_at <= now)
    if filters.due_before:
        stmt = stmt.where(PrivacyRequest.due_at < filters.due_before)
    return stmt


async def search(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, filters: RequestFilters, *, via: str
) -> tuple[list[dict[str, Any]], int]:
    """The Requests list (soonest due first); the requesters' e-mails shown are recorded (read audit)."""
    now = clock.now()
    stmt = _filtered(privacy_request_scope(actor, select(PrivacyRequest)), filters, now)
    total = int(await uow.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    rows = (
        await uow.session.scalars(
            stmt.order_by(PrivacyRequest.due_at, PrivacyRequest.id)
            .offset((filters.page - 1) * filters.per_page)
            .limit(filters.per_page)
        )
    ).all()
    items = []
    for row in rows:
        item = summary(row, now)
        item["email"] = email_of(rt, row)
        items.append(item)
    if not uow.readonly:
        await audit.record_list_view(rt, uow, "privacy_request.listed", actor=actor, target_type=TARGET,
                                     ids=[i["id"] for i in items], via=via, page=filters.page, total=total)
    return items, total


async def list_all(uow: UnitOfWork, *, state: str | None = None, overdue: bool = False) -> list[dict[str, Any]]:
    """Every workspace's requests, without personal values (the shell: ``confide requests list``)."""
    now = clock.now()
    stmt = _filtered(select(PrivacyRequest), RequestFilters(state=state, overdue=overdue), now)
    rows = (await uow.session.scalars(stmt.order_by(PrivacyRequest.due_at, PrivacyRequest.id))).all()
    return [{**summary(row, now), "workspace_id": row.workspace_id} for row in rows]


# ---------------------------------------------------------------- public: the requester's own view
async def public_summary(uow: UnitOfWork, request_id: str) -> dict[str, Any]:
    """What a requester's page shows by the request's id: type, state, due date, nothing personal."""
    if not isinstance(request_id, str) or not request_id or len(request_id) > 64:
        raise NotFound("request not found")
    row = await uow.session.get(PrivacyRequest, request_id)
    if row is None:
        raise NotFound("request not found")
    return summary(row)
