"""Conversations: starting one, the visitor's and the operators' views, history, read state,
closing, rating, routing's questions and moves, and Stored Chats search over keyed blind indexes.
The message write path (batched) is ``chats.messages``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, select

from confide.auth.actors import OperatorActor, VisitorActor
from confide.chats.messages import IndexedTerms as IndexedTerms  # re-exported: the write path's callers
from confide.chats.messages import aad as _aad
from confide.chats.messages import add_system_message as add_system_message
from confide.chats.messages import message_view as message_view
from confide.chats.messages import store_messages as store_messages
from confide.chats.messages import store_messages_sqlite as store_messages_sqlite
from confide.chats.models import Conversation as Conversation  # re-exported: routing holds conversations
from confide.chats.models import ConversationTerm, Message
from confide.chats.schemas import StoredChatFilters
from confide.core import clock, crypto, expiry
from confide.core.db import UnitOfWork
from confide.core.errors import Invalid
from confide.core.runtime import Runtime
from confide.permissions.access import (
    access_conversation_by_id,
    access_transcript_by_id,
    conversation_scope,
    visitor_conversation_scope,
    without_restricted,
)
from confide.permissions.policy import Permission
from confide.realtime import events
from confide.realtime.events import ChatChanged, QueueChanged, QueueSpot, ReadUpTo, VisitorStatus
from confide.users import operators as user_operators
from confide.verified import service as verified
from confide.visitors import service as visitors
from confide.visitors.service import Visitor
from confide.workspaces import service as workspaces
from confide.workspaces.service import Department, Site

conv_topic = events.conversation_topic  # kept for callers not yet moved to realtime.events (ADR 17)
_CONV = cast(Table, Conversation.__table__)
_MSG = cast(Table, Message.__table__)
_TERMS = cast(Table, ConversationTerm.__table__)


async def start_conversation(
    rt: Runtime, uow: UnitOfWork, *, site: Site, visitor: Visitor, department: Department, page_url: str | None
) -> Conversation:
    key = await rt.keyring.get_for_write(uow.session, visitor.id)
    conv_id = crypto.new_id()
    conv = Conversation(
        id=conv_id,
        workspace_id=site.workspace_id,
        site_id=site.id,
        department_id=department.id,
        visitor_id=visitor.id,
        operator_id=None,
        status="queued",
        seq=0,
        visitor_read_seq=0,
        operator_read_seq=0,
        page_url_enc=key.encrypt(page_url, _aad("conversations.page_url", conv_id)) if page_url else None,
        offered_history=[],
        created_at=clock.now(),
        queued_at=clock.now(),
    )
    uow.session.add(conv)
    await uow.session.flush()
    return conv


# ---------------------------------------------------------------- views
async def queue_position(uow: UnitOfWork, conv: Conversation) -> int | None:
    if conv.status != "queued":
        return None
    ahead = await uow.session.scalar(
        select(func.count())
        .select_from(Conversation)
        .where(
            Conversation.department_id == conv.department_id,
            Conversation.status == "queued",
            Conversation.created_at < conv.created_at,
        )
    )
    return int(ahead or 0) + 1


async def visitor_view(uow: UnitOfWork, conv: Conversation) -> dict[str, Any]:
    operator = None
    if conv.operator_id and conv.status != "queued":
        operator = {"name": await user_operators.operator_name(uow, conv.operator_id)}
    return {
        "id": conv.id,
        "status": conv.status,
        "queue_position": await queue_position(uow, conv),
        "operator": operator,
        "seq": conv.seq,
        "operator_read_seq": conv.operator_read_seq,
        "rating": conv.rating,
        "created_at": clock.iso(conv.created_at),
        "closed_at": clock.iso(conv.closed_at),
        "unanswered": unanswered_view(conv),
    }


def unanswered_view(conv: Conversation) -> dict[str, Any] | None:
    """Why nobody can answer this waiting chat now (the widget then offers to leave a message)."""
    if conv.status != "queued" or conv.unanswered_reason is None:
        return None
    return {"reason": conv.unanswered_reason, "since": clock.iso(conv.unanswered_since)}


def queue_spot(conv: Conversation) -> QueueSpot | None:
    """Where a waiting chat stands in its department's queue (``queue_position`` counts the chats
    of the department created before it); None once it no longer waits."""
    if conv.status != "queued":
        return None
    return QueueSpot(conv.department_id, events.queue_rank(conv.created_at))


async def visitor_status(uow: UnitOfWork, conv: Conversation) -> VisitorStatus:
    """The visitor's view as a ``status`` event, with the chat's place in its queue."""
    return VisitorStatus(conv.id, await visitor_view(uow, conv), queue_spot(conv))


async def publish_status(rt: Runtime, uow: UnitOfWork, conv: Conversation) -> None:
    """The visitor's view only (queue position, unanswered), on the conversation topic."""
    events.publish(rt, uow, await visitor_status(uow, conv))


async def operator_view(rt: Runtime, uow: UnitOfWork, conv: Conversation) -> dict[str, Any]:
    session = uow.session
    visitor = await visitors.get_visitor(uow, conv.visitor_id)
    site = await workspaces.get_site(uow, conv.site_id)
    dept = await workspaces.get_department(uow, conv.department_id)
    key = await rt.keyring.get(session, conv.visitor_id)
    profile = await visitors.profile(rt, uow, visitor) if visitor else {}
    profile["page_url"] = (
        key.decrypt(conv.page_url_enc, _aad("conversations.page_url", conv.id)) if conv.page_url_enc else None
    )
    profile["field_labels"] = {f["key"]: f["label"] for f in site.prechat_fields} if site else {}
    # A verified identity (ADR 0022): the person's earlier conversations in this chat's department
    # (this view goes to every operator who may see this chat, so nothing of another department is
    # listed). Each link opens through the operator's own access check.
    profile["verified"] = await verified.is_verified(uow, conv.visitor_id)
    profile["earlier"] = await _earlier(uow, conv) if profile["verified"] else []
    # Unread: what the visitor wrote that the operator has not seen (not system lines, not own replies).
    unread = await session.scalar(
        select(func.count())
        .select_from(Message)
        .where(Message.conversation_id == conv.id, Message.sender == "visitor", Message.seq > conv.operator_read_seq)
    )
    return {
        "id": conv.id,
        "status": conv.status,
        "site": {"id": conv.site_id, "name": site.name if site else None},
        "department": {"id": conv.department_id, "name": dept.name if dept else None},
        "operator_id": conv.operator_id,
        "visitor": profile,
        "seq": conv.seq,
        "visitor_read_seq": conv.visitor_read_seq,
        "operator_read_seq": conv.operator_read_seq,
        "unread": int(unread or 0),
        "rating": conv.rating,
        "rating_comment": (
            key.decrypt(conv.rating_comment_enc, _aad("conversations.rating_comment", conv.id))
            if conv.rating_comment_enc
            else None
        ),
        "created_at": clock.iso(conv.created_at),
        "accepted_at": clock.iso(conv.accepted_at),
        "closed_at": clock.iso(conv.closed_at),
        "waiting_since": clock.iso(conv.created_at),
        "offered_to": conv.offered_to,
        "offer_expires_at": clock.iso(conv.offer_expires_at),
    }


async def _earlier(uow: UnitOfWork, conv: Conversation, limit: int = 10) -> list[dict[str, Any]]:
    found = await uow.session.execute(
        select(Conversation.id, Conversation.created_at, Conversation.status)
        .where(
            Conversation.visitor_id == conv.visitor_id,
            Conversation.department_id == conv.department_id,
            Conversation.id != conv.id,
        )
        .order_by(Conversation.created_at.desc())
        .limit(limit)
    )
    return [{"id": cid, "created_at": clock.iso(at), "status": status} for cid, at, status in found]


async def visitor_history(
    rt: Runtime, uow: UnitOfWork, actor: VisitorActor, *, limit: int = 20, messages: int = 200
) -> list[dict[str, Any]]:
    """The visitor's own conversations, newest first, each with its last ``messages`` messages:
    a verified person's history on a new device (ADR 0022)."""
    stmt = visitor_conversation_scope(actor, select(Conversation))
    convs = (await uow.session.scalars(stmt.order_by(Conversation.created_at.desc()).limit(limit))).all()
    out = []
    for conv in convs:
        view = await visitor_view(uow, conv)
        view["messages"] = await messages_after(rt, uow, conv, max(0, conv.seq - messages), limit=messages)
        out.append(view)
    return out


async def publish_change(rt: Runtime, uow: UnitOfWork, conv: Conversation) -> None:
    """After a status change: the visitor's view and the operators' view, on the conversation topic."""
    events.publish(rt, uow, await visitor_status(uow, conv))
    events.publish(rt, uow, ChatChanged(conv.id, await operator_view(rt, uow, conv)))


async def messages_after(
    rt: Runtime, uow: UnitOfWork, conv: Conversation, after_seq: int, limit: int = 1000
) -> list[dict[str, Any]]:
    key = await rt.keyring.get(uow.session, conv.visitor_id)
    found = (
        await uow.session.scalars(
            select(Message)
            .where(Message.conversation_id == conv.id, Message.seq > after_seq)
            .order_by(Message.seq)
            .limit(limit)
        )
    ).all()
    names = await user_operators.operator_names(uow, {m.sender_id for m in found if m.sender == "operator"})
    rows = [(m, names.get(m.sender_id) if m.sender == "operator" else None) for m in found]
    return [
        message_view(
            message_id=m.id,
            seq=m.seq,
            client_id=m.client_id,
            sender=m.sender,
            sender_name=name,
            text=key.decrypt(m.body_enc, _aad("messages.body", m.id)),
            created_at=m.created_at,
        )
        for m, name in rows
    ]


# ---------------------------------------------------------------- read, close, rate
async def mark_read(
    rt: Runtime, uow: UnitOfWork, actor: VisitorActor | OperatorActor, conversation_id: str, seq: object
) -> None:
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise Invalid("seq must be a non-negative integer")
    if isinstance(actor, VisitorActor):
        conv = await access_conversation_by_id(uow.session, actor, conversation_id, for_update=True)
        seq = min(seq, conv.seq)
        if seq <= conv.visitor_read_seq:
            return
        conv.visitor_read_seq = seq
        who: events.Party = "visitor"
    else:
        conv = await access_conversation_by_id(uow.session, actor, conversation_id, assigned=True, for_update=True)
        seq = min(seq, conv.seq)
        if seq <= conv.operator_read_seq:
            return
        conv.operator_read_seq = seq
        who = "operator"
    events.publish(rt, uow, ReadUpTo(conv.id, who, seq))


_CLOSE_LINES = {
    "visitor": "The visitor ended the chat.",
    "operator": "The chat was closed.",
    "abandoned": "The visitor left.",
}


async def close(rt: Runtime, uow: UnitOfWork, conv: Conversation, *, by: str, line: str | None = None) -> None:
    """Close the chat with a system line. The caller holds the row lock (loaded ``for_update``)."""
    if conv.status == "closed":
        return
    was = conv.status
    await add_system_message(rt, uow, conv, line or _CLOSE_LINES.get(by, "The chat was closed."))
    conv.status = "closed"
    conv.closed_at = clock.now()
    conv.closed_by = by
    conv.offered_to = None
    conv.offer_expires_at = None
    conv.unanswered_reason = None
    conv.unanswered_since = None
    await publish_change(rt, uow, conv)
    if was == "queued":
        events.publish(rt, uow, QueueChanged(conv.department_id))


async def rate(
    rt: Runtime, uow: UnitOfWork, actor: VisitorActor, conversation_id: str, score: object, comment: object
) -> None:
    conv = await access_conversation_by_id(uow.session, actor, conversation_id, for_update=True)
    if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
        raise Invalid("score must be a whole number from 1 to 5")
    if comment is not None and (not isinstance(comment, str) or len(comment) > 1000):
        raise Invalid("comment must be text of at most 1000 characters")
    conv.rating = score
    if comment:
        key = await rt.keyring.get_for_write(uow.session, conv.visitor_id)
        conv.rating_comment_enc = key.encrypt(comment, _aad("conversations.rating_comment", conv.id))
    await publish_change(rt, uow, conv)


# ---------------------------------------------------------------- routing's questions and moves
# Routing decides who gets a chat; the conversation rows are this domain's, so routing asks here.
def _locked(stmt: Any, *, skip_locked: bool = False) -> Any:
    """``FOR UPDATE`` (PostgreSQL; SQLite serialises writers), rows read fresh into the session."""
    return stmt.with_for_update(skip_locked=skip_locked).execution_options(populate_existing=True)


async def lock_conversation(uow: UnitOfWork, conversation_id: str) -> Conversation | None:
    """For system sweeps (no actor): the row locked until the unit ends, or ``None`` when another
    unit holds it right now (``SKIP LOCKED``: it is being acted on; the next sweep looks again)."""
    found: Conversation | None = await uow.session.scalar(
        _locked(select(Conversation).where(Conversation.id == conversation_id), skip_locked=True)
    )
    return found


async def active_count(uow: UnitOfWork, operator_id: str) -> int:
    return int(
        await uow.session.scalar(
            select(func.count())
            .select_from(Conversation)
            .where(Conversation.operator_id == operator_id, Conversation.status == "active")
        )
        or 0
    )


async def slots_taken(uow: UnitOfWork, operator_ids: list[str]) -> dict[str, tuple[int, int]]:
    """Per operator: (active chats, chats offered and waiting for their answer)."""
    out = {i: (0, 0) for i in operator_ids}
    if not operator_ids:
        return out
    active = await uow.session.execute(
        select(Conversation.operator_id, func.count())
        .where(Conversation.operator_id.in_(operator_ids), Conversation.status == "active")
        .group_by(Conversation.operator_id)
    )
    for op_id, n in active.all():
        if op_id is not None:
            out[op_id] = (int(n), out[op_id][1])
    pending = await uow.session.execute(
        select(Conversation.offered_to, func.count())
        .where(Conversation.offered_to.in_(operator_ids), Conversation.status == "queued")
        .group_by(Conversation.offered_to)
    )
    for op_id, n in pending.all():
        if op_id is not None:
            out[op_id] = (out[op_id][0], int(n))
    return out


async def waiting_unoffered(uow: UnitOfWork, department_id: str, limit: int = 50) -> list[Conversation]:
    """Queued chats of the department offered to nobody, oldest first; rows another unit holds
    (being accepted or closed right now) are skipped rather than waited for."""
    stmt = (
        select(Conversation)
        .where(
            Conversation.department_id == department_id,
            Conversation.status == "queued",
            Conversation.offered_to.is_(None),
        )
        .order_by(Conversation.created_at)
        .limit(limit)
    )
    return list((await uow.session.scalars(_locked(stmt, skip_locked=True))).all())


async def any_queued(uow: UnitOfWork) -> bool:
    """Whether any chat is waiting (the periodic routing jobs have work only then)."""
    stmt = select(Conversation.id).where(Conversation.status == "queued").limit(1)
    return (await uow.session.scalar(stmt)) is not None


async def departments_waiting(uow: UnitOfWork, limit: int = 200) -> list[str]:
    """Departments with a queued chat that nobody is being offered."""
    stmt = (
        select(Conversation.department_id)
        .where(Conversation.status == "queued", Conversation.offered_to.is_(None))
        .group_by(Conversation.department_id)
        .limit(limit)
    )
    return list((await uow.session.scalars(stmt)).all())


async def expired_offers(uow: UnitOfWork, limit: int = 200) -> list[Conversation]:
    stmt = (
        select(Conversation)
        .where(
            Conversation.status == "queued",
            Conversation.offered_to.is_not(None),
            Conversation.offer_expires_at <= clock.now(),
        )
        .order_by(Conversation.offer_expires_at)
        .limit(limit)
    )
    return list((await uow.session.scalars(_locked(stmt, skip_locked=True))).all())


async def queued_conversations(
    uow: UnitOfWork, *, limit: int = 500, lock: bool = False, department_ids: list[str] | None = None
) -> list[Conversation]:
    stmt = select(Conversation).where(Conversation.status == "queued").order_by(Conversation.created_at).limit(limit)
    if department_ids is not None:
        stmt = stmt.where(Conversation.department_id.in_(department_ids))
    return list((await uow.session.scalars(_locked(stmt, skip_locked=True) if lock else stmt)).all())


async def open_created_before(uow: UnitOfWork, before: datetime, limit: int = 500) -> list[str]:
    """Ids of queued or active chats older than ``before`` (candidates for "the visitor left")."""
    stmt = (
        select(Conversation.id)
        .where(Conversation.status.in_(("queued", "active")), Conversation.created_at < before)
        .order_by(Conversation.created_at)
        .limit(limit)
    )
    return list((await uow.session.scalars(stmt)).all())


async def queue_of(uow: UnitOfWork, actor: OperatorActor) -> list[Conversation]:
    stmt = conversation_scope(actor, select(Conversation), Permission.CHATS_PARTICIPATE).where(
        Conversation.status == "queued"
    )
    return list((await uow.session.scalars(stmt.order_by(Conversation.created_at).limit(200))).all())


async def active_of(uow: UnitOfWork, operator_id: str) -> list[Conversation]:
    stmt = (
        select(Conversation)
        .where(Conversation.operator_id == operator_id, Conversation.status == "active")
        .order_by(Conversation.accepted_at)
    )
    return list((await uow.session.scalars(stmt)).all())


def offer(conv: Conversation, operator_id: str, expires_at: datetime) -> None:
    conv.offered_to = operator_id
    conv.offer_expires_at = expires_at
    conv.offered_history = [*(conv.offered_history or []), operator_id]


def withdraw_offer(conv: Conversation, *, new_round: bool = False) -> None:
    conv.offered_to = None
    conv.offer_expires_at = None
    if new_round:
        conv.offered_history = []


async def assign(rt: Runtime, uow: UnitOfWork, conv: Conversation, operator_id: str, line: str) -> None:
    """The chat becomes the operator's (accepted, or transferred to them), with a system line."""
    await add_system_message(rt, uow, conv, line)
    conv.status = "active"
    conv.operator_id = operator_id
    conv.accepted_at = conv.accepted_at or clock.now()
    conv.offered_to = None
    conv.offer_expires_at = None
    conv.unanswered_reason = None
    conv.unanswered_since = None
    await uow.session.flush()


async def requeue(rt: Runtime, uow: UnitOfWork, conv: Conversation, department_id: str, line: str) -> None:
    """The chat goes back to a queue (transferred to a department): offered afresh."""
    await add_system_message(rt, uow, conv, line)
    conv.status = "queued"
    conv.operator_id = None
    conv.department_id = department_id
    conv.offered_to = None
    conv.offer_expires_at = None
    conv.offered_history = []
    conv.queued_at = clock.now()
    conv.unanswered_reason = None
    conv.unanswered_since = None
    await uow.session.flush()


def set_unanswered(conv: Conversation, reason: str | None) -> bool:
    """Record why nobody can answer; True when that changed (the visitor is then told)."""
    if conv.unanswered_reason == reason:
        return False
    conv.unanswered_reason = reason
    conv.unanswered_since = clock.now() if reason else None
    return True


async def page_url(rt: Runtime, uow: UnitOfWork, conv: Conversation) -> str | None:
    if not conv.page_url_enc:
        return None
    key = await rt.keyring.get(uow.session, conv.visitor_id)
    return key.decrypt(conv.page_url_enc, _aad("conversations.page_url", conv.id))


async def visitor_text(rt: Runtime, uow: UnitOfWork, conv: Conversation) -> str:
    """What the visitor wrote in this chat, in order, one message a line."""
    return "\n".join(m["text"] for m in await messages_after(rt, uow, conv, 0) if m["sender"] == "visitor")


# ---------------------------------------------------------------- Stored Chats
async def search(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, filters: StoredChatFilters
) -> tuple[list[dict[str, Any]], int]:
    stmt = without_restricted(actor, conversation_scope(actor, select(Conversation)), Conversation.visitor_id)
    ws = actor.workspace_id
    if filters.date_from:
        stmt = stmt.where(Conversation.created_at >= filters.date_from)
    if filters.date_to:
        stmt = stmt.where(Conversation.created_at <= filters.date_to)
    for column, value in (
        (Conversation.site_id, filters.site_id),
        (Conversation.department_id, filters.department_id),
        (Conversation.operator_id, filters.operator_id),
        (Conversation.rating, filters.rating),
        (Conversation.status, filters.status),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if filters.visitor:
        stmt = stmt.where(Conversation.visitor_id.in_(visitors.visitor_ids_matching(rt, ws, filters.visitor)))
    if filters.text:
        terms = list(dict.fromkeys(rt.bidx.text_terms(ws, "msg", filters.text)))
        if not terms:
            raise Invalid("search for words of at least two letters")
        matching = (
            select(ConversationTerm.conversation_id)
            .where(ConversationTerm.term.in_(terms))
            .group_by(ConversationTerm.conversation_id)
            .having(func.count() == len(terms))
        )
        stmt = stmt.where(Conversation.id.in_(matching))
    total = int(await uow.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    rows = (
        await uow.session.scalars(
            stmt.order_by(Conversation.created_at.desc(), Conversation.id)
            .offset((filters.page - 1) * filters.per_page)
            .limit(filters.per_page)
        )
    ).all()
    return [await summary_view(rt, uow, conv) for conv in rows], total


def visitor_ids_saying(rt: Runtime, workspace_id: str, text: str, *, limit: int) -> Any:
    """A select of at most ``limit`` distinct visitor ids of the workspace whose chats hold every
    word of ``text`` (through ``conversation_terms``: keyed, never plaintext). Written as a join
    from the first term plus an existence test per further term, so that it streams along the
    term's primary-key range and stops at ``limit``, however many chats say a common word."""
    terms = list(dict.fromkeys(rt.bidx.text_terms(workspace_id, "msg", text)))
    if not terms:
        raise Invalid("value: search for words of at least two letters")
    first = _TERMS.alias("t0")
    stmt = (
        select(Conversation.visitor_id)
        .select_from(first.join(Conversation, Conversation.id == first.c.conversation_id))
        .where(first.c.term == terms[0], Conversation.workspace_id == workspace_id)
    )
    for i, term in enumerate(terms[1:], start=1):
        other = _TERMS.alias(f"t{i}")
        stmt = stmt.where(
            select(other.c.term).where(other.c.term == term, other.c.conversation_id == first.c.conversation_id)
            .exists()
        )
    return stmt.distinct().limit(limit)


async def summary_view(rt: Runtime, uow: UnitOfWork, conv: Conversation) -> dict[str, Any]:
    view = await operator_view(rt, uow, conv)
    operator_name = None
    if conv.operator_id:
        operator_name = await user_operators.operator_name(uow, conv.operator_id)
    view["operator_name"] = operator_name
    view["message_count"] = int(
        await uow.session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.conversation_id == conv.id, Message.sender != "system")
        )
        or 0
    )
    return view


async def transcript(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, conversation_id: str) -> dict[str, Any]:
    conv = await access_transcript_by_id(uow.session, actor, conversation_id)  # restricted: looks missing
    view = await summary_view(rt, uow, conv)
    view["messages"] = await messages_after(rt, uow, conv, 0, limit=100_000)
    return view


# ---- consent: an operator's record of a consent statement refers to one visitor message
async def is_visitor_message(uow: UnitOfWork, conv: Conversation, message_id: object) -> bool:
    """Is ``message_id`` a message the visitor wrote in this conversation?"""
    if not isinstance(message_id, str) or len(message_id) > 64:
        return False
    found = await uow.session.scalar(
        select(Message.id).where(
            Message.id == message_id, Message.conversation_id == conv.id, Message.sender == "visitor"
        )
    )
    return found is not None


# ---------------------------------------------------------------- retention (ADR 0030)
# The retention sweep asks here for closed chats of a site past their period and deletes them by
# id; messages, word-index rows and redacted originals go with them (ON DELETE CASCADE).
def _expired_chats(criteria: expiry.Expired) -> list[Any]:
    return [
        Conversation.workspace_id == criteria.workspace_id,
        Conversation.site_id == criteria.site_id,
        Conversation.status == "closed",
        func.coalesce(Conversation.closed_at, Conversation.last_message_at, Conversation.created_at)
        < criteria.before,
        expiry.not_held(Conversation.visitor_id, criteria.held_visitors),
        expiry.not_held(Conversation.id, criteria.held_conversations),
    ]


async def expired_conversations(uow: UnitOfWork, criteria: expiry.Expired, *, limit: int) -> list[str]:
    """Ids of closed chats past ``criteria.before`` (not held), oldest first, locked."""
    return await expiry.take(uow, Conversation.id, _expired_chats(criteria), Conversation.closed_at, limit)


async def count_expired_conversations(uow: UnitOfWork, criteria: expiry.Expired) -> int:
    return await expiry.count(uow, Conversation.id, _expired_chats(criteria))


async def delete_conversations(uow: UnitOfWork, conversation_ids: list[str]) -> int:
    """Delete these conversations with their messages (retention; the caller chose the ids)."""
    return await expiry.delete_ids(uow, Conversation.id, conversation_ids)
