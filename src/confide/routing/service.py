"""Where a chat goes: intake from the widget, offers by strategy (round robin, least busy,
manual queue), offer time-outs, accept, transfer, close, operator status and availability, and
the periodic care of the queue (nobody to answer, visitors who left).

Concurrency (every node may run these at once): each read-then-write locks the rows it changes
before reading them (``FOR UPDATE`` on PostgreSQL; SQLite serialises writers). A unit waits for a
lock only on its first row (the conversation an actor acts on, or the operator whose status
changes) and, for accept and transfer, on the one operator who takes the chat. Routing itself
(offers, sweeps, re-routing after a close) takes every other row ``SKIP LOCKED`` and never waits:
a row someone holds is being acted on right now, and a chat left unoffered that way is offered
by the periodic job a second later. So no two units can wait on each other in a circle.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from confide.auth import visitor_tokens
from confide.auth.actors import OperatorActor, VisitorActor
from confide.chats import service as chats
from confide.chats.schemas import StartConversationIn
from confide.chats.service import Conversation
from confide.consent import notices as consent_notices
from confide.core import clock
from confide.core.db import UnitOfWork
from confide.core.errors import Conflict, Invalid, NotFound, Offline
from confide.core.runtime import Runtime
from confide.offline import service as offline
from confide.permissions.access import (
    access_conversation_by_id,
    access_conversation_to_accept,
    access_conversation_to_act,
    access_department_by_id,
    access_operator_by_id,
)
from confide.prospects import service as prospects
from confide.realtime import events
from confide.realtime.events import (
    ChatAssigned,
    ChatRemoved,
    Offer,
    OfferWithdrawn,
    OperatorStatus,
    QueueChanged,
    QueueMoved,
)
from confide.redaction import service as redaction
from confide.users import accounts as user_accounts
from confide.users import operators as user_operators
from confide.users import presence as user_presence
from confide.users.operators import Operator
from confide.verified import service as verified
from confide.verified.schemas import IdentityClaim
from confide.visitors import service as visitors
from confide.workspaces import service as workspaces
from confide.workspaces.service import Department, Site

dept_topic = events.department_topic  # kept for callers not yet moved to realtime.events (ADR 17)
STATUSES = user_presence.STATUSES
UNANSWERED_REASONS = ("no_operator", "no_answer", "closed_hours")


# ---------------------------------------------------------------- availability and intake
async def online_operator_count(uow: UnitOfWork, site: Site) -> int:
    """Operators of the site's departments who chose "online" and have a live console."""
    return await user_presence.count_available(uow, [d.id for d in await workspaces.departments_of_site(uow, site.id)])


async def is_available(uow: UnitOfWork, site: Site) -> bool:
    return workspaces.is_open(site) and await online_operator_count(uow, site) > 0


async def widget_config(uow: UnitOfWork, site: Site, language: str | None = None) -> dict[str, Any]:
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
        "purposes": await consent_notices.widget_purposes(uow, site, language),  # ---- consent: purposes + notice
        "departments": [{"id": d.id, "name": d.name} for d in departments],
        "available": open_now and await online_operator_count(uow, site) > 0,
        "open_now": open_now,
        # what this site masks in what the visitor writes (the widget says so: redaction)
        "redaction": await redaction.widget_flags(uow, site.id),
    }


async def _department_for(uow: UnitOfWork, site: Site, department_id: str | None) -> Department:
    if department_id is not None:
        dept = await workspaces.get_department(uow, department_id) if isinstance(department_id, str) else None
        return workspaces.check_department_belongs(dept, site)
    departments = await workspaces.departments_of_site(uow, site.id)
    if not departments:
        raise Offline("no operator is available")
    return departments[0]


async def start_chat(rt: Runtime, uow: UnitOfWork, site: Site, data: StartConversationIn) -> dict[str, Any]:
    """The visitor submitted the pre-chat form: a data subject, a conversation, a token, then routing."""
    who = await verified.verify(rt, uow, site, data.identity)
    given = dict(data.fields)
    if who is not None:  # the site vouched for these: they fill the form's name and e-mail
        form = {f["key"] for f in site.prechat_fields}
        given.update({k: v for k, v in (("name", who.name), ("email", who.email)) if v and k in form})
    fields, consents = visitors.validate_answers(site, given, data.consents)
    dept = await _department_for(uow, site, data.department_id)
    if not await is_available(uow, site):
        raise Offline("no operator is available")
    if who is None:
        visitor = await visitors.create_visitor(rt, uow, site, fields, consents)
    else:
        visitor = await _verified_visitor(rt, uow, site, who, fields, consents)
    conv = await chats.start_conversation(rt, uow, site=site, visitor=visitor, department=dept, page_url=data.page_url)
    await visitors.record_consents(rt, uow, site, visitor, consents, conversation_id=conv.id)  # ---- consent
    await prospects.create_automatically(rt, uow, site, visitor, department_id=dept.id, conversation_id=conv.id)
    await route(rt, uow, conv)
    events.publish(rt, uow, QueueChanged(dept.id))
    actor = VisitorActor(visitor_id=visitor.id, site_id=site.id, workspace_id=site.workspace_id)
    token, expires = visitor_tokens.issue(rt.visitor_tokens, actor, rt.settings.visitor_token_ttl_s)
    result: dict[str, Any] = {
        "token": token,
        "visitor_id": visitor.id,
        "conversation_id": conv.id,
        "expires_at": clock.iso(expires),
    }
    if data.identity is not None:
        result["verified"] = who is not None  # lets the site's developer see that the claim verified
    return result


async def _verified_visitor(
    rt: Runtime, uow: UnitOfWork, site: Site, who: verified.Verified, fields: dict[str, Any], consents: dict[str, Any]
) -> visitors.Visitor:
    """The one visitor record of a verified person: claimed on their first visit from any device,
    found again on every later one (ADR 0022). Their verified name and e-mail fill its fields."""
    fields = {**fields, **{k: v for k, v in (("name", who.name), ("email", who.email)) if v}}
    subject_id, new = await verified.claim_subject(rt, uow, who)
    if new:
        return await visitors.create_visitor(rt, uow, site, fields, consents, visitor_id=subject_id)
    visitor = await visitors.get_visitor(uow, subject_id)
    if visitor is None:  # pragma: no cover - the link goes with its visitor (foreign key, cascade)
        raise NotFound("visitor not found")
    await visitors.update_details(rt, uow, site, visitor, fields, consents)
    return visitor


async def identify(rt: Runtime, uow: UnitOfWork, site: Site, claim: IdentityClaim) -> dict[str, Any]:
    """The widget was opened by a visitor the site says is logged in: if the claim verifies and
    the person has chatted here before, a token for their visitor record and their conversations
    (a new device gets its history). Reads only: a first visit stores nothing until a chat starts."""
    who = await verified.verify(rt, uow, site, claim)
    if who is None:
        return {"verified": False}
    subject_id = await verified.subject_of(rt, uow, who)
    if subject_id is None:
        return {"verified": True, "conversations": []}
    actor = VisitorActor(visitor_id=subject_id, site_id=site.id, workspace_id=site.workspace_id)
    token, expires = visitor_tokens.issue(rt.visitor_tokens, actor, rt.settings.visitor_token_ttl_s)
    return {
        "verified": True,
        "token": token,
        "visitor_id": subject_id,
        "expires_at": clock.iso(expires),
        "conversations": await chats.visitor_history(rt, uow, actor),
    }


# ---------------------------------------------------------------- offers
async def active_chat_count(uow: UnitOfWork, operator_id: str) -> int:
    return await chats.active_count(uow, operator_id)


async def _candidates(uow: UnitOfWork, dept: Department) -> list[tuple[Operator, int]]:
    """Available operators of the department with a free slot, with their number of active chats.

    Their rows are locked first (in id order), so the slots counted here cannot be taken by
    another node's offer or accept before this unit commits."""
    available = await user_presence.available_operators(uow, dept.id)
    locked = await user_operators.lock_operators(uow, [op.id for op in available])
    taken = await chats.slots_taken(uow, list(locked))
    out = []
    for op_id in sorted(locked):
        op = locked[op_id]
        active, pending = taken[op_id]
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
    """Offer a queued chat to the next operator, by the department's strategy.

    The caller holds the conversation's row lock. Operators not yet offered this chat come first;
    when every available one has let an offer lapse, a new round starts (in turn again), so a
    waiting chat is never left unoffered while someone could take it. A department or operator
    another unit is routing right now is skipped; the periodic ``offer_waiting`` tries again."""
    if conv.status != "queued" or conv.offered_to is not None:
        return
    dept = await workspaces.lock_department(uow, conv.department_id)
    if dept is None or dept.strategy == "manual":
        return
    candidates = await _candidates(uow, dept)
    history = set(conv.offered_history or [])
    fresh = [c for c in candidates if c[0].id not in history]
    if not fresh and candidates:
        chats.withdraw_offer(conv, new_round=True)
        fresh = candidates
    choice = _pick(dept, fresh)
    if choice is None:
        return
    now = clock.now()
    chats.offer(conv, choice.id, now + timedelta(seconds=dept.offer_timeout_s))
    workspaces.advance_round_robin(dept, choice.id)
    user_presence.mark_assigned(choice, now)
    await uow.session.flush()
    offer = Offer(choice.id, await chats.operator_view(rt, uow, conv), clock.iso(conv.offer_expires_at))
    events.publish(rt, uow, offer)
    events.publish(rt, uow, QueueChanged(dept.id))


async def route_department(rt: Runtime, uow: UnitOfWork, department_id: str) -> None:
    """Offer waiting chats again (an operator came online or freed a slot)."""
    for conv in await chats.waiting_unoffered(uow, department_id):
        await route(rt, uow, conv)


async def route_for_operator(rt: Runtime, uow: UnitOfWork, operator_id: str) -> None:
    for dept_id in await user_operators.department_ids_of(uow, operator_id):
        await route_department(rt, uow, dept_id)


async def expire_offers(rt: Runtime, uow: UnitOfWork) -> int:
    """Withdraw offers not accepted in time and offer those chats to the next operator in turn."""
    expired = await chats.expired_offers(uow)
    for conv in expired:
        assert conv.offered_to is not None
        events.publish(rt, uow, OfferWithdrawn(conv.offered_to, conv.id))
        chats.withdraw_offer(conv)
        await route(rt, uow, conv)
        events.publish(rt, uow, QueueChanged(conv.department_id))
    return len(expired)


async def offer_waiting(rt: Runtime, uow: UnitOfWork) -> None:
    """Periodic: chats waiting with no offer are offered to whoever can take them now."""
    for dept_id in await chats.departments_waiting(uow):
        await route_department(rt, uow, dept_id)


# ---------------------------------------------------------------- operator actions
async def accept(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, conversation_id: str) -> Conversation:
    conv = await access_conversation_to_accept(uow.session, actor, conversation_id, for_update=True)
    if conv.status != "queued":
        raise Conflict("this chat has been taken already" if conv.status == "active" else "this chat is closed")
    op = await user_operators.lock_operator(uow, actor.operator_id)  # slots: counted and taken under the lock
    if op is None or await chats.active_count(uow, op.id) >= op.max_chats:
        raise Conflict("you have reached your maximum number of chats")
    if conv.offered_to and conv.offered_to != op.id:
        events.publish(rt, uow, OfferWithdrawn(conv.offered_to, conv.id))
    await chats.assign(rt, uow, conv, op.id, f"{op.name} joined the chat.")
    user_presence.mark_assigned(op, clock.now())
    await uow.session.flush()
    await chats.publish_change(rt, uow, conv)
    events.publish(rt, uow, ChatAssigned(op.id, await chats.operator_view(rt, uow, conv)))
    _queue_moved(rt, uow, conv, conv.department_id)
    return conv


def _queue_moved(rt: Runtime, uow: UnitOfWork, conv: Conversation, department_id: str) -> None:
    """``conv`` left the department's queue: everyone behind it moved up. One event for the whole
    queue (each waiting visitor's socket re-reads its own place) and the consoles reload it."""
    events.publish(rt, uow, QueueMoved(department_id, events.queue_rank(conv.created_at)))


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
    conv = await access_conversation_to_act(uow.session, actor, conversation_id, for_update=True)
    if conv.status == "closed":
        raise Conflict("this chat is closed")
    previous, old_department, was_queued = conv.operator_id, conv.department_id, conv.status == "queued"
    if conv.offered_to:  # published only on commit, before any new offer of this chat
        events.publish(rt, uow, OfferWithdrawn(conv.offered_to, conv.id))
    if operator_id is not None:
        target = await access_operator_by_id(uow.session, actor, operator_id)
        if target.disabled or target.id == previous:
            raise Invalid("choose another, active operator")
        if not await user_accounts.may_be_given(uow, target, conv.department_id):
            raise Invalid("that operator is not in this chat's department; transfer to their department instead")
        await user_operators.lock_operator(uow, target.id)  # their slots: counted and taken under the lock
        if await chats.active_count(uow, target.id) >= target.max_chats:
            raise Conflict("that operator has no free slot")
        await chats.assign(rt, uow, conv, target.id, f"The chat was transferred to {target.name}.")
        events.publish(rt, uow, ChatAssigned(target.id, await chats.operator_view(rt, uow, conv)))
    else:
        dept = await access_department_by_id(uow.session, actor, department_id)
        if dept.site_id != conv.site_id:
            raise Invalid("that department belongs to another site")
        await chats.requeue(rt, uow, conv, dept.id, f"The chat was transferred to {dept.name}.")
        await route(rt, uow, conv)
        events.publish(rt, uow, QueueChanged(dept.id))
    if previous:
        events.publish(rt, uow, ChatRemoved(previous, conv.id, "transferred"))
    await chats.publish_change(rt, uow, conv)
    if previous:
        await route_for_operator(rt, uow, previous)
    if was_queued:
        _queue_moved(rt, uow, conv, old_department)
    return conv


async def _close(rt: Runtime, uow: UnitOfWork, conv: Conversation, *, by: str, line: str | None = None) -> None:
    """Close a locked conversation: withdraw its offer, free its operator's slot, move its queue."""
    operator, department, was = conv.operator_id, conv.department_id, conv.status
    if was == "closed":
        return
    if conv.offered_to:
        events.publish(rt, uow, OfferWithdrawn(conv.offered_to, conv.id))
    await chats.close(rt, uow, conv, by=by, line=line)
    if operator and was == "active":
        await route_for_operator(rt, uow, operator)
    if was == "queued":
        _queue_moved(rt, uow, conv, department)


async def close_by_operator(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, conversation_id: str) -> None:
    conv = await access_conversation_to_act(uow.session, actor, conversation_id, for_update=True)
    await _close(rt, uow, conv, by="operator")


async def close_by_visitor(rt: Runtime, uow: UnitOfWork, actor: VisitorActor, conversation_id: str) -> None:
    conv = await access_conversation_by_id(uow.session, actor, conversation_id, for_update=True)
    await _close(rt, uow, conv, by="visitor")


async def set_status(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, status: object) -> str:
    op = await user_presence.set_status(uow, actor.operator_id, status)
    events.publish(rt, uow, OperatorStatus(op.id, op.status))
    if op.status == "online":
        await route_for_operator(rt, uow, op.id)
    # Waiting visitors learn at once whether anyone can still answer (not only at the next sweep).
    await mark_unanswered(rt, uow, department_ids=await user_operators.department_ids_of(uow, op.id))
    return op.status


async def operator_arrived(rt: Runtime, uow: UnitOfWork, operator_id: str) -> None:
    """A console of this operator came alive (first heartbeat): if their chosen status is online,
    waiting chats may be offered to them now."""
    if await user_presence.is_available(uow, operator_id):
        await route_for_operator(rt, uow, operator_id)


# ---------------------------------------------------------------- nobody to answer, visitors who left
async def leave_message(
    rt: Runtime,
    uow: UnitOfWork,
    actor: VisitorActor,
    conversation_id: str,
    *,
    email: object = None,
    phone: object = None,
    message: object = None,
) -> str:
    """A waiting visitor gives up on the queue: what they wrote becomes an offline request, and the
    chat is closed. Returns the offline request's id."""
    conv = await access_conversation_by_id(uow.session, actor, conversation_id, for_update=True)
    if conv.status != "queued":
        raise Conflict(
            "an operator has joined: write to them here" if conv.status == "active" else "this chat is closed"
        )
    if message is not None and (not isinstance(message, str) or len(message) > 4000):
        raise Invalid("message must be text of at most 4000 characters")
    site = await workspaces.get_site(uow, conv.site_id)
    visitor = await visitors.get_visitor(uow, conv.visitor_id)
    if site is None or visitor is None:
        raise NotFound("conversation not found")
    await visitors.add_contact(rt, uow, site, visitor, email=email, phone=phone)
    text = "\n".join(t for t in (await chats.visitor_text(rt, uow, conv), (message or "").strip()) if t)
    request = await offline.store_request(
        rt,
        uow,
        site,
        visitor,
        department_id=conv.department_id,
        message=text or "(no message)",
        page_url=await chats.page_url(rt, uow, conv),
    )
    await _close(rt, uow, conv, by="visitor", line="The visitor left a message instead of waiting.")
    return request.id


def _unanswered_reason(site: Site | None, available: int, conv: Conversation, wait_s: float) -> str | None:
    if site is not None and not workspaces.is_open(site):
        return "closed_hours"
    if available == 0:
        return "no_operator"
    since = conv.queued_at or conv.created_at
    if clock.now() - since >= timedelta(seconds=wait_s):
        return "no_answer"
    return None


async def mark_unanswered(rt: Runtime, uow: UnitOfWork, *, department_ids: list[str] | None = None) -> int:
    """Tell each waiting visitor (of these departments; periodically: all) whether anyone can answer,
    and why not; returns the number of changes."""
    changed = 0
    sites: dict[str, Site | None] = {}
    available: dict[str, int] = {}
    for conv in await chats.queued_conversations(uow, lock=True, department_ids=department_ids):
        if conv.site_id not in sites:
            sites[conv.site_id] = await workspaces.get_site(uow, conv.site_id)
        if conv.department_id not in available:
            available[conv.department_id] = await user_presence.count_available(uow, [conv.department_id])
        reason = _unanswered_reason(
            sites[conv.site_id], available[conv.department_id], conv, rt.settings.unanswered_after_s
        )
        if chats.set_unanswered(conv, reason):
            changed += 1
            await chats.publish_status(rt, uow, conv)
    return changed


async def has_queued(rt: Runtime, uow: UnitOfWork) -> bool:
    """Probe (read-only): offers to expire, chats to offer, visitors to tell: only with a chat waiting."""
    return await chats.any_queued(uow)


async def _abandoned(rt: Runtime, uow: UnitOfWork) -> list[str]:
    since = clock.now() - timedelta(seconds=rt.settings.visitor_abandon_s)
    candidates = await chats.open_created_before(uow, since)
    seen = await user_presence.visitors_seen_since(uow, candidates, since)
    return [c for c in candidates if c not in seen]


async def has_abandoned(rt: Runtime, uow: UnitOfWork) -> bool:
    """Probe (read-only): whether ``close_abandoned`` has a chat to close."""
    return bool(await _abandoned(rt, uow))


async def close_abandoned(rt: Runtime, uow: UnitOfWork) -> int:
    """Periodic: a visitor with no live socket on any node for ``visitor_abandon_s`` has left: a
    waiting chat leaves the queue, an active one is closed and frees its operator's slot."""
    closed = 0
    for conv_id in await _abandoned(rt, uow):
        conv = await chats.lock_conversation(uow, conv_id)
        if conv is None or conv.status == "closed":
            continue
        line = "The visitor left the queue." if conv.status == "queued" else "The visitor left."
        await _close(rt, uow, conv, by="abandoned", line=line)
        closed += 1
    return closed


async def purge_presence(rt: Runtime, uow: UnitOfWork) -> int:
    """Periodic: heartbeats expired long enough ago that nothing reads them any more."""
    keep_s = rt.settings.visitor_abandon_s + rt.settings.presence_ttl_s
    return await user_presence.purge_presence(uow, clock.now() - timedelta(seconds=keep_s))


# ---------------------------------------------------------------- console views
async def queue_for(rt: Runtime, uow: UnitOfWork, actor: OperatorActor) -> list[dict[str, Any]]:
    return [await chats.operator_view(rt, uow, conv) for conv in await chats.queue_of(uow, actor)]


async def my_chats(rt: Runtime, uow: UnitOfWork, actor: OperatorActor) -> list[dict[str, Any]]:
    return [await chats.operator_view(rt, uow, conv) for conv in await chats.active_of(uow, actor.operator_id)]


async def console_snapshot(rt: Runtime, uow: UnitOfWork, actor: OperatorActor) -> dict[str, Any]:
    """Everything a console needs when it (re)connects."""
    op = await user_operators.get_operator(uow, actor.operator_id)
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
