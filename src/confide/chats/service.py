"""Conversations and messages: the write path (batched), history, read state, closing, rating,
and Stored Chats search over keyed blind indexes."""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from confide.auth.actors import OperatorActor, VisitorActor
from confide.chats.models import Conversation as Conversation  # re-exported: routing holds conversations
from confide.chats.models import ConversationTerm, Message
from confide.chats.schemas import MAX_TEXT, Draft, StoredChatFilters
from confide.core import clock, crypto
from confide.core.crypto import DataKey
from confide.core.db import UnitOfWork
from confide.core.errors import Conflict, DomainError, Invalid, NotFound
from confide.core.runtime import Runtime
from confide.permissions.access import access_conversation_by_id, conversation_scope
from confide.users import service as users
from confide.visitors import service as visitors
from confide.visitors.service import Visitor
from confide.workspaces import service as workspaces
from confide.workspaces.service import Department, Site

_CONV = cast(Table, Conversation.__table__)
_MSG = cast(Table, Message.__table__)
_TERMS = cast(Table, ConversationTerm.__table__)


class IndexedTerms:
    """Which (conversation, term) pairs this node has indexed already, most recent conversations
    first: a chat repeats its words, and a known pair needs no write at all. Bounded; filled only
    after commit, so a rolled-back batch never hides a term. Another node's rows are harmless:
    inserts ignore duplicates."""

    def __init__(self, max_conversations: int = 20_000) -> None:
        self._seen: OrderedDict[str, set[str]] = OrderedDict()
        self._max = max_conversations

    def unknown(self, conversation_id: str, terms: Iterable[str]) -> list[str]:
        seen = self._seen.get(conversation_id)
        return [t for t in terms if t not in seen] if seen else list(terms)

    def remember(self, pairs: Iterable[tuple[str, str]]) -> None:
        for conversation_id, term in pairs:
            seen = self._seen.get(conversation_id)
            if seen is None:
                seen = self._seen[conversation_id] = set()
                if len(self._seen) > self._max:
                    self._seen.popitem(last=False)
            else:
                self._seen.move_to_end(conversation_id)
            seen.add(term)


def conv_topic(conversation_id: str) -> str:
    return f"conv:{conversation_id}"


def _aad(kind: str, row_id: str) -> str:
    return f"{kind}:{row_id}"


async def start_conversation(
    rt: Runtime, uow: UnitOfWork, *, site: Site, visitor: Visitor, department: Department, page_url: str | None
) -> Conversation:
    key = await rt.keyring.get(uow.session, visitor.id)
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
def message_view(
    *, message_id: str, seq: int, client_id: str, sender: str, sender_name: str | None, text: str, created_at: datetime
) -> dict[str, Any]:
    return {
        "id": message_id,
        "seq": seq,
        "client_id": client_id,
        "sender": sender,
        "sender_name": sender_name,
        "text": text,
        "created_at": clock.iso(created_at),
    }


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
        operator = {"name": await users.operator_name(uow, conv.operator_id)}
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


async def publish_status(rt: Runtime, uow: UnitOfWork, conv: Conversation) -> None:
    """The visitor's view only (queue position, unanswered), on the conversation topic."""
    rt.publish(
        uow,
        conv_topic(conv.id),
        {"type": "status", "conversation_id": conv.id, "conversation": await visitor_view(uow, conv)},
    )


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


async def publish_change(rt: Runtime, uow: UnitOfWork, conv: Conversation) -> None:
    """After a status change: the visitor's view and the operators' view, on the conversation topic."""
    rt.publish(
        uow,
        conv_topic(conv.id),
        {"type": "status", "conversation_id": conv.id, "conversation": await visitor_view(uow, conv)},
    )
    rt.publish(
        uow,
        conv_topic(conv.id),
        {"type": "chat", "conversation_id": conv.id, "conversation": await operator_view(rt, uow, conv)},
    )


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
    names = await users.operator_names(uow, {m.sender_id for m in found if m.sender == "operator"})
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


# ---------------------------------------------------------------- the write path
def check_text(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise Invalid("a message needs text")
    if len(text) > MAX_TEXT:
        raise Invalid(f"a message holds at most {MAX_TEXT} characters")
    return text


def check_client_id(client_id: object) -> str:
    if not isinstance(client_id, str) or not 1 <= len(client_id) <= 64:
        raise Invalid("client_id must be 1 to 64 characters")
    return client_id


async def store_messages(
    rt: Runtime, uow: UnitOfWork, drafts: list[Draft], indexed: IndexedTerms | None = None
) -> list[dict[str, Any] | DomainError]:
    """Store a batch of messages in the caller's transaction; one result per draft, in order.

    Idempotent per (conversation, sender, client_id): a retry gets the stored message back.
    Each draft is authorised against the conversation as it is now (sender, status).
    The committed messages are published after commit.
    """
    # Core statements on the unit's connection: this is the hot path, and the ORM's per-row
    # bookkeeping (identity map, update synchronisation) costs more than the database work.
    conn = await uow.session.connection()
    results: list[dict[str, Any] | DomainError | None] = [None] * len(drafts)
    conv_ids = {d.conversation_id for d in drafts}
    # Row locks (PostgreSQL; SQLite has one writer) make the sequence numbers below safe across nodes.
    convs = {
        row.id: row
        for row in (
            await conn.execute(
                select(
                    _CONV.c.id,
                    _CONV.c.status,
                    _CONV.c.visitor_id,
                    _CONV.c.operator_id,
                    _CONV.c.workspace_id,
                    _CONV.c.seq,
                )
                .where(_CONV.c.id.in_(conv_ids))
                .with_for_update()
            )
        ).all()
    }

    # Retries: messages already stored under the same client ids. The row-value IN seeks the unique
    # index (conversation, sender, client_id) exactly, whatever the length of the conversations.
    stored: dict[tuple[str, str, str], Any] = {}
    idents = list({(d.conversation_id, d.sender_id, d.client_id) for d in drafts})
    key_columns = tuple_(_MSG.c.conversation_id, _MSG.c.sender_id, _MSG.c.client_id)
    for m in (await conn.execute(select(_MSG).where(key_columns.in_(idents)))).all():
        stored[(m.conversation_id, m.sender_id, m.client_id)] = m

    keys: dict[str, DataKey] = {}
    accepted: dict[str, list[int]] = defaultdict(list)  # conversation -> indexes of drafts to insert
    first_of: dict[tuple[str, str, str], int] = {}
    for i, d in enumerate(drafts):
        conv = convs.get(d.conversation_id)
        ident = (d.conversation_id, d.sender_id, d.client_id)
        if conv is None:
            results[i] = NotFound("conversation not found")
            continue
        key = keys.get(conv.visitor_id)
        if key is None:
            key = keys[conv.visitor_id] = await rt.keyring.get(uow.session, conv.visitor_id)
        if ident in stored:
            m = stored[ident]
            results[i] = message_view(
                message_id=m.id,
                seq=m.seq,
                client_id=m.client_id,
                sender=m.sender,
                sender_name=d.sender_name,
                text=key.decrypt(m.body_enc, _aad("messages.body", m.id)),
                created_at=m.created_at,
            )
            continue
        if ident in first_of:  # the same client id twice in one batch: one message
            continue
        if (d.sender == "visitor" and conv.visitor_id != d.sender_id) or (
            d.sender == "operator" and conv.operator_id != d.sender_id
        ):
            results[i] = NotFound("conversation not found")
        elif conv.status == "closed":
            results[i] = Conflict("this conversation is closed")
        elif d.sender == "operator" and conv.status != "active":
            results[i] = Conflict("accept the conversation first")
        else:
            first_of[ident] = i
            accepted[d.conversation_id].append(i)

    now = clock.now()
    message_rows: list[dict[str, Any]] = []
    batch_terms: dict[str, set[str]] = defaultdict(set)
    seq_rows: list[dict[str, Any]] = []
    for conv_id, indexes in accepted.items():
        conv = convs[conv_id]
        seq_rows.append({"b_id": conv_id, "b_seq": conv.seq + len(indexes)})
        key = keys[conv.visitor_id]
        for offset, i in enumerate(indexes):
            d = drafts[i]
            msg_id = crypto.new_id()
            seq = conv.seq + 1 + offset
            message_rows.append(
                {
                    "id": msg_id,
                    "conversation_id": conv_id,
                    "seq": seq,
                    "sender": d.sender,
                    "sender_id": d.sender_id,
                    "client_id": d.client_id,
                    "body_enc": key.encrypt(d.text, _aad("messages.body", msg_id)),
                    "created_at": now,
                }
            )
            if d.sender != "system":
                batch_terms[conv_id].update(rt.bidx.text_terms(conv.workspace_id, "msg", d.text))
            view = message_view(
                message_id=msg_id,
                seq=seq,
                client_id=d.client_id,
                sender=d.sender,
                sender_name=d.sender_name,
                text=d.text,
                created_at=now,
            )
            results[i] = view
            rt.publish(uow, conv_topic(conv_id), {"type": "message", "conversation_id": conv_id, "message": view})
    if seq_rows:
        await conn.execute(
            update(_CONV).where(_CONV.c.id == bindparam("b_id")).values(seq=bindparam("b_seq"), last_message_at=now),
            seq_rows,
        )
    if message_rows:
        await conn.execute(insert(_MSG), message_rows)
    term_rows = sorted(  # in key order: the index pages are then visited once each
        (
            {"term": term, "conversation_id": conv_id}
            for conv_id, terms in batch_terms.items()
            for term in (indexed.unknown(conv_id, terms) if indexed else terms)
        ),
        key=lambda row: (row["term"], row["conversation_id"]),
    )
    if term_rows:
        await conn.execute(_insert_ignoring_duplicates(conn.dialect.name, _TERMS), term_rows)
        if indexed is not None:
            pairs = [(row["conversation_id"], row["term"]) for row in term_rows]
            uow.after_commit(lambda: indexed.remember(pairs))
    # Duplicates inside the batch share their first's result.
    for i, d in enumerate(drafts):
        if results[i] is None:
            results[i] = results[first_of[(d.conversation_id, d.sender_id, d.client_id)]]
    return [r for r in results if r is not None]


def _insert_ignoring_duplicates(dialect: str, table: Table) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


async def add_system_message(rt: Runtime, uow: UnitOfWork, conv: Conversation, text: str) -> None:
    """A line in the transcript from Confide itself (joined, transferred, closed)."""
    await uow.session.flush()
    draft = Draft(
        conversation_id=conv.id,
        sender="system",
        sender_id="system",
        sender_name=None,
        client_id=crypto.new_id(),
        text=text,
    )
    await store_messages(rt, uow, [draft])
    await uow.session.refresh(conv)


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
        who = "visitor"
    else:
        conv = await access_conversation_by_id(uow.session, actor, conversation_id, assigned=True, for_update=True)
        seq = min(seq, conv.seq)
        if seq <= conv.operator_read_seq:
            return
        conv.operator_read_seq = seq
        who = "operator"
    rt.publish(uow, conv_topic(conv.id), {"type": "read", "conversation_id": conv.id, "from": who, "seq": seq})


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
        rt.publish(uow, f"dept:{conv.department_id}", {"type": "queue_changed"})


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
        key = await rt.keyring.get(uow.session, conv.visitor_id)
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


async def queued_conversations(uow: UnitOfWork, *, limit: int = 500, lock: bool = False) -> list[Conversation]:
    stmt = select(Conversation).where(Conversation.status == "queued").order_by(Conversation.created_at).limit(limit)
    return list((await uow.session.scalars(_locked(stmt, skip_locked=True) if lock else stmt)).all())


async def queued_in_department(uow: UnitOfWork, department_id: str, limit: int = 200) -> list[Conversation]:
    stmt = (
        select(Conversation)
        .where(Conversation.department_id == department_id, Conversation.status == "queued")
        .order_by(Conversation.created_at)
        .limit(limit)
    )
    return list((await uow.session.scalars(stmt)).all())


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
    stmt = select(Conversation).where(Conversation.workspace_id == actor.workspace_id, Conversation.status == "queued")
    if not actor.is_admin:
        stmt = stmt.where(Conversation.department_id.in_(actor.department_ids))
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
    stmt = conversation_scope(actor, select(Conversation))
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


async def summary_view(rt: Runtime, uow: UnitOfWork, conv: Conversation) -> dict[str, Any]:
    view = await operator_view(rt, uow, conv)
    operator_name = None
    if conv.operator_id:
        operator_name = await users.operator_name(uow, conv.operator_id)
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
    conv = await access_conversation_by_id(uow.session, actor, conversation_id)
    view = await summary_view(rt, uow, conv)
    view["messages"] = await messages_after(rt, uow, conv, 0, limit=100_000)
    return view
