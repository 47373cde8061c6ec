"""Where a chat goes: intake from the widget, offers by strategy (round robin, least busy,
manual queue), offer time-outs, accept, transfer, close, operator status and availability."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from confide.auth import visitor_tokens
from confide.auth.actors import OperatorActor, VisitorActor
from confide.chats import service as chats
from confide.chats.models import Conversation
from confide.chats.schemas import StartConversationIn
from confide.core import clock
from confide.core.db import UnitOfWork
from confide.core.errors import Conflict, Invalid, NotFound, Offline
from confide.core.runtime import Runtime
from confide.permissions.access import (
    access_conversation_by_id,
    access_department_by_id,
    access_operator_by_id,
)
from confide.users.models import Operator, OperatorDepartment
from confide.users.service import operator_topic
from confide.visitors import service as visitors
from confide.workspaces import service as workspaces
from confide.workspaces.models import Department, Site

STATUSES = ("online", "away", "offline")


def dept_topic(department_id: str) -> str:
    return f"dept:{department_id}"


# ---------------------------------------------------------------- availability and intake
async def online_operator_count(uow: UnitOfWork, site: Site) -> int:
    stmt = (
        select(func.count(func.distinct(Operator.id)))
        .join(OperatorDepartment, OperatorDepartment.operator_id == Operator.id)
        .join(Department, Department.id == OperatorDepartment.department_id)
        .where(Department.site_id == site.id, Operator.status == "online", Operator.disabled.is_(False))
    )
    return int(await uow.session.scalar(stmt) or 0)


async def is_available(uow: UnitOfWork, site: Site) -> bool:
    return workspaces.is_open(site) and await online_operator_count(uow, site) > 0


async def widget_config(uow: UnitOfWork, site: Site) -> dict[str, Any]:
    departments = await workspaces.departments_of_site(uow, site.id)
    open_now = workspaces.is_open(site)
    return {
        "site": {
            "name": site.name,
            "privacy_policy_url": site.privacy_policy_url,
            "greeting": site.greeting,
            "color": site.color,
        },
        "prechat_form": {"fields": site.prechat_fields},
        "purposes": site.purposes,
        "departments": [{"id": d.id, "name": d.name} for d in departments],
        "available": open_now and await online_operator_count(uow, site) > 0,
        "open_now": open_now,
    }


async def _department_for(uow: UnitOfWork, site: Site, department_id: str | None) -> Department:
    if department_id is not None:
        dept = await uow.session.get(Department, department_id) if isinstance(department_id, str) else None
        return workspaces.check_department_belongs(dept, site)
    departments = await workspaces.departments_of_site(uow, site.id)
    if not departments:
        raise Offline("no operator is available")
    return departments[0]


async def start_chat(rt: Runtime, uow: UnitOfWork, site: Site, data: StartConversationIn) -> dict[str, Any]:
    """The visitor submitted the pre-chat form: a data subject, a conversation, a token, then routing."""
    fields, consents = visitors.validate_answers(site, data.fields, data.consents)
    dept = await _department_for(uow, site, data.department_id)
    if not await is_available(uow, site):
        raise Offline("no operator is available")
    visitor = await visitors.create_visitor(rt, uow, site, fields, consents)
    conv = await chats.start_conversation(rt, uow, site=site, visitor=visitor, department=dept, page_url=data.page_url)
    await route(rt, uow, conv)
    rt.publish(uow, dept_topic(dept.id), {"type": "queue_changed"})
    actor = VisitorActor(visitor_id=visitor.id, site_id=site.id, workspace_id=site.workspace_id)
    token, expires = visitor_tokens.issue(rt.visitor_tokens, actor, rt.settings.visitor_token_ttl_s)
    return {
        "token": token,
        "visitor_id": visitor.id,
        "conversation_id": conv.id,
        "expires_at": clock.iso(expires),
    }


# ---------------------------------------------------------------- offers
async def active_chat_count(uow: UnitOfWork, operator_id: str) -> int:
    return int(
        await uow.session.scalar(
            select(func.count())
            .select_from(Conversation)
            .where(Conversation.operator_id == operator_id, Conversation.status == "active")
        )
        or 0
    )


async def _candidates(uow: UnitOfWork, dept: Department, exclude: set[str]) -> list[tuple[Operator, int]]:
    """Online operators of the department with a free slot, with their number of active chats."""
    ops = (
        await uow.session.scalars(
            select(Operator)
            .join(OperatorDepartment, OperatorDepartment.operator_id == Operator.id)
            .where(
                OperatorDepartment.department_id == dept.id, Operator.status == "online", Operator.disabled.is_(False)
            )
            .order_by(Operator.id)
        )
    ).all()
    out = []
    for op in ops:
        if op.id in exclude:
            continue
        active = await active_chat_count(uow, op.id)
        pending = int(
            await uow.session.scalar(
                select(func.count())
                .select_from(Conversation)
                .where(Conversation.offered_to == op.id, Conversation.status == "queued")
            )
            or 0
        )
        if active + pending < op.max_chats:
            out.append((op, active))
    return out


def _pick(dept: Department, candidates: list[tuple[Operator, int]]) -> Operator | None:
    if not candidates:
        return None
    if dept.strategy == "least_busy":
        epoch = clock.now().replace(year=1970, month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
        return min(candidates, key=lambda c: (c[1], c[0].last_assigned_at or epoch, c[0].id))[0]
    # round robin: the first operator after the last one offered, in a stable order
    after = [op for op, _ in candidates if dept.rr_last_operator_id is None or op.id > dept.rr_last_operator_id]
    return after[0] if after else candidates[0][0]


async def route(rt: Runtime, uow: UnitOfWork, conv: Conversation) -> None:
    """Offer a queued chat to the next operator, by the department's strategy."""
    if conv.status != "queued" or conv.offered_to is not None:
        return
    dept = await uow.session.get(Department, conv.department_id)
    if dept is None or dept.strategy == "manual":
        return
    choice = _pick(dept, await _candidates(uow, dept, set(conv.offered_history or [])))
    if choice is None:
        return
    now = clock.now()
    conv.offered_to = choice.id
    conv.offer_expires_at = now + timedelta(seconds=dept.offer_timeout_s)
    conv.offered_history = [*(conv.offered_history or []), choice.id]
    dept.rr_last_operator_id = choice.id
    choice.last_assigned_at = now
    await uow.session.flush()
    rt.publish(
        uow,
        operator_topic(choice.id),
        {
            "type": "offer",
            "conversation": await chats.operator_view(rt, uow, conv),
            "expires_at": clock.iso(conv.offer_expires_at),
        },
    )
    rt.publish(uow, dept_topic(dept.id), {"type": "queue_changed"})


async def route_department(rt: Runtime, uow: UnitOfWork, department_id: str) -> None:
    """Offer waiting chats again (an operator came online or freed a slot)."""
    queued = (
        await uow.session.scalars(
            select(Conversation)
            .where(
                Conversation.department_id == department_id,
                Conversation.status == "queued",
                Conversation.offered_to.is_(None),
            )
            .order_by(Conversation.created_at)
            .limit(50)
        )
    ).all()
    for conv in queued:
        # A chat whose every candidate has been offered it may be offered again to a newcomer.
        await route(rt, uow, conv)


async def route_for_operator(rt: Runtime, uow: UnitOfWork, operator_id: str) -> None:
    dept_ids = (
        await uow.session.scalars(
            select(OperatorDepartment.department_id).where(OperatorDepartment.operator_id == operator_id)
        )
    ).all()
    for dept_id in dept_ids:
        await route_department(rt, uow, dept_id)


async def expire_offers(rt: Runtime, uow: UnitOfWork) -> int:
    """Withdraw offers not accepted in time and offer those chats to the next operator."""
    expired = (
        await uow.session.scalars(
            select(Conversation)
            .where(
                Conversation.status == "queued",
                Conversation.offered_to.is_not(None),
                Conversation.offer_expires_at <= clock.now(),
            )
            .limit(200)
        )
    ).all()
    for conv in expired:
        assert conv.offered_to is not None
        rt.publish(uow, operator_topic(conv.offered_to), {"type": "offer_withdrawn", "conversation_id": conv.id})
        conv.offered_to = None
        conv.offer_expires_at = None
        await route(rt, uow, conv)
        rt.publish(uow, dept_topic(conv.department_id), {"type": "queue_changed"})
    return len(expired)


# ---------------------------------------------------------------- operator actions
async def accept(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, conversation_id: str) -> Conversation:
    conv = await access_conversation_by_id(uow.session, actor, conversation_id)
    if conv.status != "queued":
        raise Conflict("this chat has been taken already" if conv.status == "active" else "this chat is closed")
    op = await uow.session.get(Operator, actor.operator_id)
    if op is None or await active_chat_count(uow, op.id) >= op.max_chats:
        raise Conflict("you have reached your maximum number of chats")
    if conv.offered_to and conv.offered_to != op.id:
        rt.publish(uow, operator_topic(conv.offered_to), {"type": "offer_withdrawn", "conversation_id": conv.id})
    await chats.add_system_message(rt, uow, conv, f"{op.name} joined the chat.")
    now = clock.now()
    conv.status = "active"
    conv.operator_id = op.id
    conv.accepted_at = conv.accepted_at or now
    conv.offered_to = None
    conv.offer_expires_at = None
    op.last_assigned_at = now
    await uow.session.flush()
    await chats.publish_change(rt, uow, conv)
    rt.publish(uow, operator_topic(op.id), {"type": "chat", "conversation": await chats.operator_view(rt, uow, conv)})
    await _queue_moved(rt, uow, conv.department_id)
    return conv


async def _queue_moved(rt: Runtime, uow: UnitOfWork, department_id: str) -> None:
    """Everyone still waiting moved up: tell them their new position, and the consoles the new queue."""
    rt.publish(uow, dept_topic(department_id), {"type": "queue_changed"})
    waiting = (
        await uow.session.scalars(
            select(Conversation)
            .where(Conversation.department_id == department_id, Conversation.status == "queued")
            .limit(200)
        )
    ).all()
    for other in waiting:
        rt.publish(
            uow,
            chats.conv_topic(other.id),
            {"type": "status", "conversation_id": other.id, "conversation": await chats.visitor_view(uow, other)},
        )


async def transfer(
    rt: Runtime,
    uow: UnitOfWork,
    actor: OperatorActor,
    conversation_id: str,
    *,
    operator_id: str | None = None,
    department_id: str | None = None,
) -> Conversation:
    if (operator_id is None) == (department_id is None):
        raise Invalid("transfer to an operator or to a department")
    conv = await access_conversation_by_id(uow.session, actor, conversation_id, assigned=not actor.is_admin)
    if conv.status == "closed":
        raise Conflict("this chat is closed")
    previous, old_department, was_queued = conv.operator_id, conv.department_id, conv.status == "queued"
    if conv.offered_to:  # published only on commit, before any new offer of this chat
        rt.publish(uow, operator_topic(conv.offered_to), {"type": "offer_withdrawn", "conversation_id": conv.id})
    if operator_id is not None:
        target = await access_operator_by_id(uow.session, actor, operator_id)
        if target.disabled or target.id == previous:
            raise Invalid("choose another, active operator")
        member = await uow.session.get(OperatorDepartment, (target.id, conv.department_id))
        if member is None and target.role != "admin":
            raise Invalid("that operator is not in this chat's department; transfer to their department instead")
        if await active_chat_count(uow, target.id) >= target.max_chats:
            raise Conflict("that operator has no free slot")
        await chats.add_system_message(rt, uow, conv, f"The chat was transferred to {target.name}.")
        conv.status = "active"
        conv.operator_id = target.id
        conv.accepted_at = conv.accepted_at or clock.now()
        conv.offered_to = None
        await uow.session.flush()
        rt.publish(
            uow, operator_topic(target.id), {"type": "chat", "conversation": await chats.operator_view(rt, uow, conv)}
        )
    else:
        dept = await access_department_by_id(uow.session, actor, department_id)
        if dept.site_id != conv.site_id:
            raise Invalid("that department belongs to another site")
        await chats.add_system_message(rt, uow, conv, f"The chat was transferred to {dept.name}.")
        conv.status = "queued"
        conv.operator_id = None
        conv.department_id = dept.id
        conv.offered_to = None
        conv.offer_expires_at = None
        conv.offered_history = []
        await uow.session.flush()
        await route(rt, uow, conv)
        rt.publish(uow, dept_topic(dept.id), {"type": "queue_changed"})
    if previous:
        rt.publish(
            uow, operator_topic(previous), {"type": "chat_removed", "conversation_id": conv.id, "reason": "transferred"}
        )
    await chats.publish_change(rt, uow, conv)
    if previous:
        await route_for_operator(rt, uow, previous)
    if was_queued:
        await _queue_moved(rt, uow, old_department)
    return conv


async def close_by_operator(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, conversation_id: str) -> None:
    conv = await access_conversation_by_id(uow.session, actor, conversation_id, assigned=not actor.is_admin)
    operator, department, was_queued = conv.operator_id, conv.department_id, conv.status == "queued"
    if conv.offered_to:
        rt.publish(uow, operator_topic(conv.offered_to), {"type": "offer_withdrawn", "conversation_id": conv.id})
    await chats.close(rt, uow, conv, by="operator")
    if operator:
        await route_for_operator(rt, uow, operator)
    if was_queued:
        await _queue_moved(rt, uow, department)


async def close_by_visitor(rt: Runtime, uow: UnitOfWork, actor: VisitorActor, conversation_id: str) -> None:
    conv = await access_conversation_by_id(uow.session, actor, conversation_id)
    operator, department = conv.operator_id, conv.department_id
    if conv.offered_to:
        rt.publish(uow, operator_topic(conv.offered_to), {"type": "offer_withdrawn", "conversation_id": conv.id})
    await chats.close(rt, uow, conv, by="visitor")
    if operator:
        await route_for_operator(rt, uow, operator)
    else:
        await _queue_moved(rt, uow, department)


async def set_status(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, status: object) -> str:
    if status not in STATUSES:
        raise Invalid("status must be online, away or offline")
    op = await uow.session.get(Operator, actor.operator_id)
    if op is None:
        raise NotFound("operator not found")
    op.status = str(status)
    await uow.session.flush()
    rt.publish(uow, operator_topic(op.id), {"type": "status", "status": op.status})
    if op.status == "online":
        await route_for_operator(rt, uow, op.id)
    return op.status


async def queue_for(rt: Runtime, uow: UnitOfWork, actor: OperatorActor) -> list[dict[str, Any]]:
    stmt = select(Conversation).where(Conversation.workspace_id == actor.workspace_id, Conversation.status == "queued")
    if not actor.is_admin:
        stmt = stmt.where(Conversation.department_id.in_(actor.department_ids))
    rows = (await uow.session.scalars(stmt.order_by(Conversation.created_at).limit(200))).all()
    return [await chats.operator_view(rt, uow, conv) for conv in rows]


async def my_chats(rt: Runtime, uow: UnitOfWork, actor: OperatorActor) -> list[dict[str, Any]]:
    rows = (
        await uow.session.scalars(
            select(Conversation)
            .where(Conversation.operator_id == actor.operator_id, Conversation.status == "active")
            .order_by(Conversation.accepted_at)
        )
    ).all()
    return [await chats.operator_view(rt, uow, conv) for conv in rows]


async def console_snapshot(rt: Runtime, uow: UnitOfWork, actor: OperatorActor) -> dict[str, Any]:
    """Everything a console needs when it (re)connects."""
    op = await uow.session.get(Operator, actor.operator_id)
    if op is None:
        raise NotFound("operator not found")
    return {
        "operator": {"id": op.id, "name": op.name, "role": op.role, "status": op.status, "max_chats": op.max_chats},
        "departments": [workspaces.department_view(d) for d in await workspaces.list_departments(uow, actor)],
        "transfer_departments": [
            workspaces.department_view(d) for d in await workspaces.transfer_departments(uow, actor)
        ],
        "chats": await my_chats(rt, uow, actor),
        "queue": await queue_for(rt, uow, actor),
        "canned_replies": [workspaces.canned_reply_view(r) for r in await workspaces.list_canned_replies(uow, actor)],
    }
